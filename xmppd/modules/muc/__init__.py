"""Multi-User Chat (XEP-0045) and its companions, as an internal component::

    Component "conference.falcot.com" "muc"
        restrict_room_creation = "local"

Shaped as Prosody's MUC: ``room`` is the room core (occupants, roles,
affiliations; no sockets), ``service`` the rooms of the domain (creation, one
ordered queue per room), and each room feature is a file that hooks the room
events of ``events.py`` (``muc-room-iq-get/<ns>:<name>``,
``muc-occupant-session-new``, ``muc-disco#info``...) in its ``setup(m, service)``:
``disco``, ``config``, ``moderation``, ``voice``, ``register``, ``vcard``,
``selfping``, ``archive``, ``invites``, ``subject``, ``history``, ``occupant_id``.
``persistence`` stores rooms, ``tombstones`` what destroyed ones leave,
``permissions`` holds the §5 tables and ``cli`` is ``xmppctl muc``. This file only wires them.
"""
from __future__ import annotations

import asyncio

from xmppd.moduleapi import CliCommand, MetricFamily, Option, parse_period
from xmppd.xmpp.jid import bare as jid_bare

from . import (archive, cli, config, disco, history, invites, moderation, occupant_id,
               register, selfping, service, subject, vcard, voice)
from .archive import RoomArchive
from .config import ALLOW_PM, RoomConfig
from .persistence import RoomStore
from .room import RoomEnv
from .service import MucService
from .tombstones import Tombstones

PROTOCOLS = ["XEP-0045", "XEP-0249", "XEP-0313", "XEP-0359", "XEP-0410", "XEP-0421",
             "XEP-0425", "XEP-0486"]
DEPENDS: list = []
CLI = [CliCommand("muc", cli.register, "multi-user chat rooms")]

# its rooms (and their occupants) live in the module: a changed option waits for a
# restart instead of reloading the module (core/reload.py)
RELOAD = "restart"

# Prosody's values of muc_room_default_allow_pm (lowest role that may), as ours
PROSODY_ALLOW_PM = {"visitor": "anyone", "participant": "participants", "moderator": "moderators"}

OPTIONS = [
    Option("restrict_room_creation", "any", False, "host",
           "who may create rooms: false (anyone), \"local\" (users of the parent domain, "
           "e.g. falcot.com for conference.falcot.com), true or \"admin\" (server admins only)"),
    Option("muc_room_locking", "boolean", True, "host",
           "a room created with the MUC protocol stays locked (nobody else may enter) until "
           "its owner submits the configuration form (an empty form makes an instant room)"),
    Option("muc_room_lock_timeout", "any", 300, "host",
           "how long a locked room waits for its owner's configuration before it is "
           "destroyed: seconds, a period as Prosody writes it (\"5 minutes\"), or \"never\""),
    Option("max_history_messages", "integer", 20, "host",
           "the most messages a room keeps for new occupants (rooms choose up to this)", min=0, limit=True),
    Option("muc_max_nick_length", "integer", 23, "host", "longest nickname, in characters",
           min=1, limit=True),
    Option("muc_room_allow_persistent", "boolean", True, "host",
           "room owners may make their rooms persistent; false: only server admins may "
           "(the field leaves the others' configuration form)"),
    Option("muc_room_allow_public", "boolean", True, "host",
           "room owners may list their rooms publicly; false: only server admins may "
           "(the field leaves the others' configuration form)"),
    Option("muc_room_default_public", "boolean", True, "host",
           "new rooms are listed in the service's room list"),
    Option("muc_room_default_persistent", "boolean", False, "host",
           "new rooms survive their last occupant and restarts"),
    Option("muc_room_default_members_only", "boolean", False, "host",
           "new rooms admit members only"),
    Option("muc_room_default_moderated", "boolean", False, "host",
           "in new rooms only occupants with voice may speak"),
    Option("muc_room_default_public_jids", "boolean", False, "host",
           "new rooms are non-anonymous (everyone sees real JIDs)"),
    Option("muc_room_default_change_subject", "boolean", False, "host",
           "participants (not only moderators) may change the subject of new rooms"),
    Option("muc_room_default_allow_invites", "boolean", False, "host",
           "participants (not only moderators) may invite to new rooms"),
    Option("muc_room_default_allow_member_invites", "boolean", False, "host",
           "Prosody's name for members inviting to members-only rooms: true turns "
           "muc_room_default_allow_invites on (the invitees become members)"),
    Option("muc_room_default_allow_pm", "string", "anyone", "host",
           "who may send private messages in new rooms (Prosody's \"visitor\", "
           "\"participant\" and \"moderator\" too)", choices=ALLOW_PM + tuple(PROSODY_ALLOW_PM)),
    Option("muc_room_default_history_length", "integer", 20, "host",
           "history length of new rooms", min=0),
    Option("muc_room_default_max_occupants", "integer", 0, "host",
           "occupant limit of new rooms (0: none)", min=0),
    Option("muc_log_by_default", "boolean", True, "host",
           "new rooms archive their messages (XEP-0313); owners can turn it off"),
    Option("muc_log_all_rooms", "boolean", False, "host",
           "every room archives its messages, whatever its configuration"),
    Option("muc_log_expires_after", "any", "1w", "host",
           "how long room archives keep messages: \"1d\", \"2 weeks\", \"3m\" (31 days), "
           "\"1y\", a number of seconds, or \"never\"", limit=True),
    Option("muc_log_cleanup_interval", "number", 4 * 60 * 60, "host",
           "seconds between two runs of the expiry of old room messages", min=1),
    Option("muc_tombstones", "boolean", True, "host",
           "a destroyed persistent room leaves a tombstone: its address answers \"gone\" "
           "(with the reason and the new venue) until muc_tombstone_expiry"),
    Option("muc_tombstone_expiry", "any", "31d", "host",
           "how long tombstones last: \"31 days\", \"2w\", \"1y\", a number of seconds...; "
           "server admins may create the room anew before"),
    Option("muc_room_default_language", "string", "", "host",
           "language (xml:lang code) of new rooms; unset, the creator's language"),
    Option("muc_queue_limit", "integer", 1000, "host",
           "stanzas waiting for one room before senders get resource-constraint", min=1,
           limit=True),
    Option("muc_max_rooms", "integer", 0, "host",
           "the most rooms the service has at once, persistent and temporary (0: no limit); "
           "beyond, a new room gets resource-constraint", min=0, limit=True),
    Option("muc_max_rooms_per_user", "integer", 100, "host",
           "rooms one user may own (create); server admins are not limited", min=1, limit=True),
    Option("enforce_registered_nickname", "boolean", False, "host",
           "a user who registered a nickname with a room enters under it whatever nickname "
           "they ask for (status 210) and may not change it"),
    Option("muc_occupant_id", "boolean", True, "host",
           "rooms put occupant ids (XEP-0421) on the presences and messages they send"),
    Option("muc_vcard", "boolean", True, "host",
           "rooms have a vCard (room avatars, XEP-0486) that owners set; false: no room vCards"),
    Option("component_admins_as_room_owners", "boolean", True, "host",
           "server admins (the admins option) are owners of every room"),
]

# the room features, each wired by its setup(m, service)
FEATURES = (disco, config, moderation, voice, register, vcard, selfping, archive, invites,
            subject, history, occupant_id)


def _admins(m) -> frozenset[str]:
    if not m.get_option("component_admins_as_room_owners"):
        return frozenset()
    out = set()
    for j in m.host.get_option("admins") or ():
        if isinstance(j, str):
            b = jid_bare(j)
            if b:
                out.add(b)
    return frozenset(out)


def _period(m, name: str) -> float | None:
    """A duration option (Prosody's syntax) in seconds, None for "never"; an
    unreadable one is a configuration error at the setting."""
    try:
        return parse_period(m.get_option(name))
    except ValueError as exc:
        raise m.option_error(name, str(exc)) from None


def _restricted_fields(m) -> list[str]:
    out = []
    if not m.get_option("muc_room_allow_persistent"):
        out.append("muc#roomconfig_persistentroom")
    if not m.get_option("muc_room_allow_public"):
        out.append("muc#roomconfig_publicroom")
    return out


def _defaults(m, env: RoomEnv) -> RoomConfig:
    """The configuration of a new room, from the ``muc_room_default_*`` options."""
    return RoomConfig(
        public=m.get_option("muc_room_default_public"),
        persistent=m.get_option("muc_room_default_persistent"),
        members_only=m.get_option("muc_room_default_members_only"),
        moderated=m.get_option("muc_room_default_moderated"),
        whois="anyone" if m.get_option("muc_room_default_public_jids") else "moderators",
        change_subject=m.get_option("muc_room_default_change_subject"),
        allow_invites=(m.get_option("muc_room_default_allow_invites")
                       or m.get_option("muc_room_default_allow_member_invites")),
        allow_pm=PROSODY_ALLOW_PM.get(m.get_option("muc_room_default_allow_pm"),
                                      m.get_option("muc_room_default_allow_pm")),
        history_length=min(m.get_option("muc_room_default_history_length"), env.max_history),
        max_users=m.get_option("muc_room_default_max_occupants"),
        logging=m.get_option("muc_log_by_default"),
        lang=m.get_option("muc_room_default_language") or "",
    )


def setup(m) -> None:
    host = m.host
    if getattr(host, "kind", "component") != "component":
        m.log.warning("%s: muc is meant for a Component \"conference.%s\" \"muc\"; "
                      "rooms are served on this VirtualHost's domain anyway", host.name, host.name)
    env = RoomEnv(host.name, admins=_admins(m), max_history=m.get_option("max_history_messages"),
                  locking=m.get_option("muc_room_locking"),
                  max_nick_length=m.get_option("muc_max_nick_length"), events=host.events,
                  restricted_fields=_restricted_fields(m),
                  enforce_nick=m.get_option("enforce_registered_nickname"),
                  occupant_ids=m.get_option("muc_occupant_id"))
    expires = _period(m, "muc_log_expires_after")
    tombs = None
    if m.get_option("muc_tombstones"):
        ttl = _period(m, "muc_tombstone_expiry")
        if ttl is not None:
            tombs = Tombstones(m.open_store("muc_tombstones", "keyval"), ttl, env.now)
    svc = MucService(
        host.name, env, send=m.send,
        rooms_store=RoomStore(m.open_store("muc_rooms", "keyval")),
        archive=RoomArchive(m.open_store("muc_log", "archive"), expires=expires,
                            cleanup_map=m.open_store("muc_log_cleanup", "map")),
        defaults=lambda: _defaults(m, env), restrict_creation=m.get_option("restrict_room_creation"),
        queue_limit=m.get_option("muc_queue_limit"), name=host.get_option("name") or "Chatrooms",
        log_all_rooms=m.get_option("muc_log_all_rooms"),
        lock_timeout=_period(m, "muc_room_lock_timeout"), tombstones=tombs,
        max_rooms=m.get_option("muc_max_rooms"),
    )
    m.provide(svc)
    if expires is not None:
        m.add_timer(archive.FIRST_CLEANUP, svc.archive.cleanup)   # soon after start, then periodically
        m.add_timer(m.get_option("muc_log_cleanup_interval"), svc.archive.cleanup, repeat=True)
    m.add_item("metrics", lambda: [MetricFamily(
        "prosody_mod_muc__live_room", "gauge", "Rooms of the MUC service").add(
        len(svc.rooms), host=host.name)])
    m.add_control_command("muc-destroy", destroy_command,
                          doc="Destroy a room (its occupants are told), or delete it from storage.")
    m.add_control_command("muc-rooms", rooms_command, read_only=True,
                          doc="The rooms of a MUC service, temporary ones too, with their occupants.")
    service.setup(m, svc)
    for feature in FEATURES:
        if feature is vcard and not m.get_option("muc_vcard"):
            continue   # no room vCards nor avatars (a vCard IQ gets service-unavailable)
        if feature is occupant_id and not env.occupant_ids:
            continue   # not announced either
        feature.setup(m, svc)
    svc.load_task = asyncio.get_running_loop().create_task(svc.load())


def teardown(m) -> None:
    if m.provided is not None:
        m.provided.close()


def _service(ctx, domain: str):
    host = ctx.server.hosts.get(domain)
    svc = host.provided("muc") if host is not None else None
    if svc is None:
        raise ctx.Error(f"{domain!r} is not a MUC service of the running xmppd")
    return svc


async def rooms_command(ctx, args: dict) -> list[dict]:
    """``muc-rooms`` on the control socket: the rooms of the running MUC service
    (``cli.room_info`` each), persistent and temporary."""
    node, domain, resource = ctx.jid(ctx.arg(args, "domain"))
    if node or resource:
        raise ctx.Error(f"invalid MUC domain {args['domain']!r}: expected conference.domain")
    svc = _service(ctx, domain)
    await svc.ready.wait()   # the persistent rooms are loaded
    return cli.live_rooms(svc)


async def destroy_command(ctx, args: dict) -> dict:
    """``muc-destroy`` on the control socket: destroy a room through the running MUC
    service (occupants are told), or from storage if the room is not loaded."""
    room = ctx.arg(args, "room")
    reason = ctx.arg(args, "reason", required=False)
    alternate = ctx.arg(args, "alternate", required=False)
    node, domain, resource = ctx.jid(room)
    if not node or resource:
        raise ctx.Error(f"invalid room {room!r}: expected room@conference.domain")
    svc = _service(ctx, domain)
    occupants = await svc.destroy_room(node, reason, alternate)
    if occupants is not None:
        return {"room": f"{node}@{domain}", "live": True, "occupants": occupants}
    if not await cli.destroy_room(ctx.server.storage, domain, node):
        raise ctx.Error(f"no room {node}@{domain}")
    return {"room": f"{node}@{domain}", "live": False, "occupants": 0}

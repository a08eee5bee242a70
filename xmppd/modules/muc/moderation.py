"""Moderation and administration (XEP-0045 §8, §9, §10.3-10.8) and message
moderation (XEP-0425).

``muc#admin`` items either change a role (by nick: kick, voice, moderator) or an
affiliation (by JID: ban, member, admin, owner). Who may do what is
:mod:`permissions`; the effects on present occupants are ``Room.set_role`` and
``Room.set_affiliation``. Every item of one request is checked before any is
applied, so a request is all or nothing.

Hooks the room's ``muc#admin`` IQs, the moderation requests (``moderate`` of
``urn:xmpp:message-moderate:1``, ``apply-to`` of ``urn:xmpp:fasten:0`` for
version 0) and its disco#info.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Awaitable, Callable

from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare as jid_bare

from . import history as hist
from . import permissions as perm
from .events import DISCO_INFO, room_iq_event
from .room import MESSAGE, new_id

q = ns.q
ADMIN, FASTEN, MODERATE, MODERATE_0 = ns.MUC_ADMIN, ns.FASTEN, ns.MODERATE, ns.MODERATE_0
RETRACT, RETRACT_0, OCCUPANT_ID, SID = ns.RETRACT, ns.RETRACT_0, ns.OCCUPANT_ID, ns.SID

ITEM = q(ADMIN, "item")
REASON = q(ADMIN, "reason")


def setup(m, service) -> None:
    m.hook(room_iq_event("get", ADMIN, "query"), on_admin_get)
    m.hook(room_iq_event("set", ADMIN, "query"), on_admin_set)
    m.hook(room_iq_event("set", MODERATE, "moderate"), on_moderate)
    m.hook(room_iq_event("set", FASTEN, "apply-to"), on_moderate)
    m.hook(DISCO_INFO, info)


def on_admin_get(event):
    return event.reply(admin_get(event.room, event.payload, event.from_jid))


def on_admin_set(event):
    return event.reply(None, *admin_set(event.room, event.payload, event.from_jid))


async def on_moderate(event):
    archive = event.service.archive
    room = event.room

    async def lookup(key):
        return await archive.lookup(room, key) if archive is not None else None
    out = await moderate(room, event.payload, event.from_jid, lookup)
    return event.reply(None, *out)


def info(event) -> None:
    event.features += [MODERATE, MODERATE_0]


def actor_of(room, from_jid: str):
    """(bare, affiliation, role, occupant or None) of whoever sent a request.
    Admins and owners act as moderators even when not in the room."""
    bare = jid_bare(from_jid)
    aff = room.affiliation(bare)
    occ = room.by_jid.get(from_jid)
    if occ is not None:
        role = occ.role
    elif perm.AFFILIATION_RANK[aff] >= perm.AFFILIATION_RANK["admin"]:
        role = "moderator"
    else:
        role = "none"
    return bare, aff, role, occ


def admin_get(room, query: ET.Element, from_jid: str) -> ET.Element:
    """§8.5, §9.5, §9.8, §10.5, §10.8: the lists."""
    items = query.findall(ITEM)
    if len(items) != 1:
        raise StanzaError("bad-request", "ask for one list at a time")
    item = items[0]
    _, aff, role, _ = actor_of(room, from_jid)
    out = ET.Element(q(ADMIN, "query"))
    viewer_sees = not room.config.anonymous or role == "moderator"
    if item.get("affiliation"):
        which = item.get("affiliation")
        if which not in perm.LIST_READ:
            raise StanzaError("bad-request", f"no list of affiliation {which!r}")
        if not perm.may_read_list(aff, role, which):
            raise StanzaError("forbidden", f"you may not see the {which} list")
        nicks = {}
        for o in room.occupants.values():
            nicks.setdefault(o.bare, o.nick)
        for bare, a in sorted(room.affiliations.items()):
            if a == which:
                attrs = {"affiliation": a, "jid": bare}
                if bare in nicks:
                    attrs["nick"] = nicks[bare]
                ET.SubElement(out, ITEM, attrs)
        return out
    if item.get("role"):
        which = item.get("role")
        if which not in ("participant", "moderator", "visitor"):
            raise StanzaError("bad-request", f"no list of role {which!r}")
        if not perm.may_read_list(aff, role, which if which != "visitor" else "participant",
                                  kind="role"):
            raise StanzaError("forbidden", f"you may not see the {which} list")
        for o in room.occupants.values():
            if o.role == which:
                attrs = {"role": o.role, "nick": o.nick, "affiliation": room.affiliation(o.bare)}
                if viewer_sees:
                    attrs["jid"] = o.jid
                ET.SubElement(out, ITEM, attrs)
        return out
    raise StanzaError("bad-request", "an item needs a role or an affiliation")


def admin_set(room, query: ET.Element, from_jid: str) -> list[ET.Element]:
    items = query.findall(ITEM)
    if not items:
        raise StanzaError("bad-request", "no items")
    actor_bare, aff, role, actor_occ = actor_of(room, from_jid)
    actor_nick = actor_occ.nick if actor_occ is not None else None
    changes: list[tuple] = []
    new_affs: dict[str, str] = {}
    for item in items:
        reason = item.findtext(REASON)
        nick, jid = item.get("nick"), item.get("jid")
        if item.get("role") is not None and nick is not None and item.get("affiliation") is None:
            new_role = item.get("role")
            if new_role not in perm.ROLES:
                raise StanzaError("bad-request", f"unknown role {new_role!r}")
            target = room.occupants.get(nick)
            if target is None:
                raise StanzaError("item-not-found", f"no occupant {nick!r}")
            if role != "moderator":
                raise StanzaError("forbidden", "only moderators change roles")
            if not perm.may_set_role(aff, role, room.affiliation(target.bare), target.role, new_role):
                raise StanzaError("not-allowed", f"you may not make {nick} a {new_role}")
            changes.append(("role", target, new_role, reason))
        elif item.get("affiliation") is not None and (jid or nick):
            new_aff = item.get("affiliation")
            if new_aff not in perm.AFFILIATIONS:
                raise StanzaError("bad-request", f"unknown affiliation {new_aff!r}")
            if jid:
                target_bare = jid_bare(jid)
                if target_bare is None:
                    raise StanzaError("jid-malformed", f"invalid JID {jid!r}")
            else:
                occ = room.occupants.get(nick)
                if occ is None:
                    raise StanzaError("item-not-found", f"no occupant {nick!r}")
                target_bare = occ.bare
            old = new_affs.get(target_bare, room.affiliations.get(target_bare, "none"))
            if not perm.may_set_affiliation(aff, old, new_aff):
                raise StanzaError("forbidden" if aff not in ("admin", "owner") else "not-allowed",
                                  f"you may not change {target_bare} from {old} to {new_aff}")
            if target_bare in room.env.admins and new_aff != "owner":
                raise StanzaError("not-allowed", "server administrators own every room")
            new_affs[target_bare] = new_aff
            changes.append(("affiliation", target_bare, new_aff, reason))
        else:
            raise StanzaError("bad-request", "an item needs nick+role or jid+affiliation")
    owners = {b for b, a in room.affiliations.items() if a == "owner"}
    after = {b for b in owners if new_affs.get(b, "owner") == "owner"} | \
        {b for b, a in new_affs.items() if a == "owner"}
    if owners and not after:
        raise StanzaError("conflict", "a room needs at least one owner")
    out: list[ET.Element] = []
    for kind, target, value, reason in changes:
        if kind == "role":
            if target.nick in room.occupants:
                out.extend(room.set_role(target, value, actor=actor_nick, reason=reason))
        else:
            out.extend(room.set_affiliation(target, value, actor=actor_nick, reason=reason))
    return out


# -- XEP-0425 message moderation -------------------------------------------------------
Lookup = Callable[[str], Awaitable[ET.Element | None]]


def moderation_request(payload: ET.Element):
    """(version, stanza-id, reason) of a moderation request, or None."""
    if payload.tag == q(MODERATE, "moderate") and payload.find(q(RETRACT, "retract")) is not None:
        return 1, payload.get("id"), payload.findtext(q(MODERATE, "reason"))
    if payload.tag == q(FASTEN, "apply-to"):
        mod = payload.find(q(MODERATE_0, "moderate"))
        if mod is not None and mod.find(q(RETRACT_0, "retract")) is not None:
            return 0, payload.get("id"), mod.findtext(q(MODERATE_0, "reason"))
    return None


async def moderate(room, payload: ET.Element, from_jid: str, lookup: Lookup) -> list[ET.Element]:
    """Retract an occupant's message for everyone; the archive keeps a tombstone."""
    req = moderation_request(payload)
    if req is None:
        raise StanzaError("bad-request", "unsupported moderation action")
    _version, sid, reason = req
    if not sid:
        raise StanzaError("bad-request", "which message? (no id)")
    _, _, role, occ = actor_of(room, from_jid)
    if role != "moderator":
        raise StanzaError("forbidden", "only moderators may moderate messages")
    original = await lookup(sid)
    in_history = any(e.stanza_id == sid for e in room.history.entries)
    if original is None and not in_history:
        raise StanzaError("item-not-found", "no such message in this room")
    by = room.occupant_jid(occ.nick) if occ is not None else room.jid
    now = room.env.now()
    room.history.remove(sid)
    # both forms, whichever the moderator used, as Prosody's moderation module does:
    # XEP-0425 1.0 (message-retract:1) and 0.2 (fasten apply-to), for clients that
    # read only the older one
    m = ET.Element(MESSAGE, {"type": "groupchat", "from": room.jid, "id": new_id()})
    r = ET.SubElement(m, q(RETRACT, "retract"), {"id": sid})
    mod = ET.SubElement(r, q(MODERATE, "moderated"), {"by": by})
    if occ is not None:
        mod.extend(occ.ids)
    if reason:
        ET.SubElement(r, q(RETRACT, "reason")).text = reason
    a = ET.SubElement(m, q(FASTEN, "apply-to"), {"id": sid})
    mod0 = ET.SubElement(a, q(MODERATE_0, "moderated"), {"by": by})
    ET.SubElement(mod0, q(RETRACT_0, "retract"))
    if reason:
        ET.SubElement(mod0, q(MODERATE_0, "reason")).text = reason
    if original is not None:
        room.archive_edits.append((sid, tombstone(original, by, reason, now)))
    return room.fanout(m)


def tombstone(original: ET.Element, by: str, reason: str | None, when: float) -> ET.Element:
    """What the archive keeps of a moderated message: its envelope and ids."""
    t = ET.Element(original.tag, dict(original.attrib))
    for child in original:
        if child.tag in (q(SID, "stanza-id"), q(OCCUPANT_ID, "occupant-id")):
            t.append(child)
    r = ET.SubElement(t, q(RETRACT, "retracted"), {"stamp": hist.stamp(when)})
    ET.SubElement(r, q(MODERATE, "moderated"), {"by": by})
    if reason:
        ET.SubElement(r, q(RETRACT, "reason")).text = reason
    return t

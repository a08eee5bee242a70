"""The Room: occupants, roles and affiliations of one chat room (XEP-0045).

No sockets and no storage here: every method takes a stanza (and the real JID
it came from) and returns the stanzas to send, in order, so the room is
unit-testable on its own. What must be written to storage is left on the room
for its service to flush before sending (``dirty`` for the persistent state,
``archive_out``/``archive_edits`` for the message archive).

This is the core of a room (Prosody's ``muc.lib.lua``): joining, leaving, nick
changes, presence and message fan-out, private messages, forwarding IQs to
occupants, the effects of roles and affiliations, configuration, destruction.
Room features live in their own files and hook room events (``events.py``): the
room itself fires ``muc-occupant-session-new`` when a session enters (history
and subject hook it) and ``muc-disco#info`` when its disco#info is built, on
``env.events`` (the component host's event bus; none in a bare unit test).
The §5 tables are in ``permissions``.
"""
from __future__ import annotations

import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Callable, Iterable

from xmppd.moduleapi import SharedContent, copy_of
from xmppd.xmpp import disco, forms, ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare as jid_bare

from . import occupant_id as oid
from . import permissions as perm
from . import subject as subj
from .config import RoomConfig
from .events import DISCO_INFO, OCCUPANT_SESSION_NEW, InfoEvent, RoomEvent
from .history import History

q = ns.q
PRESENCE = q(ns.CLIENT, "presence")
MESSAGE = q(ns.CLIENT, "message")
BODY = q(ns.CLIENT, "body")
SUBJECT = q(ns.CLIENT, "subject")
STATUS = q(ns.CLIENT, "status")
MUC_X = q(ns.MUC, "x")
USER_X = q(ns.MUC_USER, "x")
STANZA_ID = q(ns.SID, "stanza-id")
OCC_ID = q(ns.OCCUPANT_ID, "occupant-id")

MAX_PENDING_IQS = 1000


def new_id() -> str:
    return str(uuid.uuid4())


class RoomEnv:
    """What a room needs from its service: its domain, the server admins, limits,
    a clock (tests pass their own) and the event bus its features hook."""

    def __init__(self, domain: str, *, admins: Iterable[str] = (), max_history: int = 20,
                 locking: bool = True, max_nick_length: int = 23,
                 now: Callable[[], float] = time.time, events=None,
                 restricted_fields: Iterable[str] = (), enforce_nick: bool = False,
                 occupant_ids: bool = True):
        self.domain = domain
        self.occupant_ids = occupant_ids   # muc_occupant_id: XEP-0421 ids on what rooms send
        self.enforce_nick = enforce_nick   # enforce_registered_nickname
        # roomconfig fields only server admins may set (muc_room_allow_persistent/_public)
        self.restricted_fields = frozenset(restricted_fields)
        self.admins = frozenset(admins)
        self.max_history = max_history
        self.locking = locking
        self.max_nick_length = max_nick_length
        self.now = now
        self.events = events


class Occupant:
    """One nickname in the room: one user, from one or more of their resources."""
    __slots__ = ("nick", "jid", "sessions", "bare", "_role", "presence", "oid", "oid_el", "ids",
                 "xcache")

    def __init__(self, nick: str, jid: str, bare: str, role: str, presence: list, oid_: str,
                 with_id: bool = True):
        self.nick = nick
        self.jid = jid            # real full JID of the first session still in
        self.sessions = [jid]     # every real full JID in under this nick (jid first)
        self.bare = bare
        self._role = role
        self.presence = presence  # children of the last available presence
        self.oid = oid_
        self.oid_el = oid.element(oid_)
        self.ids = (self.oid_el,) if with_id else ()   # what goes on its stanzas (XEP-0421)
        self.xcache: dict[bool, ET.Element] = {}  # plain <x/> of its presence, by with_jid

    @property
    def role(self) -> str:
        return self._role

    @role.setter
    def role(self, value: str) -> None:
        self._role = value
        self.xcache.clear()

    def __repr__(self) -> str:
        return f"<Occupant {self.nick} {self.jid} {self.role}>"


class Room:
    def __init__(self, node: str, env: RoomEnv, config: RoomConfig | None = None, *,
                 secret: str | None = None):
        self.node = node
        self.env = env
        self.jid = f"{node}@{env.domain}"
        self.config = config or RoomConfig()
        self.affiliations: dict[str, str] = {}
        self.nicks: dict[str, str] = {}      # bare JID -> reserved nickname (register.py)
        self.occupants: dict[str, Occupant] = {}
        self.by_jid: dict[str, Occupant] = {}
        self.subject = ""
        self.subject_from = ""
        self.locked = False
        self.destroyed = False
        self.history = History(self.config.history_length)
        self.secret = secret or oid.new_secret()
        self.vcard: str | None = None
        self.avatar_hash: str | None = None
        self.created = env.now()
        self.dirty = False
        self.stored = False   # a copy is in storage (persistent rooms)
        self.archive_out: list[tuple[str, float, str, ET.Element]] = []
        self.archive_edits: list[tuple[str, ET.Element]] = []
        self.pending_iqs: dict[str, tuple[str, str, str]] = {}
        self.destroy_reason: str | None = None      # what destroy() was told (tombstones)
        self.destroy_alternate: str | None = None
        self.tombstoned = False

    def __repr__(self) -> str:
        return f"<Room {self.jid} {len(self.occupants)} occupants>"

    # -- lookups --------------------------------------------------------------
    def occupant_jid(self, nick: str) -> str:
        return f"{self.jid}/{nick}"

    def affiliation(self, bare: str) -> str:
        if bare in self.env.admins:
            return "owner"
        aff = self.affiliations.get(bare)
        if aff is not None:
            return aff
        # a banned server bans its users who have no affiliation of their own (Prosody)
        if "@" in bare and self.affiliations.get(bare.split("@", 1)[1]) == "outcast":
            return "outcast"
        return "none"

    def sees_jids(self, viewer: Occupant) -> bool:
        return not self.config.anonymous or viewer.role == "moderator"

    @property
    def empty(self) -> bool:
        return not self.occupants

    @property
    def gone(self) -> bool:
        """Nothing left to keep: destroyed, or a temporary room nobody is in."""
        return self.destroyed or (not self.occupants and not self.config.persistent)

    def occupant_id(self, bare: str) -> str:
        return oid.occupant_id(self.secret, bare)

    # -- building stanzas --------------------------------------------------
    def _user_x(self, occ: Occupant, *, with_jid: bool, codes: Iterable[int] = (),
                role: str | None = None, affiliation: str | None = None,
                nick: str | None = None, actor: str | None = None,
                reason: str | None = None, extra: ET.Element | None = None) -> ET.Element:
        x = ET.Element(USER_X)
        item = ET.SubElement(x, q(ns.MUC_USER, "item"), {
            "affiliation": affiliation or self.affiliation(occ.bare),
            "role": role or occ.role})
        if with_jid:
            item.set("jid", occ.jid)
        if nick:
            item.set("nick", nick)
        if actor:
            ET.SubElement(item, q(ns.MUC_USER, "actor"), {"nick": actor})
        if reason:
            ET.SubElement(item, q(ns.MUC_USER, "reason")).text = reason
        if extra is not None:
            x.append(extra)
        for c in codes:
            ET.SubElement(x, q(ns.MUC_USER, "status"), {"code": str(c)})
        return x

    def presences(self, occ: Occupant, recipients: Iterable[Occupant], *,
                  type: str | None = None, children: Iterable[ET.Element] | None = None,
                  codes: Iterable[int] = (), self_codes: Iterable[int] = (),
                  from_nick: str | None = None, **item) -> list[ET.Element]:
        """``occ``'s presence for each recipient: with the real JID for those who
        may see it, status 110 and ``self_codes`` for ``occ`` itself."""
        codes = list(codes)
        frm = self.occupant_jid(from_nick or occ.nick)
        kids = list(occ.presence if children is None else children)
        kids.extend(occ.ids)
        x_plain = x_jid = None
        out = []
        attrs = {"from": frm}
        if type:
            attrs["type"] = type
        for r in recipients:
            if r is occ:
                x = self._user_x(occ, with_jid=True,
                                 codes=sorted({*codes, *self_codes, 110}), **item)
            elif self.sees_jids(r):
                x = x_jid = x_jid if x_jid is not None else \
                    self._user_x(occ, with_jid=True, codes=codes, **item)
            else:
                x = x_plain = x_plain if x_plain is not None else \
                    self._user_x(occ, with_jid=False, codes=codes, **item)
            for j in r.sessions:
                el = ET.Element(PRESENCE, attrs)
                el.set("to", j)
                el.extend(kids)
                el.append(x)
                out.append(el)
        return out

    def fanout(self, template: ET.Element, recipients: Iterable[Occupant] | None = None) -> list[ET.Element]:
        """One copy of ``template`` per occupant: the children are shared, not
        copied, and serialized once for all of them."""
        shared = SharedContent(template)
        return [copy_of(template, shared, to=j)
                for o in (self.occupants.values() if recipients is None else recipients)
                for j in o.sessions]

    def status_message(self, codes: Iterable[int]) -> list[ET.Element]:
        """A groupchat message from the room bearing status codes (config changes)."""
        codes = list(codes)
        if not codes:
            return []
        m = ET.Element(MESSAGE, {"type": "groupchat", "from": self.jid, "id": new_id()})
        x = ET.SubElement(m, USER_X)
        for c in codes:
            ET.SubElement(x, q(ns.MUC_USER, "status"), {"code": str(c)})
        return self.fanout(m)

    # -- presence ------------------------------------------------------------
    def handle_presence(self, stanza: ET.Element, from_jid: str, nick: str, *,
                        created: bool = False, nick_modified: bool = False) -> list[ET.Element]:
        t = stanza.get("type")
        occ = self.by_jid.get(from_jid)
        if t == "error":
            return self.remove_session(occ, from_jid, [333]) if occ is not None else []
        if t == "unavailable":
            if occ is None:
                return []
            keep = [c for c in stanza if c.tag == STATUS]
            return self.remove_session(occ, from_jid, children=keep)
        if t is not None:
            return []  # subscriptions and probes mean nothing to a room
        if occ is None:
            return self.join(stanza, from_jid, nick, created=created, nick_modified=nick_modified)
        if occ.nick != nick:
            if len(occ.sessions) > 1:
                raise StanzaError("not-acceptable", "this nickname is in use from your other "
                                  "devices too: leave from them before changing it")
            return self.change_nick(occ, nick, stanza)
        if stanza.find(MUC_X) is not None:
            return self.rejoin(occ, stanza, from_jid)
        occ.presence = _presence_children(stanza)
        return self.presences(occ, self.occupants.values())

    def _check_reserved(self, nick: str, bare: str) -> None:
        if nick in self.nicks.values() and self.nicks.get(bare) != nick:
            raise StanzaError("conflict", "that nickname is reserved by another user")

    def check_nick(self, nick: str) -> None:
        if not nick.strip() or len(nick) > self.env.max_nick_length:
            raise StanzaError("jid-malformed", f"nicknames are 1 to {self.env.max_nick_length} "
                              "characters long and not blank")

    def join(self, stanza: ET.Element, from_jid: str, nick: str, *, created: bool = False,
             nick_modified: bool = False) -> list[ET.Element]:
        bare = jid_bare(from_jid)
        aff = self.affiliation(bare)
        join_x = stanza.find(MUC_X)
        reserved = self.nicks.get(bare)
        if self.env.enforce_nick and reserved is not None and nick != reserved:
            nick, nick_modified = reserved, True   # in under their registered nickname (210)
        self.check_nick(nick)
        if self.locked and aff != "owner":
            raise StanzaError("item-not-found", "this room is locked until its owner configures it")
        if aff == "outcast":
            raise StanzaError("forbidden", "you are banned from this room")
        if self.config.members_only and not perm.has_affiliation_privilege(aff, "enter-members-only-room"):
            raise StanzaError("registration-required", "this room is for members only")
        other = self.occupants.get(nick)
        if other is not None and other.bare != bare:
            raise StanzaError("conflict", "that nickname is already in use")
        self._check_reserved(nick, bare)
        if self.config.password:
            given = join_x.findtext(q(ns.MUC, "password")) if join_x is not None else None
            if given != self.config.password:
                raise StanzaError("not-authorized", "a password is required to enter this room")
        if other is not None:
            return self.add_session(other, stanza, from_jid)
        if (self.config.max_users and len(self.occupants) >= self.config.max_users
                and perm.AFFILIATION_RANK[aff] < perm.AFFILIATION_RANK["admin"]):
            raise StanzaError("service-unavailable", "this room is full", type="wait")
        role = perm.default_role(aff, moderated=self.config.moderated)
        occ = Occupant(nick, from_jid, bare, role, _presence_children(stanza), self.occupant_id(bare),
                       self.env.occupant_ids)
        out: list[ET.Element] = []
        for o in self.occupants.values():
            out.extend(self._presence_for(o, occ))
        self.occupants[nick] = occ
        self.by_jid[from_jid] = occ
        self_codes = self.join_codes(created=created, nick_modified=nick_modified)
        out.extend(self.presences(occ, self.occupants.values(), self_codes=self_codes))
        out.extend(self.session_new(occ, stanza, from_jid))
        return out

    def join_codes(self, *, created=False, nick_modified=False) -> list[int]:
        codes = []
        if not self.config.anonymous:
            codes.append(100)
        if self.config.logging:
            codes.append(170)
        if created:
            codes.append(201)
        if nick_modified:
            codes.append(210)
        return codes

    def _presence_for(self, o: Occupant, viewer: Occupant, to: str | None = None) -> list[ET.Element]:
        """``o``'s current presence for a new occupant ``viewer`` (at its session ``to``)."""
        el = ET.Element(PRESENCE, {"from": self.occupant_jid(o.nick), "to": to or viewer.jid})
        el.extend(o.presence)
        el.extend(o.ids)
        with_jid = self.sees_jids(viewer)
        x = o.xcache.get(with_jid)
        if x is None:
            x = o.xcache[with_jid] = self._user_x(o, with_jid=with_jid)
        el.append(x)
        return [el]

    def session_new(self, occ: Occupant, stanza: ET.Element, to: str) -> list[ET.Element]:
        """What the session ``to`` gets once in, after the presences: the features'
        (``muc-occupant-session-new``: history, then the subject, §7.2.15-16)."""
        bus = self.env.events
        if bus is None:
            return []
        ev = RoomEvent(None, self, stanza, from_jid=to, nick=occ.nick, occupant=occ)
        bus.call(OCCUPANT_SESSION_NEW, ev)
        return ev.out

    def rejoin(self, occ: Occupant, stanza: ET.Element, from_jid: str) -> list[ET.Element]:
        """A join from someone already in under that nick (a client that lost
        track): the room's state again, as on a first join."""
        occ.presence = _presence_children(stanza)
        out: list[ET.Element] = []
        for o in self.occupants.values():
            if o is not occ:
                out.extend(self._presence_for(o, occ, from_jid))
        out.extend(self.presences(occ, self.occupants.values(), self_codes=self.join_codes()))
        out.extend(self.session_new(occ, stanza, from_jid))
        return out

    def add_session(self, occ: Occupant, stanza: ET.Element, from_jid: str) -> list[ET.Element]:
        """Another resource of the same user joins under the same nick (as Prosody
        allows): one occupant, in from several sessions. The new session gets the
        room's state and its own presence (110); the others see nothing new."""
        occ.sessions.append(from_jid)
        self.by_jid[from_jid] = occ
        out: list[ET.Element] = []
        for o in self.occupants.values():
            if o is not occ:
                out.extend(self._presence_for(o, occ, from_jid))
        x = self._user_x(occ, with_jid=True, codes=sorted({*self.join_codes(), 110}))
        el = ET.Element(PRESENCE, {"from": self.occupant_jid(occ.nick), "to": from_jid})
        el.extend(occ.presence)
        el.extend(occ.ids)
        el.append(x)
        out.append(el)
        out.extend(self.session_new(occ, stanza, from_jid))
        return out

    def remove_session(self, occ: Occupant, from_jid: str, codes: Iterable[int] = (), *,
                       children=()) -> list[ET.Element]:
        """One session leaves (or bounced): the occupant stays while it has others."""
        if len(occ.sessions) <= 1 or from_jid not in occ.sessions:
            return self.remove(occ, codes, children=children)
        occ.sessions.remove(from_jid)
        self.by_jid.pop(from_jid, None)
        occ.jid = occ.sessions[0]
        occ.xcache.clear()
        el = ET.Element(PRESENCE, {"from": self.occupant_jid(occ.nick), "to": from_jid,
                                   "type": "unavailable"})
        el.extend(children)
        el.extend(occ.ids)
        el.append(self._user_x(occ, with_jid=True, codes=sorted({*codes, 110}), role="none"))
        return [el]

    def change_nick(self, occ: Occupant, nick: str, stanza: ET.Element) -> list[ET.Element]:
        """§7.6: unavailable from the old nick with 303, then available from the new."""
        reserved = self.nicks.get(occ.bare)
        if self.env.enforce_nick and reserved is not None and nick != reserved:
            raise StanzaError("not-acceptable", "you have a registered nickname in this room: "
                              f"{reserved}")
        self.check_nick(nick)
        if nick in self.occupants:
            raise StanzaError("conflict", "that nickname is already in use")
        self._check_reserved(nick, occ.bare)
        if not perm.has_role_privilege(occ.role, "change-nick"):
            raise StanzaError("not-allowed", "you may not change your nickname")
        old = occ.nick
        out = self.presences(occ, self.occupants.values(), type="unavailable", children=(),
                             codes=[303], nick=nick)
        del self.occupants[old]
        occ.nick = nick
        self.occupants[nick] = occ
        occ.presence = _presence_children(stanza)
        out.extend(self.presences(occ, self.occupants.values()))
        if self.subject_from == old:
            self.subject_from = nick
        return out

    def remove(self, occ: Occupant, codes: Iterable[int] = (), *, children=(),
               actor: str | None = None, reason: str | None = None,
               affiliation: str | None = None) -> list[ET.Element]:
        """The occupant leaves (or is made to): unavailable to everyone, itself included."""
        out = self.presences(occ, self.occupants.values(), type="unavailable", children=children,
                             codes=codes, role="none", actor=actor, reason=reason,
                             affiliation=affiliation)
        self.occupants.pop(occ.nick, None)
        for j in occ.sessions:
            self.by_jid.pop(j, None)
        return out

    # -- messages --------------------------------------------------------------
    def handle_groupchat(self, stanza: ET.Element, from_jid: str) -> list[ET.Element]:
        occ = self.by_jid.get(from_jid)
        if occ is None:
            raise StanzaError("not-acceptable", "you are not an occupant of this room")
        if stanza.find(BODY) is None and stanza.find(SUBJECT) is not None:
            return subj.change(self, occ, stanza)
        if not perm.has_role_privilege(occ.role, "send-messages"):
            raise StanzaError("forbidden", "you have no voice in this room")
        return self.broadcast_message(occ, stanza)

    def message_template(self, occ: Occupant | None, stanza: ET.Element) -> ET.Element:
        frm = self.occupant_jid(occ.nick) if occ is not None else self.jid
        tmpl = ET.Element(MESSAGE, {"type": "groupchat", "from": frm})
        for attr in ("id", "{http://www.w3.org/XML/1998/namespace}lang"):
            if stanza.get(attr):
                tmpl.set(attr, stanza.get(attr))
        for child in stanza:
            if child.tag == OCC_ID or (child.tag == STANZA_ID and child.get("by") == self.jid):
                continue  # never trust ids a client made up
            tmpl.append(child)
        if occ is not None:
            tmpl.extend(occ.ids)
        return tmpl

    def broadcast_message(self, occ: Occupant, stanza: ET.Element) -> list[ET.Element]:
        tmpl = self.message_template(occ, stanza)
        if tmpl.find(BODY) is not None:
            sid = new_id()
            ET.SubElement(tmpl, STANZA_ID, {"id": sid, "by": self.jid})
            now = self.env.now()
            self.history.add(tmpl, now, sid)
            if self.config.logging:
                self.archive_out.append((sid, now, self.occupant_jid(occ.nick), tmpl))
        return self.fanout(tmpl)

    def handle_private(self, stanza: ET.Element, from_jid: str, nick: str) -> list[ET.Element]:
        """§7.5: a message to ``room/nick`` goes to that occupant's real JID."""
        t = stanza.get("type") or "normal"
        occ = self.by_jid.get(from_jid)
        if t == "error":
            # a bounce of something the room sent: that session is gone (§18.1.1)
            return self.remove_session(occ, from_jid, [333]) if occ is not None else []
        if occ is None:
            raise StanzaError("not-acceptable", "you are not an occupant of this room")
        if t == "groupchat":
            raise StanzaError("bad-request", "groupchat messages go to the room's bare JID")
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "no such occupant")
        pm = self.config.allow_pm
        if pm == "none" or (pm == "participants" and occ.role == "visitor") or \
                (pm == "moderators" and occ.role != "moderator"):
            raise StanzaError("forbidden", "private messages are not allowed here")
        tmpl = ET.Element(MESSAGE, dict(stanza.attrib))
        tmpl.set("from", self.occupant_jid(occ.nick))
        for child in stanza:
            if child.tag not in (USER_X, OCC_ID):
                tmpl.append(child)
        tmpl.extend(occ.ids)
        ET.SubElement(tmpl, USER_X)
        return self.fanout(tmpl, [target])

    # -- IQs to occupants ---------------------------------------------------
    def iq_reply(self, stanza: ET.Element, from_jid: str) -> list[ET.Element]:
        """A result or error from an occupant to a request :meth:`forward_iq`
        passed on: back to whoever asked, from the occupant JID, with its own id."""
        entry = self.pending_iqs.pop(stanza.get("id", ""), None)
        if entry is None:
            return []
        orig_from, orig_id, target_nick = entry
        target = self.occupants.get(target_nick)
        if target is None or from_jid not in target.sessions:
            return []
        el = ET.Element(stanza.tag, dict(stanza.attrib))
        el.extend(list(stanza))
        el.set("from", self.occupant_jid(target_nick))
        el.set("to", orig_from)
        el.set("id", orig_id)
        return [el]

    def forward_iq(self, stanza: ET.Element, from_jid: str, nick: str) -> list[ET.Element]:
        """An IQ request to ``room/nick`` that no feature answered (self-ping is
        ``selfping``'s) goes to the occupant's real JID under an id of the room's."""
        occ = self.by_jid.get(from_jid)
        if occ is None:
            raise StanzaError("not-acceptable", "you are not an occupant of this room")
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "no such occupant")
        new = secrets.token_hex(8)
        if len(self.pending_iqs) >= MAX_PENDING_IQS:
            self.pending_iqs.pop(next(iter(self.pending_iqs)))
        self.pending_iqs[new] = (from_jid, stanza.get("id", ""), nick)
        el = ET.Element(stanza.tag, dict(stanza.attrib))
        el.extend(list(stanza))
        el.set("from", self.occupant_jid(occ.nick))
        el.set("to", target.jid)
        el.set("id", new)
        return [el]

    # -- roles and affiliations (the effects; who may is in moderation.py) ----
    def set_role(self, occ: Occupant, role: str, *, actor: str | None = None,
                 reason: str | None = None) -> list[ET.Element]:
        if role == "none":
            return self.remove(occ, [307], actor=actor, reason=reason)
        old = occ.role
        occ.role = role
        out = self.presences(occ, self.occupants.values(), actor=actor, reason=reason)
        out.extend(self._jid_view_changed(occ, old))
        return out

    def _jid_view_changed(self, occ: Occupant, old_role: str) -> list[ET.Element]:
        """An occupant who gains (or loses) the moderator role in a semi-anonymous
        room sees real JIDs (or no longer does): the others' presences again, as
        they now are for them (as Prosody)."""
        if not self.config.anonymous or (old_role == "moderator") == (occ.role == "moderator"):
            return []
        return [p for j in occ.sessions for o in self.occupants.values() if o is not occ
                for p in self._presence_for(o, occ, j)]

    def set_affiliation(self, bare: str, affiliation: str, *, actor: str | None = None,
                        reason: str | None = None) -> list[ET.Element]:
        if affiliation == "none":
            self.affiliations.pop(bare, None)
        else:
            self.affiliations[bare] = affiliation
        if affiliation in ("none", "outcast"):
            self.nicks.pop(bare, None)   # a reserved nickname goes with the membership
        self.dirty = True
        eff = self.affiliation(bare)
        if "@" not in bare:
            # a server's JID: a ban of the whole domain (as Prosody) reaches its users who
            # have no affiliation of their own
            present = [o for o in self.occupants.values()
                       if o.bare == bare or (o.bare.split("@", 1)[-1] == bare
                                             and o.bare not in self.affiliations)]
        else:
            present = [o for o in self.occupants.values() if o.bare == bare]
        if not present:
            return self.announce_affiliation(bare, eff, reason=reason)
        out: list[ET.Element] = []
        for occ in present:
            occ.xcache.clear()
            eff = self.affiliation(occ.bare)
            if eff == "outcast":
                out.extend(self.remove(occ, [301], actor=actor, reason=reason, affiliation="outcast"))
            elif self.config.members_only and perm.AFFILIATION_RANK[eff] < perm.AFFILIATION_RANK["member"]:
                out.extend(self.remove(occ, [321], actor=actor, reason=reason))
            else:
                old_role = occ.role
                occ.role = perm.default_role(eff, moderated=self.config.moderated)
                out.extend(self.presences(occ, self.occupants.values(), actor=actor, reason=reason))
                out.extend(self._jid_view_changed(occ, old_role))
        return out

    def announce_affiliation(self, bare: str, affiliation: str, *,
                             reason: str | None = None) -> list[ET.Element]:
        """§9.3-9.5, §10.6 (XEP-0045 1.34.7 "Notifications of changes"): the new
        affiliation of a user who is not in the room, in a message from the room to
        the occupants who may see real JIDs (as Prosody: everyone in a non-anonymous
        room, the moderators in a semi-anonymous one). Status 301 goes with a ban,
        321 with an affiliation that may not enter (members-only)."""
        m = ET.Element(MESSAGE, {"from": self.jid, "id": new_id()})
        x = ET.SubElement(m, USER_X)
        item = ET.SubElement(x, q(ns.MUC_USER, "item"), {"affiliation": affiliation, "jid": bare})
        if reason:
            ET.SubElement(item, q(ns.MUC_USER, "reason")).text = reason
        if affiliation == "outcast":
            ET.SubElement(x, q(ns.MUC_USER, "status"), {"code": "301"})
        elif self.config.members_only and \
                perm.AFFILIATION_RANK[affiliation] < perm.AFFILIATION_RANK["member"]:
            ET.SubElement(x, q(ns.MUC_USER, "status"), {"code": "321"})
        return self.fanout(m, [o for o in self.occupants.values() if self.sees_jids(o)])

    def remove_non_members(self) -> list[ET.Element]:
        """§10.2: a room made members-only loses its non-members (status 322)."""
        out: list[ET.Element] = []
        for occ in list(self.occupants.values()):
            if perm.AFFILIATION_RANK[self.affiliation(occ.bare)] < perm.AFFILIATION_RANK["member"]:
                out.extend(self.remove(occ, [322]))
        return out

    def configure(self, new: RoomConfig, codes: list[int]) -> list[ET.Element]:
        old = self.config
        self.config = new
        self.history.resize(new.history_length)
        self.locked = False
        self.dirty = True
        out = self.status_message(codes)
        if new.members_only and not old.members_only:
            out.extend(self.remove_non_members())
        return out

    def destroy(self, reason: str | None = None, alternate: str | None = None,
                password: str | None = None) -> list[ET.Element]:
        """§10.9: every occupant is told, with the alternate venue if any."""
        d = ET.Element(q(ns.MUC_USER, "destroy"))
        if alternate:
            d.set("jid", alternate)
        if reason:
            ET.SubElement(d, q(ns.MUC_USER, "reason")).text = reason
        if password:
            ET.SubElement(d, q(ns.MUC_USER, "password")).text = password
        out = []
        for occ in list(self.occupants.values()):
            for j in occ.sessions:
                el = ET.Element(PRESENCE, {"from": self.occupant_jid(occ.nick), "to": j,
                                           "type": "unavailable"})
                x = ET.SubElement(el, USER_X)
                ET.SubElement(x, q(ns.MUC_USER, "item"), {"affiliation": "none", "role": "none"})
                x.append(d)
                out.append(el)
        self.occupants.clear()
        self.by_jid.clear()
        self.destroyed = True
        self.destroy_reason, self.destroy_alternate = reason, alternate
        self.dirty = True
        return out

    def shutdown(self) -> list[ET.Element]:
        """The service goes away (status 332): everyone is out."""
        out = []
        for occ in list(self.occupants.values()):
            out.extend(self.remove(occ, [332]))
        return out

    # -- discovery -----------------------------------------------------------------
    def disco_info(self) -> ET.Element:
        """disco#info (§6.4): the room's identity, features and ``muc#roominfo``
        form, the features' part gathered from ``muc-disco#info``."""
        ev = InfoEvent(self)
        ev.features += [ns.MUC, ns.DISCO_INFO, ns.MUC_STABLE_ID]
        ev.fields.append(forms.Field("muc#roominfo_occupants", None, len(self.occupants),
                                     label="Number of occupants"))
        if self.env.events is not None:
            self.env.events.call(DISCO_INFO, ev)
        form = forms.build(ns.MUC_ROOMINFO, ev.fields, type="result")
        return disco.info([("conference", "text", self.config.name or None)], ev.features, [form])


def _presence_children(stanza: ET.Element) -> list[ET.Element]:
    """What an occupant's presence says, minus the MUC join element and any
    ids or MUC data a client might try to forge."""
    return [c for c in stanza if c.tag not in (MUC_X, USER_X, OCC_ID)]

"""The MUC service on a component domain: its rooms, who may create them, and one
ordered queue per room.

Stanzas for ``room@service[/nick]`` are queued on that room's queue and handled
one at a time by a drainer task (created when the queue fills, gone when it is
empty), so a room sees its stanzas in arrival order even while it waits for
storage. For each stanza: the room core or the feature that hooked it (a room
event, see ``events.py``) computes the replies, storage is written (room state,
archive), then the stanzas are sent in order. A StanzaError becomes the error
reply (a presence error keeps the MUC ``<x/>``). What no feature takes gets the
default: ``service-unavailable`` for an IQ to the room, forwarding for an IQ to an
occupant, nothing for a message.

Groupchat messages go straight to ``Room.handle_groupchat``, with no event in
between; consecutive ones waiting on one room are handled as a batch: each in
turn, then one storage flush, then all the replies in order.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import xml.etree.ElementTree as ET
from functools import partial
from typing import Any, Awaitable, Callable

from xmppd.moduleapi import HANDLED, stanza_event
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split, bare as jid_bare

from . import archive as arch
from .config import RoomConfig
from .events import (ROOM_CREATED, ROOM_PRE_CREATE, RoomEvent, occupant_iq_event,
                     room_iq_event, room_message_event)
from .persistence import RoomStore
from .room import MUC_X, PRESENCE, Room, RoomEnv

log = logging.getLogger("xmppd.mod.muc")


class Item:
    __slots__ = ("stanza", "kind", "to_type", "node", "nick", "raw_nick", "from_jid", "origin")

    def __init__(self, stanza, kind, to_type, node, nick, raw_nick, from_jid, origin):
        self.stanza = stanza
        self.kind = kind
        self.to_type = to_type
        self.node = node
        self.nick = nick
        self.raw_nick = raw_nick
        self.from_jid = from_jid
        self.origin = origin


# consecutive groupchat messages handled together (one storage flush, one write each)
BATCH_MAX = 64


def _is_groupchat(item) -> bool:
    return (item.__class__ is Item and item.kind == "message" and item.to_type == "bare"
            and item.stanza.get("type") == "groupchat")


class _Call:
    """Work queued on a room by the server itself (not a stanza)."""
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Awaitable[Any]]):
        self.fn = fn
        self.future = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        try:
            result = await self.fn()
        except Exception as exc:
            if not self.future.done():
                self.future.set_exception(exc)
        else:
            if not self.future.done():
                self.future.set_result(result)


def creation_allowed(rule: Any, bare: str, *, admins: frozenset, parent: str) -> bool:
    """``restrict_room_creation`` as in Prosody: false (anyone), "local" (users of
    the parent domain), true or "admin" (server admins only)."""
    if bare in admins:
        return True
    if rule in (None, False, "false", "none"):
        return True
    if rule == "local":
        try:
            _, domain, _ = jid_split(bare)
        except InvalidJID:
            return False
        return domain == parent
    return False  # True, "admin", or anything else: admins only


XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


class MucService:
    def __init__(self, domain: str, env: RoomEnv, *, send: Callable[[ET.Element], Awaitable[None]],
                 rooms_store: RoomStore | None = None, archive: arch.RoomArchive | None = None,
                 defaults: Callable[[], RoomConfig] = RoomConfig, restrict_creation: Any = False,
                 queue_limit: int = 1000, name: str = "Chatrooms", log_all_rooms: bool = False,
                 lock_timeout: float | None = 300, tombstones=None, max_rooms: int = 0):
        self.domain = domain
        self.env = env
        self.send = send
        self.store = rooms_store
        self.archive = archive
        self.defaults = defaults
        self.restrict_creation = restrict_creation
        self.queue_limit = queue_limit
        self.name = name
        self.log_all_rooms = log_all_rooms
        self.lock_timeout = lock_timeout
        self.tombstones = tombstones   # tombstones.Tombstones, or None (muc_tombstones off)
        self.max_rooms = max_rooms     # muc_max_rooms (0: no limit)
        self._lock_timers: dict[str, asyncio.TimerHandle] = {}
        self.parent = domain.split(".", 1)[1] if "." in domain else domain
        self.rooms: dict[str, Room] = {}
        self._queues: dict[str, collections.deque] = {}
        self._drainers: dict[str, asyncio.Task] = {}
        self.ready = asyncio.Event()
        self.load_task: asyncio.Task | None = None
        self.events = env.events   # the bus the room features hook (the component host's)

    # -- lifecycle -------------------------------------------------------------
    async def load(self) -> None:
        """Load the persistent rooms (and their recent history from the archive)."""
        try:
            if self.store is not None:
                self.rooms.update(await self.store.load_all(self.env))
            if self.archive is not None:
                for room in self.rooms.values():
                    if room.config.logging and room.config.history_length:
                        for key, when, el in await self.archive.recent(room, room.config.history_length):
                            if el.find("{jabber:client}body") is not None:
                                room.history.add(el, when, key)
            log.info("%s: %d persistent rooms", self.domain, len(self.rooms))
        finally:
            self.ready.set()

    def close(self) -> None:
        if self.load_task is not None and not self.load_task.done():
            self.load_task.cancel()
        for h in self._lock_timers.values():
            h.cancel()
        self._lock_timers.clear()
        for t in list(self._drainers.values()):
            t.cancel()
        self._drainers.clear()
        for q_ in self._queues.values():
            for item in q_:
                if isinstance(item, _Call):
                    item.future.cancel()
        self._queues.clear()

    # -- queueing ------------------------------------------------------------
    def submit(self, sev) -> bool:
        """Event handler for stanzas to rooms and occupants: queue, return HANDLED."""
        stanza = sev.stanza
        raw_nick = ""
        if sev.to_type == "full":
            raw = stanza.get("to") or ""
            raw_nick = raw.split("/", 1)[1] if "/" in raw else ""
        item = Item(stanza, sev.kind, sev.to_type, sev.to_node, sev.to_resource, raw_nick,
                    sev.from_jid, sev.origin)
        q_ = self._queues.get(sev.to_node)
        if q_ is None:
            q_ = self._queues[sev.to_node] = collections.deque()
        if len(q_) >= self.queue_limit:
            raise StanzaError("resource-constraint", "this room is too busy; try again", type="wait")
        q_.append(item)
        if sev.to_node not in self._drainers:
            self._drainers[sev.to_node] = asyncio.get_running_loop().create_task(
                self._drain(sev.to_node))
        return HANDLED

    async def _drain(self, node: str) -> None:
        q_ = self._queues.get(node)
        try:
            await self.ready.wait()
            while q_:
                item = q_.popleft()
                if isinstance(item, _Call):
                    await item.run()
                    continue
                if _is_groupchat(item) and node in self.rooms:
                    batch = [item]
                    while q_ and _is_groupchat(q_[0]) and len(batch) < BATCH_MAX:
                        batch.append(q_.popleft())
                    await self.process_groupchat(self.rooms[node], batch)
                    continue
                try:
                    await self.process(item)
                except Exception:
                    log.exception("%s: failed on a %s to %s", self.domain, item.kind, node)
                    await self._reply_error(item, StanzaError("internal-server-error"))
        finally:
            self._drainers.pop(node, None)
            if q_ is not None and not q_ and self._queues.get(node) is q_:
                del self._queues[node]

    async def run_in_room(self, node: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn()`` in the room's queue, after the stanzas already waiting (what
        ``xmppctl`` does to a live room is ordered with what its occupants do)."""
        call = _Call(fn)
        q_ = self._queues.get(node)
        if q_ is None:
            q_ = self._queues[node] = collections.deque()
        q_.append(call)
        if node not in self._drainers:
            self._drainers[node] = asyncio.get_running_loop().create_task(self._drain(node))
        return await call.future

    async def destroy_room(self, node: str, reason: str | None = None,
                           alternate: str | None = None, *,
                           only_if: Callable[[Room], bool] | None = None) -> int | None:
        """Destroy a live room as its owner would (§10.9): every occupant gets the
        ``<destroy/>`` presence, storage and archive are deleted. Returns how many
        occupants there were, or None if the room is not loaded (or ``only_if(room)``,
        checked in the room's turn, is false)."""
        async def run():
            room = self.rooms.get(node)
            if room is None or (only_if is not None and not only_if(room)):
                return None
            count = len(room.occupants)
            out = room.destroy(reason, alternate)
            await self.flush(room)
            if self.rooms.get(node) is room:
                del self.rooms[node]
            for s in out:
                await self.send(s)
            log.info("%s: room %s destroyed (%s)", self.domain, node, reason or "no reason given")
            return count
        return await self.run_in_room(node, run)

    def arm_lock_timer(self, node: str, room: Room) -> None:
        """A room still locked ``lock_timeout`` seconds after its creation (the owner
        never sent the configuration form) is destroyed, as in Prosody."""
        loop = asyncio.get_running_loop()
        old = self._lock_timers.pop(node, None)
        if old is not None:
            old.cancel()
        if self.lock_timeout is None:
            return   # "never": a locked room waits for its owner

        def expire() -> None:
            self._lock_timers.pop(node, None)
            if self.rooms.get(node) is room and room.locked:
                loop.create_task(self._destroy_if_locked(node, room))
        self._lock_timers[node] = loop.call_later(self.lock_timeout, expire)

    async def _destroy_if_locked(self, node: str, room: Room) -> None:
        try:   # unless configured (or gone) meanwhile
            await self.destroy_room(node, "the room was not configured in time",
                                    only_if=lambda r: r is room and r.locked)
        except Exception:
            log.exception("%s: destroying locked room %s failed", self.domain, node)

    async def drained(self) -> None:
        """Wait until every queue is empty (tests)."""
        while self._drainers:
            await asyncio.gather(*list(self._drainers.values()), return_exceptions=True)

    # -- processing ---------------------------------------------------------------
    def may_create(self, bare: str) -> bool:
        return creation_allowed(self.restrict_creation, bare, admins=self.env.admins,
                                parent=self.parent)

    def create_room(self, node: str, owner: str, *, locked: bool, lang: str | None = None) -> Room:
        cfg = self.defaults()
        if lang and not cfg.lang:
            # no muc_room_default_language: the creator's (every stanza from a client
            # has its stream's language, RFC 6120 §8.1.5, so it cannot go first as
            # in Prosody, where only an xml:lang on the join itself would)
            cfg.lang = lang
        if self.log_all_rooms:
            cfg.logging = True
        room = Room(node, self.env, cfg)
        room.affiliations[owner] = "owner"
        room.locked = locked
        room.dirty = True
        return room

    async def process(self, item: Item) -> None:
        stanza = item.stanza
        room = self.rooms.get(item.node)
        ev = RoomEvent(self, room, stanza, from_jid=item.from_jid, nick=item.nick,
                       origin=item.origin)
        try:
            if room is None:
                if self.tombstones is not None and stanza.get("type") != "error":
                    await self.tombstones.check(item.node, stanza, jid_bare(item.from_jid),
                                                self.env.admins)
                if item.kind == "presence" and item.to_type == "full" and stanza.get("type") is None:
                    bare = jid_bare(item.from_jid)
                    if self.max_rooms and len(self.rooms) >= self.max_rooms:
                        log.info("%s: room limit of %d reached, no new rooms allowed",
                                 self.domain, self.max_rooms)
                        raise StanzaError("resource-constraint", "this service has all the rooms "
                                          "it may have")
                    ev.room = room = self.create_room(
                        item.node, bare, locked=self.env.locking and stanza.find(MUC_X) is not None,
                        lang=stanza.get(XML_LANG))
                    ev.created = True
                    await self.events.fire(ROOM_PRE_CREATE, ev)   # a hook may refuse (raise)
                elif st.may_answer_with_error(stanza) and item.kind != "presence":
                    raise StanzaError("item-not-found", "no such room")
                else:
                    return
            await self.dispatch(ev, item)
        except StanzaError as err:
            await self._reply_error(item, err)
            if ev.created or room is None:
                return  # a room whose creation failed never existed
            ev.out = []
        if ev.created and room.occupants:
            self.rooms[item.node] = room
            await self.events.notify(ROOM_CREATED, ev)
        await self.flush(room)
        if room.gone and self.rooms.get(item.node) is room:
            del self.rooms[item.node]
        self._track_directed(room, item)
        for s in ev.out:
            await self.send(s)

    async def process_groupchat(self, room: Room, batch: list[Item]) -> None:
        """Several groupchat messages to one live room, one after the other, with one
        storage flush for all of them and then every reply in order: occupants get
        the batch in one write each instead of one write per message."""
        out: list[ET.Element] = []
        for item in batch:
            try:
                out += room.handle_groupchat(item.stanza, item.from_jid)
            except StanzaError as err:
                el = self._error_reply(item, err)
                if el is not None:
                    out.append(el)
            except Exception:
                log.exception("%s: failed on a groupchat message to %s", self.domain, room.node)
                el = self._error_reply(item, StanzaError("internal-server-error"))
                if el is not None:
                    out.append(el)
        await self.flush(room)
        for s in out:
            await self.send(s)

    async def flush(self, room: Room) -> None:
        """Storage first (awaited), so what occupants are told is already stored."""
        if self.archive is not None and (room.archive_out or room.archive_edits):
            await self.archive.flush(room)
        elif room.archive_out:
            room.archive_out.clear()
        if room.destroyed and self.archive is not None:
            await self.archive.delete(room.node)
        if self.store is not None and (room.dirty or (room.destroyed and room.stored)):
            await self.store.save(room)
        if room.destroyed and room.config.persistent and self.tombstones is not None \
                and not room.tombstoned:
            room.tombstoned = True
            await self.tombstones.leave(room)
        room.dirty = False

    def _track_directed(self, room: Room, item: Item) -> None:
        """Presence to an occupant JID is directed presence: the user's server
        sends unavailable there when the client goes (RFC 6121 §4.6)."""
        origin = item.origin
        directed = getattr(origin, "directed", None)
        if item.kind != "presence" or getattr(origin, "kind", None) != "c2s" or directed is None:
            return
        occ = room.by_jid.get(item.from_jid)
        for j in [j for j in directed if j.startswith(room.jid + "/")]:
            directed.discard(j)
        if occ is not None:
            directed.add(room.occupant_jid(occ.nick))

    async def _reply_error(self, item: Item, err: StanzaError) -> None:
        el = self._error_reply(item, err)
        if el is not None:
            await self.send(el)

    def _error_reply(self, item: Item, err: StanzaError) -> ET.Element | None:
        stanza = item.stanza
        if not st.may_answer_with_error(stanza) or not stanza.get("from"):
            return None
        if item.kind == "presence":
            if stanza.get("type") not in (None,):
                return None
            el = ET.Element(PRESENCE, {"type": "error", "to": item.from_jid,
                                       "from": stanza.get("to") or self.domain})
            if stanza.get("id"):
                el.set("id", stanza.get("id"))
            ET.SubElement(el, MUC_X)
            el.append(err.to_element(by=f"{item.node}@{self.domain}"))
        else:
            el = st.error_reply(stanza, err, from_=stanza.get("to") or self.domain)
        return el

    async def dispatch(self, ev: RoomEvent, item: Item) -> None:
        """One stanza (not a groupchat message: those are batched) to a room: the
        room core's part here, the rest through the room events."""
        room, stanza, out = ev.room, ev.stanza, ev.out
        kind = item.kind
        if kind == "presence":
            if item.to_type == "full":
                out += room.handle_presence(stanza, item.from_jid, item.nick, created=ev.created,
                                            nick_modified=bool(item.raw_nick) and item.raw_nick != item.nick)
                return
            if stanza.get("type") is None:
                raise StanzaError("jid-malformed", "join with room@service/nickname")
            occ = room.by_jid.get(item.from_jid)
            if stanza.get("type") == "unavailable" and occ is not None:
                # some clients (aioxmpp) leave by telling the room's bare JID
                out += room.handle_presence(stanza, item.from_jid, occ.nick)
            return
        if kind == "message":
            if item.to_type == "full":
                out += room.handle_private(stanza, item.from_jid, item.nick)
                return
            t = stanza.get("type") or "normal"
            if t == "groupchat":   # (they come batched, see _drain; this is not the hot path)
                out += room.handle_groupchat(stanza, item.from_jid)
            elif t == "error":
                occ = room.by_jid.get(item.from_jid)
                if occ is not None:
                    out += room.remove(occ, [333])
            else:
                for payload in stanza:    # invitations, voice requests...
                    ev.payload = payload
                    if await self.events.fire(_payload_event(room_message_event, payload.tag), ev):
                        break
            return
        # iq
        t = stanza.get("type")
        if t in ("result", "error"):
            if item.to_type == "full":
                out += room.iq_reply(stanza, item.from_jid)
            return
        payload = ev.payload = st.first_child(stanza)
        if item.to_type == "full":
            if payload is None or not await self.events.fire(
                    _payload_event(occupant_iq_event, payload.tag, t), ev):
                out += room.forward_iq(stanza, item.from_jid, item.nick)
            return
        if payload is None:
            raise StanzaError("bad-request", "IQ request without payload")
        if not await self.events.fire(_payload_event(room_iq_event, payload.tag, t), ev):
            raise StanzaError("service-unavailable")

    # -- the service's own answers (XEP-0045 §6.1-6.3, §10.1.4) ----------------------
    def public_rooms(self) -> list[Room]:
        return sorted((r for r in self.rooms.values()
                       if r.config.public and not r.locked and not r.destroyed),
                      key=lambda r: r.node)

    def unique_name(self) -> ET.Element:
        """XEP-0045 §10.1.4: a room name nobody uses."""
        while True:
            name = secrets.token_hex(8)
            if name not in self.rooms:
                break
        el = ET.Element(ns.q(ns.MUC_UNIQUE, "unique"))
        el.text = name
        return el

    def room_names(self) -> list[str]:
        return sorted(self.rooms)


def _payload_event(helper: Callable[..., str], tag: str, *iq_type: str) -> str:
    """The room event for a payload (``helper`` from ``events.py``)."""
    xmlns, name = st.split_tag(tag)
    return helper(*iq_type, xmlns, name)


# -- wiring (called by the module's setup) ----------------------------------------------
def setup(m, svc: MucService) -> None:
    """Stanzas to rooms and occupants go to the rooms' queues; the service's
    creation rules, locked-room timer, ``muc#unique`` and goodbye (332) hook in."""
    for kind in ("presence", "message", "iq"):
        for to_type in ("bare", "full"):
            m.hook(stanza_event(kind, to_type), svc.submit)
    m.hook(ROOM_PRE_CREATE, check_creation)
    m.hook(ROOM_PRE_CREATE, lambda ev: rooms_per_user(m.get_option("muc_max_rooms_per_user"), ev))
    m.hook(ROOM_CREATED, arm_lock_timer)
    m.add_feature(ns.MUC_UNIQUE)
    m.hook_iq("get", ns.MUC_UNIQUE, "unique", partial(unique, svc))
    m.hook("server-stopping", partial(stopping, svc))


def check_creation(ev: RoomEvent) -> None:
    """``restrict_room_creation``: who may create rooms here."""
    if not ev.service.may_create(jid_bare(ev.from_jid)):
        raise StanzaError("not-allowed", "you may not create rooms on this service")


def rooms_per_user(limit: int, ev: RoomEvent) -> None:
    """``muc_max_rooms_per_user``: the rooms one user owns (server admins: no limit)."""
    bare = jid_bare(ev.from_jid)
    svc = ev.service
    if bare in svc.env.admins:
        return
    owned = sum(1 for r in svc.rooms.values() if r.affiliations.get(bare) == "owner")
    if owned >= limit:
        raise StanzaError("policy-violation", f"you own {owned} rooms here, the most one user may")


def arm_lock_timer(ev: RoomEvent) -> None:
    if ev.room.locked:
        ev.service.arm_lock_timer(ev.room.node, ev.room)


async def unique(svc: MucService, event) -> ET.Element:
    await svc.ready.wait()
    return svc.unique_name()


async def stopping(svc: MucService, _server) -> None:
    """The service goes away: every occupant is told (status 332)."""
    for room in list(svc.rooms.values()):
        for stanza in room.shutdown():
            await svc.send(stanza)

"""The room's message archive (XEP-0313 on the room JID) and stanza ids
(XEP-0359): every groupchat message with a body is stamped by the room with
``<stanza-id by=room-jid/>`` and, when the room's logging is on, archived under
that id. Moderated messages (XEP-0425) are kept as tombstones.

Queries go through the server's one XEP-0313 engine (``xmppd.xmpp.mam``), as the
account archive's do: the search form (``with``, ``start``, ``end``,
``before-id``, ``after-id``, ``ids``), RSM paging (``max``, ``after``, ``before``,
``index``) and ``<flip-page/>``. ``with`` names an occupant JID (``room@service/nick``),
which is what each message is archived with. Who may read: not outcasts; in a
members-only room, members (and above) and whoever is in the room.

Storage: one ``archive`` store, ``muc_log``, whose user is the room's node, and
for the expiry (``muc_log_expires_after``) the ``muc_log_cleanup`` map store.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import forms, mam, ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, join, split, bare as jid_bare

from . import permissions as perm
from .events import DISCO_INFO, room_iq_event
from .room import new_id

DEFAULT_MAX = 50
HARD_MAX = 250
NOTED_CACHE = 10000   # rooms whose last noted day is remembered
FIRST_CLEANUP = 60    # seconds after start of the first expiry run


def setup(m, service) -> None:
    m.hook(room_iq_event("get", ns.MAM, "query"), on_form)
    m.hook(room_iq_event("set", ns.MAM, "query"), on_query)
    m.hook(DISCO_INFO, info)


def encode(el: ET.Element) -> dict:
    # a standalone document: the top element declares its namespace
    return {"xml": st.to_xml(el)}


def decode(value) -> ET.Element:
    return st.from_xml(value["xml"])


def _day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


class RoomArchive:
    """The rooms' messages in one archive store. With ``expires`` (seconds,
    ``muc_log_expires_after``), each day a room archives something is noted in the
    ``cleanup`` map store (day -> room nodes), and :meth:`cleanup` deletes what is
    older than that from the rooms noted on expired days, as Prosody's
    ``mod_muc_mam`` does."""

    def __init__(self, store, *, expires: float | None = None, cleanup_map=None):
        self.store = store
        self.expires = expires
        self.cleanup_map = cleanup_map if expires is not None else None
        self.noted: dict[str, str] = {}   # room node -> last day noted

    async def _note(self, node: str, when: float) -> None:
        if self.cleanup_map is None:
            return
        day = _day(when)
        if self.noted.get(node) == day:
            return
        await self.cleanup_map.set(day, node, True)
        self.noted[node] = day
        if len(self.noted) > NOTED_CACHE:
            self.noted.pop(next(iter(self.noted)))

    async def cleanup(self, now: float | None = None) -> int:
        """Delete the messages older than ``expires``; returns how many went."""
        if self.cleanup_map is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.expires
        cut_day = _day(cutoff)
        nodes: set[str] = set()
        for day in await self.cleanup_map.users():
            if day > cut_day:
                continue
            nodes.update(await self.cleanup_map.items(day))
            if day < cut_day:
                await self.cleanup_map.clear(day)   # all of that day has expired
        removed = 0
        for node in sorted(nodes):
            removed += await self.store.delete(node, before_when=cutoff)
        return removed

    async def flush(self, room) -> None:
        """Write what the room left to archive, before anything is sent."""
        while room.archive_out:
            key, when, with_jid, el = room.archive_out.pop(0)
            await self.store.append(room.node, encode(el), with_jid=with_jid, when=when, key=key)
            await self._note(room.node, when)
        while room.archive_edits:
            key, el = room.archive_edits.pop(0)
            item = await self.store.get(room.node, key)
            if item is not None:
                await self.store.append(room.node, encode(el), with_jid=item.with_jid,
                                        when=item.when, key=key)

    async def lookup(self, room, key: str) -> ET.Element | None:
        item = await self.store.get(room.node, key)
        return decode(item.value) if item is not None else None

    async def recent(self, room, n: int) -> list[tuple[str, float, ET.Element]]:
        items = await self.store.query(room.node, limit=n, reverse=True)
        return [(i.key, i.when, decode(i.value)) for i in reversed(items)]

    async def delete(self, node: str) -> None:
        await self.store.delete(node)

    async def query(self, room, stanza: ET.Element, query: ET.Element,
                    from_jid: str) -> list[ET.Element]:
        """The result messages, then the IQ result with ``<fin/>``."""
        check_access(room, from_jid)
        q = mam.parse_query(query)
        q.with_jid = occupant_with(query)
        q.rsm.max = DEFAULT_MAX if q.rsm.max is None else min(q.rsm.max, HARD_MAX)
        result = await mam.run(self.store, room.node, q, max_results=HARD_MAX)
        out = mam.results(result, to=from_jid, frm=room.jid, queryid=q.queryid, decode=_decoded,
                          flip=q.flip, id=new_id)
        fin = mam.fin(result, q.queryid)
        if not result.complete:
            # the room archive has always left 'complete' out when false (its default)
            del fin.attrib["complete"]
        out.append(st.iq_result(stanza, fin))
        return out


def _decoded(item) -> ET.Element:
    return decode(item.value)


def check_access(room, from_jid: str) -> None:
    """Outcasts never read the archive; in a members-only room only members (and
    up) and the occupants do."""
    aff = room.affiliation(jid_bare(from_jid))
    if aff == "outcast" or (room.config.members_only and from_jid not in room.by_jid
                            and perm.AFFILIATION_RANK[aff] < perm.AFFILIATION_RANK["member"]):
        raise StanzaError("forbidden", "you may not read this room's archive")


def occupant_with(query: ET.Element) -> str | None:
    """The query's ``with``, normalised but kept whole: messages are archived with
    the occupant JID of their sender (``room@service/nick``)."""
    raw = forms.read(query.find(forms.X), form_type=ns.MAM).get("with")
    if raw is None:
        return None
    try:
        return join(*split(raw))
    except InvalidJID:
        raise StanzaError("jid-malformed", "bad JID in 'with'") from None


def query_form() -> ET.Element:
    """The fields a client may search on (XEP-0313 §5.1)."""
    qel = ET.Element(ns.q(ns.MAM, "query"))
    qel.append(mam.query_form())
    return qel


def on_form(event):
    return event.reply(query_form())


async def on_query(event):
    archive = event.service.archive
    if archive is None:
        raise StanzaError("service-unavailable")
    event.out.extend(await archive.query(event.room, event.stanza, event.payload, event.from_jid))
    return HANDLED


def info(event) -> None:
    event.features.append(ns.SID)
    if event.room.config.logging:
        event.features += [ns.MAM, ns.MAM_EXTENDED]

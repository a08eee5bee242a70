"""The room's message archive (XEP-0313 on the room JID) and stanza ids
(XEP-0359): every groupchat message with a body is stamped by the room with
``<stanza-id by=room-jid/>`` and, when the room's logging is on, archived under
that id. Queries page with RSM (XEP-0059); moderated messages (XEP-0425) are
kept as tombstones.

Storage: one ``archive`` store, ``muc_log``, whose user is the room's node.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp.errors import StanzaError
from xmppd.storage import ItemNotFound
from xmppd.stream import serialize

from . import history as hist
from . import permissions as perm
from .ns import DATA, DELAY, FORWARD, MAM, RSM, q
from .room import MESSAGE, bare_of, new_id

DEFAULT_MAX = 50
HARD_MAX = 250
QUERY_FIELDS = ("FORM_TYPE", "start", "end", "with", "before-id", "after-id")


def encode(el: ET.Element) -> dict:
    # a standalone document: the top element declares its namespace
    return {"xml": serialize(el, default_ns="")}


def decode(value) -> ET.Element:
    return ET.fromstring(value["xml"])


class RoomArchive:
    def __init__(self, store):
        self.store = store

    async def flush(self, room) -> None:
        """Write what the room left to archive, before anything is sent."""
        while room.archive_out:
            key, when, with_jid, el = room.archive_out.pop(0)
            await self.store.append(room.node, encode(el), with_jid=with_jid, when=when, key=key)
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
        """The result messages, then the ``<fin/>`` result."""
        bare = bare_of(from_jid)
        aff = room.affiliation(bare)
        if aff == "outcast" or (room.config.members_only and from_jid not in room.by_jid
                                and perm.AFFILIATION_RANK[aff] < perm.AFFILIATION_RANK["member"]):
            raise StanzaError("forbidden", "you may not read this room's archive")
        fields: dict[str, str] = {}
        form = query.find(q(DATA, "x"))
        if form is not None:
            for f in form.findall(q(DATA, "field")):
                var = f.get("var")
                if var and var not in QUERY_FIELDS:
                    raise StanzaError("bad-request", f"unsupported field {var}")
                fields[var] = f.findtext(q(DATA, "value")) or ""
        start = hist.parse_stamp(fields.get("start"))
        end = hist.parse_stamp(fields.get("end"))
        if fields.get("start") and start is None or fields.get("end") and end is None:
            raise StanzaError("bad-request", "bad date")
        with_jid = fields.get("with") or None
        rsm = query.find(q(RSM, "set"))
        limit = DEFAULT_MAX
        after = fields.get("after-id") or None
        before = fields.get("before-id") or None
        reverse = False
        if rsm is not None:
            mx = rsm.findtext(q(RSM, "max"))
            if mx is not None:
                try:
                    limit = max(0, min(int(mx), HARD_MAX))
                except ValueError:
                    raise StanzaError("bad-request", "bad <max/>") from None
            a = rsm.find(q(RSM, "after"))
            b = rsm.find(q(RSM, "before"))
            if a is not None and a.text:
                after = a.text
            if b is not None:
                reverse = True  # <before/> alone: the last page
                if b.text:
                    before = b.text
        if before is not None:
            reverse = True
        try:
            items = await self.store.query(room.node, with_jid=with_jid, start=start, end=end,
                                           after=after, before=before, limit=limit + 1,
                                           reverse=reverse)
        except ItemNotFound:
            raise StanzaError("item-not-found", "no such message in the archive") from None
        complete = len(items) <= limit
        items = items[:limit]
        if reverse:
            items.reverse()
        qid = query.get("queryid")
        out = []
        for it in items:
            m = ET.Element(MESSAGE, {"from": room.jid, "to": from_jid, "id": new_id()})
            r = ET.SubElement(m, q(MAM, "result"), {"id": it.key})
            if qid:
                r.set("queryid", qid)
            fwd = ET.SubElement(r, q(FORWARD, "forwarded"))
            ET.SubElement(fwd, q(DELAY, "delay"), {"stamp": hist.stamp(it.when)})
            fwd.append(decode(it.value))
            out.append(m)
        fin = ET.Element(q(MAM, "fin"))
        if complete:
            fin.set("complete", "true")
        s = ET.SubElement(fin, q(RSM, "set"))
        if items:
            ET.SubElement(s, q(RSM, "first")).text = items[0].key
            ET.SubElement(s, q(RSM, "last")).text = items[-1].key
        ET.SubElement(s, q(RSM, "count")).text = str(
            await self.store.count(room.node, with_jid=with_jid, start=start, end=end))
        res = ET.Element(stanza.tag, {"type": "result", "id": stanza.get("id", ""),
                                      "from": room.jid, "to": from_jid})
        res.append(fin)
        out.append(res)
        return out


def query_form() -> ET.Element:
    """The fields a client may search on (XEP-0313 §5.1)."""
    qel = ET.Element(q(MAM, "query"))
    x = ET.SubElement(qel, q(DATA, "x"), {"type": "form"})
    f = ET.SubElement(x, q(DATA, "field"), {"var": "FORM_TYPE", "type": "hidden"})
    ET.SubElement(f, q(DATA, "value")).text = MAM
    for var, t in (("with", "jid-single"), ("start", "text-single"), ("end", "text-single"),
                   ("before-id", "text-single"), ("after-id", "text-single")):
        ET.SubElement(x, q(DATA, "field"), {"var": var, "type": t})
    return qel

"""Message Archive Management (XEP-0313, ``urn:xmpp:mam:2``): queries and their
answers, for every archive the server keeps (accounts' and rooms').

:func:`parse_query` reads a query (data form, RSM, ``<flip-page/>``),
:func:`run` pages an archive store for it (with :func:`rsm.page`), and
:func:`result_message` / :func:`fin` build what goes back.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape as xml_escape
from typing import Callable

from . import forms, ns, rsm
from .errors import StanzaError
from .jid import bare
from .time import parse_stamp, utc_stamp_ms

# XEP-0431 (full text search): the archived messages that contain the words
FULLTEXT = "{urn:xmpp:fulltext:0}fulltext"
FIELDS = (forms.Field("with", "jid-single"), forms.Field("start", "text-single"),
          forms.Field("end", "text-single"), forms.Field("before-id", "text-single"),
          forms.Field("after-id", "text-single"), forms.Field("ids", "text-multi"),
          forms.Field(FULLTEXT, "text-single"))
FIELD_NAMES = frozenset(f.var for f in FIELDS)
FIELD = f"{{{ns.DATA}}}field"


@dataclass
class Query:
    queryid: str | None = None
    with_jid: str | None = None
    start: float | None = None
    end: float | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: list[str] | None = None
    text: str | None = None      # XEP-0431: as it appears in the stored XML
    flip: bool = False
    rsm: rsm.Request = field(default_factory=rsm.Request)


def _contains(value, text: str) -> bool:
    """The storage's full-text match (ASCII case-insensitive, in the value's JSON)."""
    import json
    return (json.dumps(text, ensure_ascii=False)[1:-1].lower()
            in json.dumps(value, ensure_ascii=False).lower())


def query_form() -> ET.Element:
    """The search form (XEP-0313 §5.1)."""
    return forms.build(ns.MAM, FIELDS)


def parse_query(payload: ET.Element) -> Query:
    """The query in ``payload`` (``<query xmlns='urn:xmpp:mam:2'/>``).

    Errors, in this order: a form of another type or ``FORM_TYPE``
    (``bad-request``); then each field in document order: one that is not a MAM
    field (``bad-request``), a bad ``with`` (``jid-malformed``), a bad ``start``
    or ``end`` (``bad-request``); then a bad RSM ``<set/>`` (``bad-request``).
    """
    x = payload.find(forms.X)
    sub = forms.read(x, form_type=ns.MAM)
    out = Query(queryid=payload.get("queryid"))
    for var in (f.get("var") for f in (x.findall(FIELD) if x is not None else ())):
        if var == "FORM_TYPE":
            continue
        if var not in FIELD_NAMES:
            raise StanzaError("bad-request", f"unknown field {var!r}")
        value = sub.get(var)
        if value is None:
            continue
        if var == "with":
            out.with_jid = bare(value)
            if out.with_jid is None:
                raise StanzaError("jid-malformed", "bad JID in 'with'")
        elif var in ("start", "end"):
            try:
                setattr(out, var, parse_stamp(value))
            except ValueError:
                raise StanzaError("bad-request", f"invalid timestamp in {var!r}") from None
    fulltext = sub.get(FULLTEXT)
    if fulltext:
        # the storage searches the stored XML, where text is escaped (as Prosody's
        # SQL storage does it: a substring of the message, ASCII case-insensitive)
        out.text = xml_escape(fulltext)
    out.after_id = sub.get("after-id")
    out.before_id = sub.get("before-id")
    if sub.all("ids"):
        out.ids = sub.all("ids")
    out.rsm = rsm.request(payload)
    out.flip = payload.find(f"{{{ns.MAM}}}flip-page") is not None
    return out


@dataclass
class Result:
    items: list
    complete: bool
    first_index: int | None
    total: int | None


async def run(store, user: str | None, q: Query, *, max_results: int,
              include_total: bool = True) -> Result:
    """Page ``store`` (an archive store of the storage API) for ``q``; unknown ids
    are ``item-not-found``."""
    limit = min(q.rsm.max if q.rsm.max is not None else max_results, max_results)

    async def position(key: str) -> float:
        item = await store.get(user, key)
        if item is None:
            raise StanzaError("item-not-found", f"no archived message with id {key}")
        return item.when

    async def order(a: str, b: str) -> int:
        """-1 if ``a`` comes before ``b`` in the archive, 1 if after, 0 if the same."""
        if a == b:
            return 0
        wa, wb = await position(a), await position(b)
        if wa != wb:
            return -1 if wa < wb else 1
        keys = [i.key for i in await store.query(user, start=wa, end=wa)]
        return -1 if keys.index(a) < keys.index(b) else 1

    after, before = q.after_id, q.before_id
    for key in (after, before):
        if key is not None:
            await position(key)
    if q.rsm.after:
        await position(q.rsm.after)
        if after is None or await order(q.rsm.after, after) > 0:
            after = q.rsm.after
    if q.rsm.before:
        await position(q.rsm.before)
        if before is None or await order(q.rsm.before, before) < 0:
            before = q.rsm.before

    if q.ids is not None:
        items = []
        for key in q.ids:
            item = await store.get(user, key)
            if item is None:
                raise StanzaError("item-not-found", f"no archived message with id {key}")
            if ((q.with_jid is None or item.with_jid == q.with_jid)
                    and (q.start is None or item.when >= q.start)
                    and (q.end is None or item.when <= q.end)
                    and (q.text is None or _contains(item.value, q.text))):
                items.append(item)
        items.sort(key=lambda i: i.when)
        complete = len(items) <= limit
        items = items[:limit]
        return Result(items, complete, None, len(items))

    text = {} if q.text is None else {"text": q.text}

    def query(**kw):
        return store.query(user, with_jid=q.with_jid, start=q.start, end=q.end, **text, **kw)
    try:
        p = await rsm.page(query, limit=limit, after=after, before=before,
                           backward=q.rsm.backward, index=q.rsm.index)
    except LookupError:   # the storage API's ItemNotFound: an unknown bound
        raise StanzaError("item-not-found") from None
    total = None
    if include_total or limit == 0:
        total = await store.count(user, with_jid=q.with_jid, start=q.start, end=q.end, **text)
        # the form's after-id/before-id narrow the set too (not RSM's)
        for key, sign in ((q.after_id, 1), (q.before_id, -1)):
            if key is not None and total:
                w = await position(key)
                kw = dict(with_jid=q.with_jid, start=q.start, end=q.end, **text)
                if sign > 0:
                    kw["end"] = w if q.end is None else min(q.end, w)
                else:
                    kw["start"] = w if q.start is None else max(q.start, w)
                total = max(0, total - await store.count(user, **kw))
    return Result(p.items, p.complete, p.first_index, total)


def result_message(item, forwarded: ET.Element, *, to: str, frm: str, queryid: str | None,
                   id: str | None = None) -> ET.Element:
    """``<message><result queryid id><forwarded><delay/>MESSAGE</forwarded></result>``."""
    attrs = {"to": to, "from": frm}
    if id is not None:
        attrs["id"] = id
    msg = ET.Element(f"{{{ns.CLIENT}}}message", attrs)
    res = ET.SubElement(msg, f"{{{ns.MAM}}}result", {"id": item.key})
    if queryid is not None:
        res.set("queryid", queryid)
    fwd = ET.SubElement(res, f"{{{ns.FORWARD}}}forwarded")
    ET.SubElement(fwd, f"{{{ns.DELAY}}}delay", {"stamp": utc_stamp_ms(item.when)})
    fwd.append(forwarded)
    return msg


def fin(result: Result, queryid: str | None) -> ET.Element:
    """The IQ result's ``<fin/>`` with the page's ``<set/>``."""
    el = ET.Element(f"{{{ns.MAM}}}fin", {"complete": "true" if result.complete else "false"})
    if queryid is not None:
        el.set("queryid", queryid)
    items = result.items
    el.append(rsm.result(items[0].key if items else None, items[-1].key if items else None,
                         result.total, result.first_index if items else None))
    return el


def results(result: Result, *, to: str, frm: str, queryid: str | None,
            decode: Callable, flip: bool = False, id: Callable[[], str] | None = None) -> list[ET.Element]:
    """The result messages of a page, in the order they go out."""
    items = result.items[::-1] if flip else result.items
    return [result_message(it, decode(it), to=to, frm=frm, queryid=queryid,
                           id=id() if id is not None else None) for it in items]

"""Result Set Management (XEP-0059): the one pager every module pages with.

:func:`request` reads ``<set/>`` from a query (``max``, ``after``, ``before``,
``index``), :func:`result` builds the ``<set/>`` of an answer, and :func:`page` pages
over any ordered store that can be queried forwards and backwards from a key (the
storage API's archive stores, or anything shaped like them).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Awaitable, Callable

from . import ns
from .errors import StanzaError
from .stanzas import Set

SET = f"{{{ns.RSM}}}set"


@dataclass
class Request:
    """What a client asked for. ``before`` is ``""`` for "the last page" (an empty
    ``<before/>``), None when not asked; ``after`` None when not asked."""
    max: int | None = None
    after: str | None = None
    before: str | None = None
    index: int | None = None

    @property
    def backward(self) -> bool:
        return self.before is not None


def request(parent: ET.Element | None) -> Request:
    """The RSM request in ``parent`` (a query element), or an empty one."""
    el = parent.find(SET) if parent is not None else None
    if el is None:
        return Request()
    s = Set(xml=el)
    out = Request()
    for name in ("max", "index"):
        child = el.find(f"{{{ns.RSM}}}{name}")
        if child is None:
            continue
        text = (child.text or "").strip()
        try:
            n = int(text)
        except ValueError:
            raise StanzaError("bad-request", f"RSM <{name}/> must be a number") from None
        if n < 0:
            raise StanzaError("bad-request", f"RSM <{name}/> must not be negative")
        setattr(out, name, n)
    after = (s["after"] or "").strip()
    if after:
        out.after = after
    if el.find(f"{{{ns.RSM}}}before") is not None:
        out.before = (el.findtext(f"{{{ns.RSM}}}before") or "").strip()
    return out


def result(first: str | None = None, last: str | None = None, count: int | None = None,
           first_index: int | None = None) -> ET.Element:
    """The ``<set/>`` of an answer: first and last keys of the page, and the total."""
    s = Set()
    if first is not None:
        s["first"] = first
        if first_index is not None:
            s["first_index"] = str(first_index)
        s["last"] = last if last is not None else first
    if count is not None:
        s["count"] = str(count)
    return s.xml


@dataclass
class Page:
    items: list
    complete: bool            # the page reaches the end in its direction
    first_index: int | None   # the first item's position, when known


async def page(query: Callable[..., Awaitable[list]], *, limit: int, after: str | None = None,
               before: str | None = None, backward: bool = False, index: int | None = None) -> Page:
    """One page of ``limit`` items. ``query(limit=, reverse=, after=, before=)``
    returns items in store order (newest first when ``reverse``); ``after`` and
    ``before`` are exclusive bounds (keys); ``backward`` pages from the end
    (``<before/>``); ``index`` skips that many from the start."""
    if limit == 0:
        return Page([], False, None)
    if backward:
        items = await query(limit=limit + 1, reverse=True, after=after, before=before)
        return Page(items[:limit][::-1], len(items) <= limit, None)
    skip = index or 0
    items = (await query(limit=skip + limit + 1, reverse=False, after=after, before=before))[skip:]
    return Page(items[:limit], len(items) <= limit, skip if after is None else None)



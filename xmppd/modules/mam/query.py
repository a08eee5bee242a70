"""Queries of one's own archive (XEP-0313), on the shared engine
(:mod:`xmppd.xmpp.mam`): IQ get ``<query/>`` gives the search form, IQ set
``<query/>`` pages the archive (each hit is a ``<message><result/></message>``
sent to the querying resource, then the IQ result ``<fin/>``), IQ get
``<metadata/>`` gives the first and last items. Every handler is for the
account's own bare JID only (declared in ``setup``: ``service-unavailable``)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.moduleapi import IQEvent
from xmppd.xmpp import mam, ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.time import utc_stamp_ms

if TYPE_CHECKING:
    from .service import MamService


async def form_get(svc: "MamService", event: IQEvent) -> ET.Element:
    q = ET.Element(f"{{{ns.MAM}}}query")
    q.append(mam.query_form())
    return q


def decode(svc: "MamService", user: str, item) -> ET.Element:
    """The archived message of ``item`` (an empty one if it cannot be read)."""
    try:
        return st.from_xml(item.value)
    except ET.ParseError:
        svc.log.error("archived message %s of %s is unreadable", item.key, user)
        return ET.Element(f"{{{ns.CLIENT}}}message")


async def query_set(svc: "MamService", event: IQEvent) -> ET.Element:
    user = event.user
    q = mam.parse_query(event.payload)
    result = await mam.run(svc.archive, user, q, max_results=svc.max_results,
                           include_total=svc.include_total)
    for msg in mam.results(result, to=event.stanza.get("from") or "", frm=svc.jid_of(user),
                           queryid=q.queryid, flip=q.flip,
                           decode=lambda item: decode(svc, user, item)):
        event.origin.send(msg)
    return mam.fin(result, q.queryid)


async def metadata(svc: "MamService", event: IQEvent) -> ET.Element:
    return await metadata_of(svc, event.user)


async def bound_metadata(svc: "MamService", session, _el) -> ET.Element:
    """In a Bind 2 ``<bound/>`` (XEP-0386): the archive as the resource is bound."""
    return await metadata_of(svc, session.username)


async def metadata_of(svc: "MamService", user: str) -> ET.Element:
    md = ET.Element(f"{{{ns.MAM}}}metadata")
    first = await svc.archive.query(user, limit=1)
    if first:
        last = await svc.archive.query(user, limit=1, reverse=True)
        for name, item in (("start", first[0]), ("end", last[0])):
            ET.SubElement(md, f"{{{ns.MAM}}}{name}", {"id": item.key,
                                                      "timestamp": utc_stamp_ms(item.when)})
    return md

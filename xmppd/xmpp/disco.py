"""Service Discovery (XEP-0030): the info and items answers, on slixmpp's
``DiscoInfo``/``DiscoItems``. Identities and features come sorted and without
duplicates, so the same registrations always give the same answer (entity
capabilities hashes depend on it)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable

from . import ns
from .stanzas import DiscoInfo, DiscoItems

INFO = f"{{{ns.DISCO_INFO}}}query"
ITEMS = f"{{{ns.DISCO_ITEMS}}}query"

Identity = tuple  # (category, type, name or None)


def info(identities: Iterable[Identity] = (), features: Iterable[str] = (),
         extensions: Iterable[ET.Element] = (), node: str | None = None) -> ET.Element:
    """``<query xmlns='…disco#info'/>`` with sorted identities and features and the
    XEP-0128 forms in ``extensions``."""
    d = DiscoInfo()
    if node:
        d["node"] = node
    # slixmpp inserts each identity first: add them in reverse to keep them sorted
    for ident in sorted(set(identities), key=lambda i: (i[0], i[1], i[2] or ""), reverse=True):
        cat, typ, name = (tuple(ident) + (None,))[:3]
        d.add_identity(cat, typ, name=name or None)
    for var in sorted(set(features)):
        d.add_feature(var)
    for form in extensions:
        d.xml.append(form)
    return d.xml


def items(entries: Iterable[tuple] = (), node: str | None = None) -> ET.Element:
    """``<query xmlns='…disco#items'/>``; an entry is ``(jid[, node[, name]])``."""
    d = DiscoItems()
    if node:
        d["node"] = node
    for entry in entries:
        jid, item_node, name = (tuple(entry) + (None, None))[:3]
        d.add_item(jid, node=item_node, name=name)
    return d.xml


def item(jid: str, node: str | None = None, name: str | None = None) -> ET.Element:
    """One ``<item/>`` for an items answer assembled by several modules."""
    attrs = {"jid": jid}
    if node:
        attrs["node"] = node
    if name:
        attrs["name"] = name
    return ET.Element(f"{{{ns.DISCO_ITEMS}}}item", attrs)

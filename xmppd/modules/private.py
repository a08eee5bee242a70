"""Private XML storage (XEP-0049): an account stores XML fragments, one per
(element name, namespace), that only it can read back.

* get: for each child of the query, the stored fragment, or the requested
  (empty) element when nothing is stored;
* set: each child replaces what is stored under its name and namespace; a
  child without content deletes it;
* ``jabber:client``, ``jabber:server``, ``jabber:iq:private`` payloads →
  ``not-acceptable``; an empty query → ``not-acceptable``; to another account
  → ``forbidden`` (the declared own-account check); above ``private_max_size``
  bytes per fragment → ``not-acceptable``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import Option
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0049"]
OPTIONS = [
    Option("private_max_size", "integer", 65536, "both",
           "Largest private XML fragment (serialized, in bytes) an account may store.", min=0, limit=True),
]
STORE = "private"
REFUSED = frozenset({ns.CLIENT, ns.SERVER, ns.COMPONENT, ns.PRIVATE, ""})


def key_of(child: ET.Element) -> str:
    """The storage key of a fragment: ``name:namespace``."""
    xmlns, name = st.split_tag(child.tag)
    if xmlns in REFUSED:
        raise StanzaError("not-acceptable", f"namespace {xmlns or '(none)'} may not be stored")
    return f"{name}:{xmlns}"


def children_of(event) -> list[ET.Element]:
    children = list(event.payload)
    if not children:
        raise StanzaError("not-acceptable", "the query needs at least one child element")
    return children


class PrivateStorage:
    """The ``private`` map store of one host: user → key → fragment (XML text)."""

    def __init__(self, store, max_size):
        self.store = store
        self.max_size = max_size     # () -> the private_max_size option

    async def get(self, event):
        children = children_of(event)
        keys = [key_of(c) for c in children]
        q = ET.Element(ns.q(ns.PRIVATE, "query"))
        for child, key in zip(children, keys):
            stored = await self.store.get(event.user, key)
            if stored is not None:
                q.append(st.from_xml(stored))
            else:
                q.append(ET.Element(child.tag, dict(child.attrib)))
        return q

    async def set(self, event):
        children = children_of(event)
        limit = self.max_size()
        values: dict[str, str | None] = {}
        for child in children:
            key = key_of(child)
            if len(child) == 0 and not (child.text or "").strip():
                values[key] = None
                continue
            text = st.to_xml(child)
            if len(text.encode()) > limit:
                raise StanzaError("not-acceptable", f"fragment larger than {limit} bytes")
            values[key] = text
        await self.store.set_many(event.user, values)


def setup(m) -> None:
    private = PrivateStorage(m.open_store(STORE, "map"), lambda: m.get_option("private_max_size"))
    m.add_feature(ns.PRIVATE, to="account")
    m.hook_iq("get", ns.PRIVATE, "query", private.get, to=("bare",), own_account=True)
    m.hook_iq("set", ns.PRIVATE, "query", private.set, to=("bare",), own_account=True)

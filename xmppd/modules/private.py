"""Private XML storage (XEP-0049): an account stores XML fragments, one per
(element name, namespace), that only it can read back.

* get: for each child of the query, the stored fragment, or the requested
  (empty) element when nothing is stored;
* set: each child replaces what is stored under its name and namespace; a
  child without content deletes it;
* ``jabber:client``, ``jabber:server``, ``jabber:iq:private`` payloads →
  ``not-acceptable``; an empty query → ``not-acceptable``; to another account
  → ``forbidden``; above ``private_max_size`` bytes per fragment →
  ``not-acceptable``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError

from xmppd.xmpp.stanza import from_xml, to_xml

PROTOCOLS = ["XEP-0049"]
OPTIONS = [
    Option("private_max_size", "integer", 65536, "both",
           "Largest private XML fragment (serialized, in bytes) an account may store.", min=0),
]
NS = "jabber:iq:private"
STORE = "private"
REFUSED = frozenset({"jabber:client", "jabber:server", "jabber:component:accept", NS, ""})


def _key(child: ET.Element) -> str:
    xmlns, name = st.split_tag(child.tag)
    if xmlns in REFUSED:
        raise StanzaError("not-acceptable", f"namespace {xmlns or '(none)'} may not be stored")
    return f"{name}:{xmlns}"


def setup(m) -> None:
    host = m.host
    store = m.open_store(STORE, "map")
    m.add_feature(NS, to="account")

    def check(event) -> list[ET.Element]:
        if event.from_bare != f"{event.to_node}@{host.name}":
            raise StanzaError("forbidden", "private storage is only for your own account")
        children = list(event.payload)
        if not children:
            raise StanzaError("not-acceptable", "the query needs at least one child element")
        return children

    async def get(event):
        children = check(event)
        keys = [_key(c) for c in children]
        q = ET.Element(f"{{{NS}}}query")
        for child, key in zip(children, keys):
            stored = await store.get(event.to_node, key)
            if stored is not None:
                q.append(from_xml(stored))
            else:
                q.append(ET.Element(child.tag, dict(child.attrib)))
        return q

    async def set_(event):
        children = check(event)
        limit = m.get_option("private_max_size")
        values: dict[str, str | None] = {}
        for child in children:
            key = _key(child)
            if len(child) == 0 and not (child.text or "").strip():
                values[key] = None
                continue
            text = to_xml(child)
            if len(text.encode()) > limit:
                raise StanzaError("not-acceptable", f"fragment larger than {limit} bytes")
            values[key] = text
        await store.set_many(event.to_node, values)
        return None

    m.hook_iq("get", NS, "query", get, to=("bare",))
    m.hook_iq("set", NS, "query", set_, to=("bare",))

"""vcard-temp (XEP-0054): each account's vCard, stored as XML.

* get with no 'to' (or 'to' the own bare JID): the own vCard, or an empty
  ``<vCard/>`` when none is stored;
* get to another account's bare JID: its vCard, ``item-not-found`` when it has
  none (or does not exist);
* set: own vCard only (``forbidden`` otherwise); an empty ``<vCard/>`` deletes
  it; larger than ``vcard_max_size`` → ``not-acceptable``.
* get to the server: ``item-not-found`` (the server has no vCard).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.xmpp.errors import StanzaError

from xmppd.xmpp.stanza import from_xml, to_xml

PROTOCOLS = ["XEP-0054"]
OPTIONS = [
    Option("vcard_max_size", "integer", 32768, "both",
           "Largest vCard (serialized, in bytes) an account may store; photos count.", min=0),
]
NS = "vcard-temp"
STORE = "vcard"


def setup(m) -> None:
    host = m.host
    store = m.open_store(STORE, "keyval")
    m.add_feature(NS)
    m.add_feature(NS, to="account")

    def own(event) -> bool:
        return event.from_bare == f"{event.to_node}@{host.name}"

    async def get_vcard(event):
        stored = await store.get(event.to_node)
        if stored is None:
            if own(event):
                return ET.Element(f"{{{NS}}}vCard")
            raise StanzaError("item-not-found")
        return from_xml(stored)

    async def set_vcard(event):
        if not own(event):
            raise StanzaError("forbidden", "you may only set your own vCard")
        vcard = event.payload
        if len(vcard) == 0 and not (vcard.text or "").strip():
            await store.delete(event.to_node)
            return None
        text = to_xml(vcard)
        limit = m.get_option("vcard_max_size")
        if len(text.encode()) > limit:
            raise StanzaError("not-acceptable", f"vCard larger than {limit} bytes")
        await store.set(event.to_node, text)
        return None

    def host_vcard(event):
        raise StanzaError("item-not-found")

    m.hook_iq("get", NS, "vCard", get_vcard, to=("bare",))
    m.hook_iq("set", NS, "vCard", set_vcard, to=("bare",))
    m.hook_iq("get", NS, "vCard", host_vcard)

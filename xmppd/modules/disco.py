"""Service Discovery (XEP-0030) for the server and its accounts.

Identities and features are assembled from what every loaded module
registered (``m.add_feature``, ``m.add_identity``); nothing is listed by hand.
"""
import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0030"]
INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
OPTIONS = [
    Option("disco_items", "list", [], "both",
           "Extra items listed in the server's disco#items: { { \"jid\", \"name\" }, ... }."),
    Option("server_name", "string", "xmppd", "both", "Name in the server's disco identity."),
]


def _info(identities, features, extensions, node=None):
    q = ET.Element(f"{{{INFO}}}query")
    if node:
        q.set("node", node)
    for cat, typ, name in sorted(set(identities), key=lambda i: (i[0], i[1], i[2] or "")):
        attrs = {"category": cat, "type": typ}
        if name:
            attrs["name"] = name
        ET.SubElement(q, f"{{{INFO}}}identity", attrs)
    for var in sorted(set(features)):
        ET.SubElement(q, f"{{{INFO}}}feature", {"var": var})
    for form in extensions:
        q.append(form)
    return q


def setup(m) -> None:
    host = m.host
    m.add_identity("server", "im", m.get_option("server_name"))
    m.add_feature(INFO)
    m.add_feature(ITEMS)
    m.add_identity("account", "registered", to="account")
    m.add_feature(INFO, to="account")
    m.add_feature(ITEMS, to="account")

    def host_info(event):
        node = event.payload.get("node")
        if node:
            raise StanzaError("item-not-found")
        return _info(host.identities, host.features, host.disco_extensions)

    def host_items(event):
        if event.payload.get("node"):
            raise StanzaError("item-not-found")
        q = ET.Element(f"{{{ITEMS}}}query")
        for name, other in m.server.hosts.items():
            if other is not host and not other.is_virtualhost and name.endswith("." + host.name):
                ET.SubElement(q, f"{{{ITEMS}}}item", {"jid": name})
        for item in m.get_option("disco_items") or ():
            if isinstance(item, dict):
                jid, name = item.get(1), item.get(2)
            else:
                jid, name = (list(item) + [None, None])[:2]
            if jid:
                attrs = {"jid": str(jid)}
                if name:
                    attrs["name"] = str(name)
                ET.SubElement(q, f"{{{ITEMS}}}item", attrs)
        return q

    async def account_info(event):
        if not await m.server.accounts.exists(host.name, event.to_node):
            raise StanzaError("service-unavailable")
        node = event.payload.get("node")
        if node:
            raise StanzaError("item-not-found")
        return _info(host.account_identities, host.account_features, ())

    async def account_items(event):
        if not await m.server.accounts.exists(host.name, event.to_node):
            raise StanzaError("service-unavailable")
        q = ET.Element(f"{{{ITEMS}}}query")
        folded = await host.events.fold("disco-account-items", [], event)
        for item in folded:
            q.append(item)
        return q

    m.hook_iq("get", INFO, "query", host_info)
    m.hook_iq("get", ITEMS, "query", host_items)
    m.hook_iq("get", INFO, "query", account_info, to=("bare",))
    m.hook_iq("get", ITEMS, "query", account_items, to=("bare",))

"""Service Discovery (XEP-0030) for the server and its accounts.

Identities and features are assembled from what every loaded module
registered (``m.add_feature``, ``m.add_identity``, ``m.add_extension``); nothing
is listed by hand. An account's items are folded from the ``disco-account-items``
event (each hook adds its ``<item/>`` elements, see ``disco.item``).

The answers are built with :mod:`xmppd.xmpp.disco` at every request, uncached: for
the default modules (44 features and a form) that takes 25-35 µs, 10-17 µs more than
the hand-built tree it replaced, in a request of about 130 µs (measured in
the harness): too little to be worth a cache and its invalidation.
"""
from __future__ import annotations

from xmppd.moduleapi import Option
from xmppd.xmpp import disco, ns
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0030"]
OPTIONS = [
    Option("disco_items", "list", [], "both",
           "Extra items listed in the server's disco#items: { { \"jid\", \"name\" }, ... }."),
    Option("server_name", "string", "xmppd", "both", "Name in the server's disco identity."),
]


def _no_node(event) -> None:
    if event.payload.get("node"):
        raise StanzaError("item-not-found")


def configured_items(option) -> list[tuple]:
    """``disco_items`` as ``(jid, node, name)`` entries: each one a list
    ``{ "jid", "name" }`` (or a table with those at 1 and 2)."""
    out = []
    for item in option or ():
        if isinstance(item, dict):
            jid, name = item.get(1), item.get(2)
        else:
            jid, name = (list(item) + [None, None])[:2]
        if jid:
            out.append((str(jid), None, str(name) if name else None))
    return out


def host_info(event):
    _no_node(event)
    host = event.host
    return disco.info(host.identities, host.features, host.disco_extensions)


def host_items(event, extra_items):
    """The host's components (subdomains served here), the ``disco-item`` items
    modules added (``(jid[, node[, name]])``), then ``disco_items``."""
    _no_node(event)
    host = event.host
    components = [(name,) for name, other in host.server.hosts.items()
                  if other is not host and not other.is_virtualhost
                  and name.endswith("." + host.name)]
    added = [tuple(i) if isinstance(i, (tuple, list)) else (i,) for i in host.items("disco-item")]
    return disco.items(components + added + configured_items(extra_items))


async def _account_exists(event) -> None:
    host = event.host
    if not await host.server.accounts.exists(host.name, event.to_node):
        raise StanzaError("service-unavailable")


async def account_info(event):
    await _account_exists(event)
    _no_node(event)
    host = event.host
    return disco.info(host.account_identities, host.account_features)


async def account_items(event):
    await _account_exists(event)
    q = disco.items()
    q.extend(await event.host.events.fold("disco-account-items", [], event))
    return q


def setup(m) -> None:
    m.add_identity("server", "im", m.get_option("server_name"))
    m.add_feature(ns.DISCO_INFO)
    m.add_feature(ns.DISCO_ITEMS)
    m.add_identity("account", "registered", to="account")
    m.add_feature(ns.DISCO_INFO, to="account")
    m.add_feature(ns.DISCO_ITEMS, to="account")
    m.hook_iq("get", ns.DISCO_INFO, "query", host_info)
    m.hook_iq("get", ns.DISCO_ITEMS, "query",
              lambda event: host_items(event, m.get_option("disco_items")))
    m.hook_iq("get", ns.DISCO_INFO, "query", account_info, to=("bare",))
    m.hook_iq("get", ns.DISCO_ITEMS, "query", account_items, to=("bare",))

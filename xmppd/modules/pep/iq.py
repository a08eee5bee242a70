"""PubSub IQs (XEP-0060) to an account's bare JID, and the disco answers about its
nodes.

The IQs go to the server's one set of XEP-0060 handlers
(:mod:`xmppd.xmpp.pubsub_iq`, the ``pubsub`` component's too) with the
account's service (:class:`.service.AccountService`); this file checks the
account exists and says who asks (as the account's roster sees them).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import disco, ns
from xmppd.xmpp import pubsub_iq as psiq
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError

if TYPE_CHECKING:
    from .service import PEP


# -- the requests ------------------------------------------------------------------------

async def _handle(pep: "PEP", event, table: dict):
    user = event.user
    if not await pep.account_exists(user):
        raise StanzaError("service-unavailable")
    account = await pep.account(user)

    async def requester(_action):
        return await pep.requester(user, event.from_bare)
    return await psiq.handle(account, event, table, requester)


async def pubsub_set(pep: "PEP", event):
    return await _handle(pep, event, psiq.SET)


async def pubsub_get(pep: "PEP", event):
    return await _handle(pep, event, psiq.GET)


async def owner_set(pep: "PEP", event):
    return await _handle(pep, event, psiq.OWNER_SET)


async def owner_get(pep: "PEP", event):
    return await _handle(pep, event, psiq.OWNER_GET)


# -- disco -----------------------------------------------------------------------------

async def account_items(pep: "PEP", items: list, event) -> list:
    """disco#items of an account: the nodes the requester may see (fold handler)."""
    user = event.to_node
    if event.payload.get("node"):
        return items
    svc = await pep.service(user)
    req = await pep.requester(user, event.from_bare)
    for node in svc.visible_nodes(req):
        items.append(disco.item(pep.jid(user), node.name))
    return items


async def node_info(pep: "PEP", sev):
    """disco#info of one of an account's nodes (others pass on)."""
    name = sev.payload.get("node") if sev.payload is not None else None
    if not name or not sev.to_node:
        return None
    svc = await pep.service(sev.to_node)
    node = svc.nodes.get(name)
    if node is None or not svc.may_access(node, await pep.requester(sev.to_node, sev.from_bare)):
        return None
    q = disco.info([("pubsub", "leaf", None)], [ns.PUBSUB], node=name)
    await pep.m.send(st.iq_result(sev.stanza, q))
    return HANDLED

"""The XEP-0060 IQs to the service and its disco answers (the service, its
nodes, a node's meta-data and items).

The IQs go to the server's one set of XEP-0060 handlers
(:mod:`xmppd.xmpp.pubsub_iq`, PEP's too), with this service
(:class:`.service.PubSubComponent`) as their backend; this file says who asks.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.xmpp import disco, forms, ns
from xmppd.xmpp import pubsub as ps
from xmppd.xmpp import pubsub_iq as psiq
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.pubsub import PubSubError
from xmppd.xmpp.time import utc_stamp

if TYPE_CHECKING:
    from .service import PubSubComponent

# XEP-0060 §10 features, from what the service does
FEATURES = ("access-authorize", "access-open", "access-presence", "access-roster",
            "access-whitelist", "config-node", "config-node-max", "create-and-configure",
            "create-nodes", "delete-items", "delete-nodes", "instant-nodes",
            "item-ids", "last-published", "manage-subscriptions", "member-affiliation",
            "meta-data", "modify-affiliations", "outcast-affiliation", "persistent-items",
            "publish", "publish-only-affiliation",
            "publish-options", "publisher-affiliation", "purge-nodes", "retract-items",
            "retrieve-affiliations", "retrieve-default", "retrieve-default-sub",
            "retrieve-items", "retrieve-subscriptions", "subscribe", "subscription-options",
            "subscription-notifications", "rsm")


async def _handle(c: "PubSubComponent", event, table: dict):
    await c.ready.wait()

    async def requester(action):
        return await c.requester(event.from_jid, action.get("node"))
    return await psiq.handle(c, event, table, requester)


async def pubsub_set(c, event):
    return await _handle(c, event, psiq.SET)


async def pubsub_get(c, event):
    return await _handle(c, event, psiq.GET)


async def owner_set(c, event):
    return await _handle(c, event, psiq.OWNER_SET)


async def owner_get(c, event):
    return await _handle(c, event, psiq.OWNER_GET)


# -- disco -----------------------------------------------------------------------------

def metadata_form(c: "PubSubComponent", node) -> ET.Element:
    """The node's ``pubsub#meta-data`` form (XEP-0060 §5.4)."""
    cfg = node.config
    fields = [
        forms.Field("pubsub#title", "text-single", cfg.get("pubsub#title") or ""),
        forms.Field("pubsub#description", "text-single", cfg.get("pubsub#description") or ""),
        forms.Field("pubsub#type", "text-single", cfg.get("pubsub#type") or ""),
        forms.Field("pubsub#access_model", "text-single", cfg["pubsub#access_model"]),
        forms.Field("pubsub#publish_model", "text-single", cfg["pubsub#publish_model"]),
        forms.Field("pubsub#owner", "jid-multi", node.owners()),
        forms.Field("pubsub#num_subscribers", "text-single",
                    str(sum(1 for s in node.subscriptions.values() if s == "subscribed"))),
    ]
    if node.created:
        fields.append(forms.Field("pubsub#creation_date", "text-single", utc_stamp(node.created)))
    return forms.build(ns.PUBSUB_META_DATA, fields, type="result")


async def disco_info(c: "PubSubComponent", event):
    await c.ready.wait()
    name = event.payload.get("node")
    if not name:
        host = event.host
        return disco.info(host.identities, host.features, host.disco_extensions)
    node = c.svc.nodes.get(name)
    if node is None:
        raise StanzaError("item-not-found")
    req = await c.requester(event.from_jid, name)
    if not c.svc.may_see(node, req):
        raise StanzaError("item-not-found")
    return disco.info([("pubsub", "leaf", None)], [ns.PUBSUB], [metadata_form(c, node)],
                      node=name)


async def disco_items(c: "PubSubComponent", event):
    """The nodes (service) or a node's items (XEP-0060 §5.2, §5.5)."""
    await c.ready.wait()
    name = event.payload.get("node")
    if not name:
        out = []
        for node in sorted(c.svc.nodes.values(), key=lambda n: n.name):
            req = await c.requester(event.from_jid, node.name)
            if c.svc.may_see(node, req):
                out.append((c.jid, node.name, node.config.get("pubsub#title") or None))
        return disco.items(out)
    node = c.svc.nodes.get(name)
    if node is None:
        raise StanzaError("item-not-found")
    req = await c.requester(event.from_jid, name)
    try:
        c.svc.check_access(node, req)
    except PubSubError as err:
        raise ps.to_stanza_error(err) from None
    return disco.items(((c.jid, None, it.id) for it in node.items.values()), node=name)

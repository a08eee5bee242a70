"""Publish-Subscribe (XEP-0060) as an internal component, as Prosody's mod_pubsub::

    Component "pubsub.falcot.com" "pubsub"

The service runs on the server's one PubSub core (:mod:`xmppd.xmpp.pubsub`, the
same nodes, access models and forms PEP uses); this package adds what a
service has that an account's PEP does not: node owners (whoever creates a node
owns it), server admins with ``default_admin_affiliation`` on every node, the
``authorize`` access model (approval forms to the owners), subscription options,
instant nodes, item retrieval with RSM, delete with redirect, persistence of
every node in the module's stores.

Who may create nodes: as in Prosody, the server admins (``admins``, globally or
in the Component section); ``autocreate_on_publish`` / ``autocreate_on_subscribe``
let them create nodes by publishing or subscribing.

:mod:`.service` (the nodes, stores and notifications), :mod:`.iq` (the IQs and
disco), :mod:`.cli` (``xmppctl pubsub``). This file wires them.
"""
from __future__ import annotations

import asyncio
from functools import partial

from xmppd.moduleapi import CliCommand, Option, stanza_event
from xmppd.xmpp import forms, ns
from xmppd.xmpp import pubsub as ps
from xmppd.xmpp.jid import bare as jid_bare

from . import cli, iq
from .service import PubSubComponent

PROTOCOLS = ["XEP-0060", "XEP-0059", "XEP-0223"]
DEPENDS: list = []
CLI = [CliCommand("pubsub", cli.register, "publish-subscribe nodes")]

# its nodes live in the module: a changed option waits for a restart
RELOAD = "restart"

OPTIONS = [
    Option("autocreate_on_publish", "boolean", False, "host",
           "publishing to a node that does not exist creates it (for those who may create "
           "nodes: the admins), with the publish-options as its configuration"),
    Option("autocreate_on_subscribe", "boolean", False, "host",
           "subscribing to a node that does not exist creates it (for those who may create "
           "nodes: the admins)"),
    Option("expose_publisher", "boolean", None, "host",
           "put the publisher's JID on items in notifications and retrievals; unset, "
           "each node's pubsub#itemreply decides (\"publisher\": shown)"),
    Option("pubsub_max_items", "integer", 256, "host",
           "most items one node keeps: the ceiling of pubsub#max_items, and what \"max\" means",
           min=1, limit=True),
    Option("pubsub_max_payload_size", "integer", 250000, "host",
           "largest item payload (serialized, in bytes) the service accepts; beyond, "
           "not-acceptable + payload-too-big (0: no limit but the stanza size limit)",
           min=0, limit=True),
    Option("default_admin_affiliation", "string", "owner", "host",
           "the affiliation of the server admins on every node (they alone may create nodes)",
           choices=("owner", "publisher", "member", "outcast", "none")),
]


def _admins(m) -> frozenset[str]:
    out = set()
    for j in m.host.get_option("admins") or ():
        if isinstance(j, str):
            b = jid_bare(j)
            if b:
                out.add(b)
    return frozenset(out)


def setup(m) -> None:
    host = m.host
    if getattr(host, "kind", "component") != "component":
        m.log.warning("%s: pubsub is meant for a Component \"pubsub.%s\" \"pubsub\"; "
                      "nodes are served on this VirtualHost's domain anyway", host.name, host.name)
    policy = ps.Policy(fields=ps.SERVICE_CONFIG_FIELDS, defaults=ps.SERVICE_DEFAULT_CONFIG,
                       access_models=ps.ACCESS_MODELS,
                       autocreate_on_publish=m.get_option("autocreate_on_publish"),
                       autocreate_on_subscribe=m.get_option("autocreate_on_subscribe"),
                       instant_nodes=True)
    c = PubSubComponent(m, admins=_admins(m),
                        admin_affiliation=m.get_option("default_admin_affiliation"),
                        expose_publisher=m.get_option("expose_publisher"),
                        max_items=m.get_option("pubsub_max_items"), policy=policy,
                        max_payload_size=m.get_option("pubsub_max_payload_size"),
                        name=host.get_option("name") or "PubSub Service")
    m.provide(c)
    m.on_unload(c.close)

    m.add_identity("pubsub", "service", c.name)
    for var in (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PUBSUB,
                *(f"{ns.PUBSUB}#{f}" for f in iq.FEATURES)):
        m.add_feature(var)
    if policy.autocreate_on_publish:
        m.add_feature(f"{ns.PUBSUB}#auto-create")
    if policy.autocreate_on_subscribe:
        m.add_feature(f"{ns.PUBSUB}#auto-subscribe")

    m.hook_iq("set", ns.PUBSUB, "pubsub", partial(iq.pubsub_set, c))
    m.hook_iq("get", ns.PUBSUB, "pubsub", partial(iq.pubsub_get, c))
    m.hook_iq("set", ns.PUBSUB_OWNER, "pubsub", partial(iq.owner_set, c))
    m.hook_iq("get", ns.PUBSUB_OWNER, "pubsub", partial(iq.owner_get, c))
    m.hook_iq("get", ns.DISCO_INFO, "query", partial(iq.disco_info, c))
    m.hook_iq("get", ns.DISCO_ITEMS, "query", partial(iq.disco_items, c))
    m.hook(stanza_event("message", "host"), partial(on_message, c))
    m.hook(stanza_event("presence", "host"), partial(on_presence, c))

    m.add_control_command("pubsub-nodes", nodes_command, read_only=True,
                          doc="The nodes of a pubsub service.")
    m.add_control_command("pubsub-delete", delete_command,
                          doc="Delete a node of a pubsub service (its subscribers are told).")
    c.load_task = asyncio.get_running_loop().create_task(c.load())


async def on_presence(c: PubSubComponent, sev):
    """An available presence to the service: the last items (``on_sub_and_presence``)."""
    if sev.stanza.get("type") is None and "/" in (sev.from_jid or ""):
        await c.on_presence(sev.from_jid)
    return True


async def on_message(c: PubSubComponent, sev):
    """An owner's answer to a subscription approval form (XEP-0060 §8.7.2)."""
    x = sev.stanza.find(forms.X)
    if x is None:
        return None
    try:
        sub = forms.read(x, form_type=ns.PUBSUB_SUBSCRIBE_AUTHORIZATION,
                         types=("submit", "cancel"))
    except Exception:
        return None
    if sub.form_type != ns.PUBSUB_SUBSCRIBE_AUTHORIZATION or sub.type == "cancel":
        return True
    await c.ready.wait()
    name, jid = sub.get("pubsub#node"), sub.get("pubsub#subscriber_jid")
    node = c.svc.nodes.get(name or "")
    if node is None or not jid:
        return True
    req = await c.requester(sev.from_jid, node.name)
    if c.svc.affiliation(node, req) != "owner" or node.subscriptions.get(jid) != "pending":
        return True
    state = "subscribed" if sub.boolean("pubsub#allow") else "none"
    _, changed = c.svc.set_subscriptions(req, node.name, {jid: state})
    await c.save(node, items=False)
    for j, s in changed.items():
        await c.subscription_changed(node, j, s)
    return True


def _service(ctx, domain: str) -> PubSubComponent:
    host = ctx.server.hosts.get(domain)
    c = host.provided("pubsub") if host is not None else None
    if c is None:
        raise ctx.Error(f"{domain!r} is not a pubsub service of the running xmppd")
    return c


async def nodes_command(ctx, args: dict) -> list[dict]:
    """``pubsub-nodes`` on the control socket: the nodes of the running service."""
    c = _service(ctx, ctx.arg(args, "domain"))
    await c.ready.wait()
    return [cli.node_info(n.name, n.record(), len(n.items))
            for n in sorted(c.svc.nodes.values(), key=lambda n: n.name)]


async def delete_command(ctx, args: dict) -> dict:
    """``pubsub-delete``: delete a node through the running service."""
    c = _service(ctx, ctx.arg(args, "domain"))
    name = ctx.arg(args, "node")
    if not await c.admin_delete(name):
        raise ctx.Error(f"no node {name!r} on {c.jid}")
    return {"node": name, "domain": c.jid}

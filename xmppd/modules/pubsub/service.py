"""The pubsub service of one component: its nodes (the server's one PubSub core,
:mod:`xmppd.xmpp.pubsub`) loaded from and saved to the module's stores, who is
asking (admins, node owners' rosters), and the operations that tell others:
notifications, the last published item, subscription approval forms.

Stores: ``pubsub_nodes`` (map, user "": node → config, affiliations,
subscriptions) and ``pubsub_items`` (map, user "": node → items, oldest first).
"""
from __future__ import annotations

import asyncio
import secrets
import xml.etree.ElementTree as ET

from xmppd.xmpp import forms, ns
from xmppd.xmpp import pubsub as ps
from xmppd.xmpp import stanza as st
from xmppd.xmpp.jid import bare as jid_bare, split
from xmppd.xmpp.pubsub import Node, Policy, PubSubService, Requester
from xmppd.xmpp.stanza import to_xml

NODES_STORE = "pubsub_nodes"
ITEMS_STORE = "pubsub_items"


async def load_nodes(nodes_store, items_store) -> dict[str, Node]:
    """Every stored node (with its items)."""
    nodes = await nodes_store.items("")
    items = await items_store.items("") if nodes else {}
    return {name: Node.from_record(name, rec, items.get(name), ps.SERVICE_DEFAULT_CONFIG)
            for name, rec in nodes.items()}


class PubSubComponent:
    def __init__(self, m, *, admins: frozenset[str], admin_affiliation: str,
                 expose_publisher: bool | None, max_items: int, policy: Policy,
                 name: str, max_payload_size: int = 0):
        self.m = m
        self.host = m.host
        self.jid = m.host.name
        self.name = name
        self.admins = admins
        self.admin_affiliation = admin_affiliation
        self.expose_publisher = expose_publisher
        self.max_payload_size = max_payload_size
        self.nodes_store = m.open_store(NODES_STORE, "map")
        self.items_store = m.open_store(ITEMS_STORE, "map")
        self.svc = PubSubService(None, max_items_limit=max_items, policy=policy)
        self.ready = asyncio.Event()
        self.load_task: asyncio.Task | None = None

    async def load(self) -> None:
        try:
            self.svc.nodes.update(await load_nodes(self.nodes_store, self.items_store))
        finally:
            self.ready.set()

    def close(self) -> None:
        if self.load_task is not None and not self.load_task.done():
            self.load_task.cancel()

    # -- who is asking ---------------------------------------------------------------
    def is_admin(self, bare: str) -> bool:
        return bare in self.admins or bare == self.jid

    async def _roster_item(self, owner: str, contact: str) -> dict | None:
        try:
            user, domain, _ = split(owner)
        except Exception:
            return None
        host = self.m.server.hosts.get(domain)
        if not user or host is None or getattr(host, "roster", None) is None:
            return None
        return await host.roster.get_item(user, contact)

    async def requester(self, jid: str, node_name: str | None = None) -> Requester:
        """``jid`` as the service sees it; for a node whose access model is
        ``presence`` or ``roster``, with its subscription and groups in the
        rosters of the node's owners (local accounts)."""
        bare = jid_bare(jid) or jid
        admin = self.is_admin(bare)
        sub, groups = "none", set()
        node = self.svc.nodes.get(node_name) if node_name else None
        if node is not None and node.access_model in ("presence", "roster"):
            for owner in node.owners():
                if owner == bare:
                    sub = "both"
                    continue
                item = await self._roster_item(owner, bare)
                if item is None:
                    continue
                s = item.get("subscription") or "none"
                if s in ("from", "both"):
                    sub = s if sub not in ("from", "both") else sub
                groups.update(item.get("groups") or ())
        return Requester(bare, subscription=sub, groups=frozenset(groups),
                         service_affiliation=self.admin_affiliation if admin else None,
                         may_create=admin)

    def show_publisher(self, node: Node) -> bool:
        if self.expose_publisher is not None:
            return self.expose_publisher
        return node.config.get("pubsub#itemreply") == "publisher"

    # -- storage -----------------------------------------------------------------------
    async def save(self, node: Node, *, items: bool = True, config: bool = True) -> None:
        if config:
            await self.nodes_store.set("", node.name, node.record())
        if items:
            await self.items_store.set("", node.name, node.item_records())

    async def forget(self, name: str) -> None:
        await self.nodes_store.delete("", name)
        await self.items_store.delete("", name)

    # -- sending -----------------------------------------------------------------------
    async def send(self, stanza: ET.Element) -> None:
        await self.m.send(stanza)

    async def send_message(self, to: str, payload: ET.Element, *, mtype: str | None = None,
                           stamp: float | None = None) -> None:
        attrs = {"from": self.jid, "to": to, "id": "ps-" + secrets.token_hex(6)}
        if mtype and mtype != "normal":
            attrs["type"] = mtype
        msg = st.make("message", attrs)
        msg.append(payload)
        if stamp is not None:
            st.add_delay(msg, self.jid, stamp)
        await self.m.send(msg)

    async def broadcast(self, node: Node, ev_el: ET.Element,
                        targets: list[str] | None = None) -> None:
        if targets is None:
            targets = self.targets(node)
        mtype = node.config.get("pubsub#notification_type") or "headline"
        for to in targets:
            await self.send_message(to, ev_el, mtype=mtype)

    def targets(self, node: Node) -> list[str]:
        return [jid for jid in node.subscriptions if node.deliver_to(jid)]

    async def send_last_item(self, node: Node, to: str) -> None:
        last = node.last_item()
        if last is None or not node.deliver_to(to):
            return
        ev_el = ps.items_event(node, [last], publisher=self.show_publisher(node))
        await self.send_message(to, ev_el, mtype=node.config.get("pubsub#notification_type"),
                                stamp=last.when)

    # -- operations that notify ----------------------------------------------------------
    async def publish(self, req: Requester, name: str | None, item_id: str | None,
                      payload: ET.Element | None, options: dict | None) -> ps.PublishResult:
        xml = to_xml(payload) if payload is not None else ""
        res = self.svc.publish(req, name, item_id, xml, options)
        await self.save(res.node, config=res.created)
        if res.node.config["pubsub#deliver_notifications"]:
            await self.broadcast(res.node, ps.items_event(
                res.node, [res.item], publisher=self.show_publisher(res.node)))
        return res

    async def retract(self, req: Requester, name: str | None, item_id: str | None,
                      notify: bool) -> None:
        node = self.svc.retract(req, name, item_id)
        await self.save(node, config=False)
        if notify or node.config["pubsub#notify_retract"]:
            await self.broadcast(node, ps.retract_event(node, item_id))

    async def delete(self, req: Requester, name: str | None, redirect: str | None) -> Node:
        node = self.svc.delete(req, name)
        await self.forget(node.name)
        if node.config["pubsub#notify_delete"]:
            await self.broadcast(node, ps.delete_event(node, redirect))
        return node

    async def admin_delete(self, name: str) -> bool:
        """Delete a node for the server admin (xmppctl); subscribers are told."""
        await self.ready.wait()
        node = self.svc.nodes.pop(name, None)
        existed = await self.nodes_store.get("", name) is not None
        await self.forget(name)
        if node is not None and node.config["pubsub#notify_delete"]:
            await self.broadcast(node, ps.delete_event(node))
        return node is not None or existed

    async def purge(self, req: Requester, name: str | None) -> Node:
        node = self.svc.purge(req, name)
        await self.save(node, config=False)
        if node.config["pubsub#notify_retract"]:    # one notification, §8.5.2
            await self.broadcast(node, ps.purge_event(node))
        return node

    async def configure(self, req: Requester, name: str | None, options: dict) -> Node:
        node, evicted = self.svc.configure(req, name, options)
        await self.save(node, items=bool(evicted) or "pubsub#persist_items" in options)
        if node.config.get("pubsub#notify_config"):
            await self.broadcast(node, ps.configuration_event(
                node, ps.SERVICE_CONFIG_FIELDS, payload=node.config["pubsub#deliver_payloads"]))
        return node

    async def subscription_changed(self, node: Node, jid: str, state: str) -> None:
        """Tell ``jid`` its new state (XEP-0060 §8.7.2, §8.8.2) and, when it is
        subscribed now, send the last item if the node says so."""
        await self.send_message(jid, ps.subscription_answer(node, jid, state))
        if state == "subscribed" and \
                node.config["pubsub#send_last_published_item"] != "never":
            await self.send_last_item(node, jid)

    async def after_subscribe(self, node: Node, jid: str, state: str, before) -> None:
        """After the answer to a subscribe: the approval form to the owners (a
        new pending subscription), or the last item (``on_sub``...)."""
        if state == "pending" and before != "pending":
            await self.ask_owners(node, jid)
        elif state == "subscribed" and \
                node.config["pubsub#send_last_published_item"] != "never":
            await self.send_last_item(node, jid)

    async def ask_owners(self, node: Node, jid: str) -> None:
        """The subscription approval form (XEP-0060 §8.7.1) to the node's owners."""
        fields = [
            forms.Field("pubsub#node", "text-single", node.name, label="Node ID"),
            forms.Field("pubsub#subscriber_jid", "jid-single", jid, label="Subscriber Address"),
            forms.Field("pubsub#allow", "boolean", False,
                        label="Allow this Jabber ID to subscribe to this pubsub node?"),
        ]
        form = forms.build(ns.PUBSUB_SUBSCRIBE_AUTHORIZATION, fields,
                           title="PubSub subscriber request",
                           instructions="To approve this entity's subscription request, "
                                        "click the OK button. To deny the request, click "
                                        "the cancel button.")
        for owner in node.owners():
            await self.send_message(owner, form)

    async def on_presence(self, jid: str) -> None:
        """``jid`` became available to the service: the last item of each node it is
        subscribed to with ``on_sub_and_presence``."""
        await self.ready.wait()
        bare = jid_bare(jid) or jid
        for node in list(self.svc.nodes.values()):
            if node.config["pubsub#send_last_published_item"] != "on_sub_and_presence":
                continue
            for sub in (jid, bare):
                if node.deliver_to(sub):
                    await self.send_last_item(node, jid)
                    break

"""The PEP service of one host: every account's PubSub service (:mod:`xmppd.xmpp.pubsub`)
loaded from and saved to the stores, and the operations that change nodes and
tell others (publish, retract, delete, purge), shared by the IQs (:mod:`.iq`)
and the conversions (:mod:`.compat`). It is what the module provides.
"""
from __future__ import annotations

import collections
import xml.etree.ElementTree as ET

from xmppd.xmpp import pubsub as ps
from xmppd.xmpp.jid import bare as jid_bare
from xmppd.xmpp.pubsub import Node, PubSubService, Requester, subscription_answer
from xmppd.xmpp.stanza import to_xml

from .compat import Compat
from .notify import Notifier


class AccountService:
    """One account's PubSub service as the shared XEP-0060 handlers
    (:mod:`xmppd.xmpp.pubsub_iq`) see it: its nodes, and the host's PEP for what
    touches the world."""
    max_payload_size = 0

    def __init__(self, pep: "PEP", user: str, svc: PubSubService):
        self.pep = pep
        self.user = user
        self.svc = svc

    async def send(self, stanza: ET.Element) -> None:
        await self.pep.m.send(stanza)

    async def save(self, node: Node, *, items: bool = True, config: bool = True) -> None:
        await self.pep.save(self.user, node, items=items, config=config)

    async def publish(self, req, name, item_id, payload, options):
        return await self.pep.publish(self.user, req, name, item_id, payload, options)

    async def retract(self, req, name, item_id, notify: bool) -> None:
        await self.pep.retract(self.user, req, name, item_id, notify)

    async def delete(self, req, name, redirect=None) -> Node:
        return await self.pep.delete(self.user, req, name, redirect)

    async def purge(self, req, name) -> Node:
        return await self.pep.purge(self.user, req, name)

    async def configure(self, req, name, options: dict) -> Node:
        node, evicted = self.svc.configure(req, name, options)
        await self.save(node, items=bool(evicted))
        return node

    async def after_subscribe(self, node: Node, jid: str, state: str, before) -> None:
        last = node.last_item()
        if state == "subscribed" and last is not None and \
                node.config["pubsub#send_last_published_item"] != "never":
            await self.pep.notify.send_event(self.user, jid, ps.items_event(node, [last]),
                                             last.when)

    async def subscription_changed(self, node: Node, jid: str, state: str) -> None:
        await self.pep.notify.send_event(self.user, jid, subscription_answer(node, jid, state))

    def show_publisher(self, node: Node) -> bool:
        return False


class PEP:
    """Stores: ``pep_nodes`` (map: user → node → config/affiliations/subscriptions)
    and ``pep_items`` (map: user → node → items, oldest first)."""

    def __init__(self, m, *, vcards=None, private=None):
        self.m = m
        self.host = m.host
        self.nodes_store = m.open_store("pep_nodes", "map")
        self.items_store = m.open_store("pep_items", "map")
        self.services: collections.OrderedDict[str, PubSubService] = collections.OrderedDict()
        self.notify = Notifier(self)
        self.compat = Compat(self, vcards=vcards, private=private)

    # -- services and storage ------------------------------------------------
    def jid(self, user: str) -> str:
        return f"{user}@{self.host.name}"

    async def account_exists(self, user: str | None) -> bool:
        return bool(user) and await self.m.server.accounts.exists(self.host.name, user)

    async def service(self, user: str) -> PubSubService:
        """``user``'s PubSub service, from the cache or the stores."""
        svc = self.services.get(user)
        if svc is not None:
            self.services.move_to_end(user)
            return svc
        nodes = await self.nodes_store.items(user)
        items = await self.items_store.items(user) if nodes else {}
        svc = self.services.get(user)
        if svc is not None:
            return svc
        svc = PubSubService(self.jid(user), max_items_limit=self.m.get_option("pep_max_items"),
                            defaults={"pubsub#max_items": self.m.get_option("pep_default_max_items")})
        for name, rec in nodes.items():
            svc.nodes[name] = Node.from_record(name, rec, items.get(name))
        self.services[user] = svc
        while len(self.services) > self.m.get_option("pep_service_cache_size"):
            self.services.popitem(last=False)
        return svc

    async def save(self, user: str, node: Node, *, items: bool = True, config: bool = True) -> None:
        if config:
            await self.nodes_store.set(user, node.name, node.record())
        if items:
            await self.items_store.set(user, node.name, node.item_records())

    async def forget_node(self, user: str, name: str) -> None:
        await self.nodes_store.delete(user, name)
        await self.items_store.delete(user, name)

    async def forget_user(self, user: str) -> None:
        """The account is deleted: its nodes and items go."""
        self.services.pop(user, None)
        self.notify.forget_user(user)
        await self.nodes_store.clear(user)
        await self.items_store.clear(user)

    async def requester(self, user: str, jid: str) -> Requester:
        """``jid`` as ``user``'s service sees it (roster subscription and groups)."""
        bare = jid_bare(jid) or jid
        if bare == self.jid(user):
            return Requester(bare, is_owner=True, subscription="both")
        item = await self.host.roster.get_item(user, bare)
        if item is None:
            return Requester(bare)
        return Requester(bare, subscription=item.get("subscription") or "none",
                         groups=frozenset(item.get("groups") or ()))

    # -- operations that notify -----------------------------------------------
    async def publish(self, user: str, req: Requester, node_name: str, item_id: str | None,
                      payload: ET.Element | None, options: dict | None = None,
                      *, origin: str = "client"):
        """Publish (auto-creating the node); ``origin`` "vcard"/"compat" when a
        conversion publishes, so that it is not converted back."""
        svc = await self.service(user)
        xml = to_xml(payload) if payload is not None else ""
        res = svc.publish(req, node_name, item_id, xml, options)
        await self.save(user, res.node, config=res.created)
        if res.node.config["pubsub#deliver_notifications"]:
            await self.notify.broadcast(user, res.node, ps.items_event(res.node, [res.item]))
        await self.compat.published(user, res.node, res.item, origin)
        return res

    async def retract(self, user: str, req: Requester, node_name: str, item_id: str,
                      notify_: bool) -> None:
        svc = await self.service(user)
        node = svc.retract(req, node_name, item_id)
        await self.save(user, node, config=False)
        if notify_ or node.config["pubsub#notify_retract"]:
            await self.notify.broadcast(user, node, ps.retract_event(node, item_id))
        await self.compat.retracted(user, node, item_id)

    async def account(self, user: str) -> AccountService:
        return AccountService(self, user, await self.service(user))

    async def delete(self, user: str, req: Requester, name: str | None,
                     redirect: str | None = None) -> Node:
        svc = await self.service(user)
        node = svc.nodes.get(name) if name else None
        # who was told of the node while it existed
        targets = await self.notify.targets(user, node) if node is not None else []
        node = svc.delete(req, name)
        await self.forget_node(user, node.name)
        if node.config["pubsub#notify_delete"]:
            await self.notify.broadcast(user, node, ps.delete_event(node, redirect), targets)
        await self.compat.deleted(user, node)
        return node

    async def purge(self, user: str, req: Requester, name: str | None) -> Node:
        svc = await self.service(user)
        node = svc.purge(req, name)
        targets = await self.notify.targets(user, node)
        await self.save(user, node, config=False)
        await self.notify.broadcast(user, node, ps.purge_event(node), targets)
        return node

    def close(self) -> None:
        self.notify.cancel_timers()

"""A sans-I/O PubSub service (the XEP-0060 subset a PEP account needs).

One ``PubSubService`` per account: its nodes, each with a configuration,
items (oldest first), affiliations and explicit subscriptions. No sockets, no
storage, no XML parsing of requests: the module turns IQs into calls, and
``Node.record()`` / ``Node.item_records()`` into what it stores.

Who may do what is decided from a ``Requester`` the caller builds (its bare
JID, whether it is the owner, its roster subscription and groups in the
owner's roster). Refusals raise ``PubSubError``: a stanza error condition plus
the ``pubsub#errors`` condition XEP-0060 gives for the case.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCESS_MODELS = ("open", "presence", "roster", "whitelist", "authorize")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")

# field var -> kind. Kinds: "bool", "int_or_max", "list-single:<choices>", "text", "list-multi".
CONFIG_FIELDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "pubsub#access_model": ("list-single", ACCESS_MODELS),
    "pubsub#publish_model": ("list-single", PUBLISH_MODELS),
    "pubsub#max_items": ("int_or_max", None),
    "pubsub#persist_items": ("bool", None),
    "pubsub#send_last_published_item": ("list-single", SEND_LAST),
    "pubsub#deliver_notifications": ("bool", None),
    "pubsub#deliver_payloads": ("bool", None),
    "pubsub#notify_retract": ("bool", None),
    "pubsub#notify_delete": ("bool", None),
    "pubsub#notify_config": ("bool", None),
    "pubsub#roster_groups_allowed": ("list-multi", None),
    "pubsub#title": ("text", None),
    "pubsub#description": ("text", None),
    "pubsub#type": ("text", None),
    "pubsub#itemreply": ("list-single", ("owner", "publisher")),
}

DEFAULT_CONFIG: dict[str, Any] = {
    "pubsub#access_model": "presence",
    "pubsub#publish_model": "publishers",
    "pubsub#max_items": 1,
    "pubsub#persist_items": True,
    "pubsub#send_last_published_item": "on_sub_and_presence",
    "pubsub#deliver_notifications": True,
    "pubsub#deliver_payloads": True,
    "pubsub#notify_retract": True,
    "pubsub#notify_delete": True,
    "pubsub#notify_config": False,
    "pubsub#roster_groups_allowed": [],
    "pubsub#title": "",
    "pubsub#description": "",
    "pubsub#type": "",
    "pubsub#itemreply": "owner",
}

AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "none", "outcast")


class PubSubError(Exception):
    """A refusal: ``condition`` (RFC 6120) and ``pubsub`` (a pubsub#errors element name)."""

    def __init__(self, condition: str, pubsub: str | None = None, text: str | None = None,
                 feature: str | None = None):
        super().__init__(f"{condition}/{pubsub}: {text}" if text else f"{condition}/{pubsub}")
        self.condition = condition
        self.pubsub = pubsub
        self.text = text
        self.feature = feature


@dataclass(frozen=True)
class Requester:
    """Who is asking, as seen from the owner's account."""
    bare: str
    is_owner: bool = False
    subscription: str = "none"          # the requester's state in the owner's roster
    groups: frozenset = frozenset()     # the requester's groups in the owner's roster


@dataclass
class Item:
    id: str
    xml: str                 # the payload, serialized ("" for none)
    publisher: str = ""
    when: float = 0.0

    def record(self) -> list:
        return [self.id, self.xml, self.publisher, self.when]

    @classmethod
    def from_record(cls, rec: list) -> "Item":
        return cls(rec[0], rec[1], rec[2] if len(rec) > 2 else "", rec[3] if len(rec) > 3 else 0.0)


@dataclass
class Node:
    name: str
    config: dict[str, Any]
    items: dict[str, Item] = field(default_factory=dict)      # insertion order = age
    affiliations: dict[str, str] = field(default_factory=dict)  # bare -> affiliation
    subscriptions: dict[str, str] = field(default_factory=dict)  # jid -> "subscribed"

    @property
    def access_model(self) -> str:
        return self.config["pubsub#access_model"]

    @property
    def persistent(self) -> bool:
        return bool(self.config["pubsub#persist_items"])

    def last_item(self) -> Item | None:
        if not self.items:
            return None
        return next(reversed(self.items.values()))

    def record(self) -> dict:
        return {"config": self.config, "aff": self.affiliations, "subs": self.subscriptions}

    def item_records(self) -> list:
        return [i.record() for i in self.items.values()] if self.persistent else []

    @classmethod
    def from_record(cls, name: str, rec: dict, items: list | None = None) -> "Node":
        config = dict(DEFAULT_CONFIG)
        config.update(rec.get("config") or {})
        node = cls(name, config, affiliations=dict(rec.get("aff") or {}),
                   subscriptions=dict(rec.get("subs") or {}))
        for r in items or ():
            it = Item.from_record(r)
            node.items[it.id] = it
        return node


@dataclass
class PublishResult:
    node: Node
    item: Item
    created: bool
    evicted: list[str]


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true"):
        return True
    if v in ("0", "false"):
        return False
    raise ValueError(value)


def parse_options(fields: dict[str, list[str]], max_items_limit: int,
                  *, strict: bool = True) -> dict[str, Any]:
    """Turn form fields (var -> values) into config values.

    Unknown fields raise ``not-acceptable`` when ``strict``; FORM_TYPE is skipped.
    """
    out: dict[str, Any] = {}
    for var, values in fields.items():
        if var == "FORM_TYPE":
            continue
        spec = CONFIG_FIELDS.get(var)
        if spec is None:
            if strict:
                raise PubSubError("not-acceptable", None, f"unsupported option {var}")
            continue
        kind, choices = spec
        value = values[0] if values else ""
        try:
            if kind == "bool":
                out[var] = _bool(value)
            elif kind == "int_or_max":
                if value.strip() == "max":
                    out[var] = "max"
                else:
                    n = int(value)
                    if n < 1 or n > max_items_limit:
                        raise ValueError(value)
                    out[var] = n
            elif kind == "list-single":
                if choices and value not in choices:
                    raise ValueError(value)
                out[var] = value
            elif kind == "list-multi":
                out[var] = sorted(set(values))
            else:
                out[var] = value
        except ValueError:
            raise PubSubError("not-acceptable", None, f"invalid value for {var}") from None
        if var == "pubsub#access_model" and value == "authorize":
            raise PubSubError("not-acceptable", None, "the authorize access model is not supported")
    return out


class PubSubService:
    """The nodes of one account (``owner`` is its bare JID)."""

    def __init__(self, owner: str, *, max_items_limit: int = 256,
                 defaults: dict[str, Any] | None = None):
        self.owner = owner
        self.max_items_limit = max_items_limit
        self.defaults = dict(DEFAULT_CONFIG)
        if defaults:
            self.defaults.update(defaults)
        self.nodes: dict[str, Node] = {}

    # -- helpers -----------------------------------------------------------
    def limit(self, node: Node) -> int:
        mi = node.config["pubsub#max_items"]
        return self.max_items_limit if mi == "max" else min(int(mi), self.max_items_limit)

    def get_node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise PubSubError("item-not-found", None, f"no node {name}")
        return node

    def affiliation(self, node: Node, req: Requester) -> str:
        if req.is_owner:
            return "owner"
        return node.affiliations.get(req.bare, "none")

    def check_access(self, node: Node, req: Requester) -> None:
        """Raise unless ``req`` may see ``node``'s items (XEP-0060 §6.5.9, §6.1.3)."""
        aff = self.affiliation(node, req)
        if aff == "outcast":
            raise PubSubError("forbidden", None, "you are banned from this node")
        if aff in ("owner", "publisher", "member"):
            return
        model = node.access_model
        if model == "open":
            return
        if model == "presence":
            if req.subscription not in ("from", "both"):
                raise PubSubError("not-authorized", "presence-subscription-required")
            return
        if model == "roster":
            allowed = set(node.config.get("pubsub#roster_groups_allowed") or ())
            if req.subscription not in ("from", "both") or not (allowed & set(req.groups)):
                raise PubSubError("not-authorized", "not-in-roster-group")
            return
        raise PubSubError("not-allowed", "closed-node")

    def may_access(self, node: Node, req: Requester) -> bool:
        try:
            self.check_access(node, req)
        except PubSubError:
            return False
        return True

    def check_owner(self, req: Requester) -> None:
        if not req.is_owner:
            raise PubSubError("forbidden", None, "only the account owner may do this")

    def _new_node(self, name: str, options: dict[str, Any] | None) -> Node:
        config = dict(self.defaults)
        if options:
            config.update(options)
        node = Node(name, config)
        self.nodes[name] = node
        return node

    def _evict(self, node: Node) -> list[str]:
        evicted = []
        limit = self.limit(node)
        while len(node.items) > limit:
            oldest = next(iter(node.items))
            del node.items[oldest]
            evicted.append(oldest)
        return evicted

    # -- owner operations --------------------------------------------------
    def create(self, req: Requester, name: str | None, options: dict[str, Any] | None = None) -> Node:
        self.check_owner(req)
        if not name:
            raise PubSubError("not-acceptable", "nodeid-required")
        if name in self.nodes:
            raise PubSubError("conflict", None, f"node {name} exists")
        return self._new_node(name, options)

    def publish(self, req: Requester, name: str | None, item_id: str | None, payload: str,
                options: dict[str, Any] | None = None, *, when: float | None = None) -> PublishResult:
        """Publish (auto-creating the node); ``options`` are publish-options preconditions."""
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        node = self.nodes.get(name)
        created = False
        if node is None:
            self.check_owner(req)
            node = self._new_node(name, options)
            created = True
        else:
            aff = self.affiliation(node, req)
            model = node.config["pubsub#publish_model"]
            if not (aff in ("owner", "publisher", "publish-only") or model == "open"):
                raise PubSubError("forbidden", None, "you may not publish to this node")
            if options:
                for var, want in options.items():
                    if node.config.get(var) != want:
                        raise PubSubError("conflict", "precondition-not-met",
                                          f"node {name}: {var} is not {want}")
        if not item_id:
            item_id = uuid.uuid4().hex
        item = Item(item_id, payload, req.bare, time.time() if when is None else when)
        node.items.pop(item_id, None)   # republishing an id makes it the newest
        node.items[item_id] = item
        evicted = self._evict(node)
        return PublishResult(node, item, created, evicted)

    def retract(self, req: Requester, name: str | None, item_id: str | None) -> Node:
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        if not item_id:
            raise PubSubError("bad-request", "item-required")
        node = self.get_node(name)
        aff = self.affiliation(node, req)
        if aff not in ("owner", "publisher") and not (
                node.items.get(item_id) and node.items[item_id].publisher == req.bare):
            raise PubSubError("forbidden", None, "you may not retract from this node")
        if item_id not in node.items:
            raise PubSubError("item-not-found", None, f"no item {item_id}")
        del node.items[item_id]
        return node

    def purge(self, req: Requester, name: str) -> Node:
        self.check_owner(req)
        node = self.get_node(name)
        node.items.clear()
        return node

    def delete(self, req: Requester, name: str | None) -> Node:
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        self.check_owner(req)
        node = self.get_node(name)
        del self.nodes[name]
        return node

    def configure(self, req: Requester, name: str, options: dict[str, Any]) -> tuple[Node, list[str]]:
        """Apply a submitted node_config form; returns the node and evicted item ids."""
        self.check_owner(req)
        node = self.get_node(name)
        node.config.update(options)
        return node, self._evict(node)

    def get_config(self, req: Requester, name: str) -> Node:
        self.check_owner(req)
        return self.get_node(name)

    def set_affiliations(self, req: Requester, name: str, changes: dict[str, str]) -> Node:
        self.check_owner(req)
        node = self.get_node(name)
        for jid, aff in changes.items():
            if aff not in AFFILIATIONS or aff == "owner":
                raise PubSubError("not-acceptable", None, f"affiliation {aff} is not supported")
            if jid == self.owner:
                raise PubSubError("not-acceptable", None, "the owner's affiliation is fixed")
        for jid, aff in changes.items():
            if aff == "none":
                node.affiliations.pop(jid, None)
            else:
                node.affiliations[jid] = aff
        return node

    # -- anybody -----------------------------------------------------------
    def get_items(self, req: Requester, name: str | None, *, max_items: int | None = None,
                  ids: list[str] | None = None) -> list[Item]:
        """Items, oldest first; ``max_items`` keeps the newest N; ``ids`` picks some."""
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        node = self.get_node(name)
        self.check_access(node, req)
        if ids:
            found = [node.items[i] for i in ids if i in node.items]
            if not found:
                raise PubSubError("item-not-found", None, "no such item")
            return found
        items = list(node.items.values())
        if max_items is not None:
            items = items[-max_items:] if max_items > 0 else []
        return items

    def subscribe(self, req: Requester, name: str | None, jid: str) -> Node:
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        bare = jid.split("/", 1)[0]
        if bare != req.bare:
            raise PubSubError("bad-request", "invalid-jid")
        node = self.get_node(name)
        self.check_access(node, req)
        node.subscriptions[jid] = "subscribed"
        return node

    def unsubscribe(self, req: Requester, name: str | None, jid: str) -> Node:
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        bare = jid.split("/", 1)[0]
        if bare != req.bare and not req.is_owner:
            raise PubSubError("bad-request", "invalid-jid")
        node = self.get_node(name)
        if jid not in node.subscriptions:
            raise PubSubError("unexpected-request", "not-subscribed")
        del node.subscriptions[jid]
        return node

    def visible_nodes(self, req: Requester) -> list[Node]:
        return [n for n in self.nodes.values() if self.may_access(n, req)]

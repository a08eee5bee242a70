"""Publish-Subscribe (XEP-0060): the one sans-I/O PubSub core, for every pubsub
service the server runs: each account's PEP service (XEP-0163, the ``pep``
module) and the ``pubsub`` component's service.

A ``PubSubService`` holds nodes, each with a configuration, items (oldest
first), affiliations and subscriptions (``subscribed`` or ``pending``, with
their options). No sockets, no storage, no parsing of requests: a module turns
IQs into calls, and ``Node.record()`` / ``Node.item_records()`` into what it
stores. What differs between PEP and a pubsub component is the service's
``Policy``: which configuration fields and access models it offers, whether
publishing creates nodes, who may create nodes, the default configuration.

Who may do what is decided from a ``Requester`` the caller builds (its bare
JID, whether it owns the whole service, its affiliation to the service, its
roster subscription and groups in the node owner's roster). Refusals raise
``PubSubError``: a stanza error condition plus the ``pubsub#errors`` condition
XEP-0060 gives for the case; :func:`to_stanza_error` makes the wire error.

The helpers below the core build what both services send: the configuration
form (:func:`config_form`), the notifications (:func:`items_event`...), the
``<items/>`` of an answer, and read publish requests (:func:`publish_request`).
"""
from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from . import forms, ns
from .errors import StanzaError
from .stanza import from_xml

ACCESS_MODELS = ("open", "presence", "roster", "whitelist", "authorize")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")

# field var -> (kind, choices). Kinds: "bool", "int_or_max", "list-single", "text", "list-multi".
# The fields of a PEP node (what PEP clients use).
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

# The fields of a node of a pubsub service: Prosody mod_pubsub's form (title,
# description, type, max_items, persist_items, access_model, roster_groups_allowed,
# publish_model, send_last_published_item, deliver_notifications, deliver_payloads,
# notification_type, notify_delete, notify_retract, itemreply), and notify_config.
SERVICE_CONFIG_FIELDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "pubsub#title": ("text", None),
    "pubsub#description": ("text", None),
    "pubsub#type": ("text", None),
    "pubsub#max_items": ("int_or_max", None),
    "pubsub#persist_items": ("bool", None),
    "pubsub#access_model": ("list-single", ACCESS_MODELS),
    "pubsub#roster_groups_allowed": ("list-multi", None),
    "pubsub#publish_model": ("list-single", PUBLISH_MODELS),
    "pubsub#send_last_published_item": ("list-single", SEND_LAST),
    "pubsub#deliver_notifications": ("bool", None),
    "pubsub#deliver_payloads": ("bool", None),
    "pubsub#notification_type": ("list-single", ("normal", "headline")),
    "pubsub#notify_delete": ("bool", None),
    "pubsub#notify_retract": ("bool", None),
    "pubsub#notify_config": ("bool", None),
    "pubsub#itemreply": ("list-single", ("owner", "publisher", "none")),
}

LABELS = {
    "pubsub#title": "Title",
    "pubsub#description": "Description",
    "pubsub#type": "The type of node data, usually specified by the namespace of the payload (if any)",
    "pubsub#max_items": "Max # of items to persist",
    "pubsub#persist_items": "Persist items to storage",
    "pubsub#access_model": "Specify the subscriber model",
    "pubsub#roster_groups_allowed": "Roster groups allowed to subscribe",
    "pubsub#publish_model": "Specify the publisher model",
    "pubsub#send_last_published_item": "When to send the last published item",
    "pubsub#deliver_notifications": "Whether to deliver event notifications",
    "pubsub#deliver_payloads": "Whether to deliver payloads with event notifications",
    "pubsub#notification_type": "Specify the delivery style for notifications",
    "pubsub#notify_delete": "Whether to notify subscribers when the node is deleted",
    "pubsub#notify_retract": "Whether to notify subscribers when items are removed from the node",
    "pubsub#notify_config": "Whether to notify subscribers when the node configuration changes",
    "pubsub#itemreply": "Specify whose JID to include as the publisher of items",
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

# a pubsub service's new node (Prosody's util.pubsub node defaults)
SERVICE_DEFAULT_CONFIG: dict[str, Any] = {
    **DEFAULT_CONFIG,
    "pubsub#access_model": "open",
    "pubsub#max_items": 20,
    "pubsub#send_last_published_item": "never",
    "pubsub#notification_type": "headline",
    "pubsub#itemreply": "none",
}

AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "none", "outcast")
SUBSCRIPTION_STATES = ("subscribed", "pending", "none")

# the subscription options a subscriber may set (pubsub#subscribe_options)
SUBSCRIBE_OPTIONS = {"pubsub#deliver": ("bool", "Enable delivery?")}
DEFAULT_SUBSCRIBE_OPTIONS = {"pubsub#deliver": True}


class PubSubError(Exception):
    """A refusal: ``condition`` (RFC 6120) and ``pubsub`` (a pubsub#errors element name)."""

    def __init__(self, condition: str, pubsub: str | None = None, text: str | None = None,
                 feature: str | None = None):
        super().__init__(f"{condition}/{pubsub}: {text}" if text else f"{condition}/{pubsub}")
        self.condition = condition
        self.pubsub = pubsub
        self.text = text
        self.feature = feature


def unsupported_error(feature: str) -> PubSubError:
    return PubSubError("feature-not-implemented", "unsupported", feature=feature)


@dataclass(frozen=True)
class Requester:
    """Who is asking, as seen from the service (for PEP: from the owner's account)."""
    bare: str
    is_owner: bool = False              # owns the whole service (PEP: the account itself)
    subscription: str = "none"          # the requester's state in the node owner's roster
    groups: frozenset = frozenset()     # the requester's groups in the node owner's roster
    service_affiliation: str | None = None   # e.g. a server admin's, on every node
    may_create: bool = False


@dataclass
class Policy:
    """What a service offers and allows."""
    fields: dict = field(default_factory=lambda: CONFIG_FIELDS)
    defaults: dict = field(default_factory=lambda: DEFAULT_CONFIG)   # a new node's config
    access_models: tuple[str, ...] = ("open", "presence", "roster", "whitelist")
    autocreate_on_publish: bool = True
    autocreate_on_subscribe: bool = False
    instant_nodes: bool = False


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
    subscriptions: dict[str, str] = field(default_factory=dict)  # jid -> subscribed | pending
    sub_options: dict[str, dict] = field(default_factory=dict)   # jid -> subscribe options
    created: float = 0.0

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

    def owners(self) -> list[str]:
        return sorted(j for j, a in self.affiliations.items() if a == "owner")

    def subscribed(self, jid: str) -> bool:
        return self.subscriptions.get(jid) == "subscribed"

    def deliver_to(self, jid: str) -> bool:
        """``jid`` is subscribed and wants notifications (``pubsub#deliver``)."""
        return self.subscribed(jid) and bool(
            self.sub_options.get(jid, {}).get("pubsub#deliver", True))

    def record(self) -> dict:
        rec = {"config": self.config, "aff": self.affiliations, "subs": self.subscriptions}
        if self.sub_options:
            rec["subopts"] = self.sub_options
        if self.created:
            rec["created"] = self.created
        return rec

    def item_records(self) -> list:
        return [i.record() for i in self.items.values()] if self.persistent else []

    @classmethod
    def from_record(cls, name: str, rec: dict, items: list | None = None,
                    defaults: dict | None = None) -> "Node":
        config = dict(defaults or DEFAULT_CONFIG)
        config.update(rec.get("config") or {})
        node = cls(name, config, affiliations=dict(rec.get("aff") or {}),
                   subscriptions=dict(rec.get("subs") or {}),
                   sub_options={k: dict(v) for k, v in (rec.get("subopts") or {}).items()},
                   created=rec.get("created") or 0.0)
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
                  *, strict: bool = True, spec: dict | None = None,
                  access_models: tuple[str, ...] = ("open", "presence", "roster", "whitelist"),
                  ) -> dict[str, Any]:
    """Turn form fields (var -> values) into config values (``spec``: the
    service's fields, PEP's by default).

    Unknown fields raise ``not-acceptable`` when ``strict``; FORM_TYPE is skipped.
    """
    spec = CONFIG_FIELDS if spec is None else spec
    out: dict[str, Any] = {}
    for var, values in fields.items():
        if var == "FORM_TYPE":
            continue
        kind_choices = spec.get(var)
        if kind_choices is None:
            if strict:
                raise PubSubError("not-acceptable", None, f"unsupported option {var}")
            continue
        kind, choices = kind_choices
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
        if var == "pubsub#access_model" and value not in access_models:
            raise PubSubError("not-acceptable", None,
                              f"the {value} access model is not supported")
    return out


class PubSubService:
    """The nodes of one service. ``owner``: the bare JID that owns every node (a
    PEP account), or None (a pubsub service: each node has its owners)."""

    def __init__(self, owner: str | None, *, max_items_limit: int = 256,
                 defaults: dict[str, Any] | None = None, policy: Policy | None = None):
        self.owner = owner
        self.max_items_limit = max_items_limit
        self.policy = policy or Policy()
        self.defaults = dict(self.policy.defaults)
        if defaults:
            self.defaults.update(defaults)
        self.nodes: dict[str, Node] = {}

    # -- helpers -----------------------------------------------------------
    def limit(self, node: Node) -> int:
        mi = node.config["pubsub#max_items"]
        return self.max_items_limit if mi == "max" else min(int(mi), self.max_items_limit)

    def get_node(self, name: str | None) -> Node:
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        node = self.nodes.get(name)
        if node is None:
            raise PubSubError("item-not-found", None, f"no node {name}")
        return node

    def affiliation(self, node: Node, req: Requester) -> str:
        if req.is_owner:
            return "owner"
        return node.affiliations.get(req.bare) or req.service_affiliation or "none"

    def subscription_of(self, node: Node, bare: str) -> str:
        """The best subscription state of any of ``bare``'s JIDs."""
        best = "none"
        for jid, state in node.subscriptions.items():
            if jid == bare or jid.split("/", 1)[0] == bare:
                if state == "subscribed":
                    return state
                best = state
        return best

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
        if model == "authorize":
            state = self.subscription_of(node, req.bare)
            if state == "pending":
                raise PubSubError("not-authorized", "pending-subscription")
            if state != "subscribed":
                raise PubSubError("not-authorized", "not-subscribed")
            return
        raise PubSubError("not-allowed", "closed-node")

    def may_access(self, node: Node, req: Requester) -> bool:
        try:
            self.check_access(node, req)
        except PubSubError:
            return False
        return True

    def may_see(self, node: Node, req: Requester) -> bool:
        """Whether ``req`` may know that ``node`` exists (disco): an authorize node
        is visible to those who may ask to subscribe."""
        if node.access_model == "authorize":
            return self.affiliation(node, req) != "outcast"
        return self.may_access(node, req)

    def check_owner(self, req: Requester) -> None:
        """The requester owns the whole service (PEP: it is the account)."""
        if not req.is_owner:
            raise PubSubError("forbidden", None, "only the account owner may do this")

    def check_node_owner(self, node: Node, req: Requester) -> None:
        if self.affiliation(node, req) != "owner":
            raise PubSubError("forbidden", None, "only an owner of the node may do this")

    def may_create(self, req: Requester) -> bool:
        return req.is_owner or req.may_create

    def _new_node(self, name: str, options: dict[str, Any] | None, creator: str | None) -> Node:
        config = dict(self.defaults)
        if options:
            config.update(options)
        node = Node(name, config, created=time.time())
        if self.owner is None and creator:
            node.affiliations[creator] = "owner"
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
        if not self.may_create(req):
            raise PubSubError("forbidden", None, "you may not create nodes on this service")
        if not name:
            if not self.policy.instant_nodes:
                raise PubSubError("not-acceptable", "nodeid-required")
            name = uuid.uuid4().hex
        if name in self.nodes:
            raise PubSubError("conflict", None, f"node {name} exists")
        return self._new_node(name, options, req.bare)

    def publish(self, req: Requester, name: str | None, item_id: str | None, payload: str,
                options: dict[str, Any] | None = None, *, when: float | None = None) -> PublishResult:
        """Publish (auto-creating the node when the policy says so); ``options``
        are publish-options preconditions."""
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        node = self.nodes.get(name)
        created = False
        if node is None:
            if not self.policy.autocreate_on_publish:
                raise PubSubError("item-not-found", None, f"no node {name}")
            if self.owner is not None:
                self.check_owner(req)
            elif not self.may_create(req):
                raise PubSubError("forbidden", None, "you may not create nodes on this service")
            node = self._new_node(name, options, req.bare)
            created = True
        else:
            aff = self.affiliation(node, req)
            model = node.config["pubsub#publish_model"]
            allowed = aff in ("owner", "publisher", "publish-only") or (aff != "outcast" and (
                model == "open" or (model == "subscribers"
                                    and self.subscription_of(node, req.bare) == "subscribed")))
            if not allowed:
                raise PubSubError("forbidden", None, "you may not publish to this node")
            if options:
                for var, want in options.items():
                    if node.config.get(var) != want:
                        raise PubSubError("conflict", "precondition-not-met",
                                          f"Field does not match: {var}")
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
                node.items.get(item_id) and node.items[item_id].publisher == req.bare
                and aff != "outcast"):
            raise PubSubError("forbidden", None, "you may not retract from this node")
        if item_id not in node.items:
            raise PubSubError("item-not-found", None, f"no item {item_id}")
        del node.items[item_id]
        return node

    def purge(self, req: Requester, name: str | None) -> Node:
        node = self.get_node(name)
        self.check_node_owner(node, req)
        node.items.clear()
        return node

    def delete(self, req: Requester, name: str | None) -> Node:
        node = self.get_node(name)
        self.check_node_owner(node, req)
        del self.nodes[node.name]
        return node

    def configure(self, req: Requester, name: str | None,
                  options: dict[str, Any]) -> tuple[Node, list[str]]:
        """Apply a submitted node_config form; returns the node and evicted item ids."""
        node = self.get_node(name)
        self.check_node_owner(node, req)
        node.config.update(options)
        return node, self._evict(node)

    def get_config(self, req: Requester, name: str | None) -> Node:
        node = self.get_node(name)
        self.check_node_owner(node, req)
        return node

    def set_affiliations(self, req: Requester, name: str | None, changes: dict[str, str]) -> Node:
        node = self.get_node(name)
        self.check_node_owner(node, req)
        for jid, aff in changes.items():
            if aff not in AFFILIATIONS or (aff == "owner" and self.owner is not None):
                raise PubSubError("not-acceptable", None, f"affiliation {aff} is not supported")
            if jid == self.owner:
                raise PubSubError("not-acceptable", None, "the owner's affiliation is fixed")
        if self.owner is None:
            after = dict(node.affiliations)
            for jid, aff in changes.items():
                after[jid] = aff
            if not any(a == "owner" for a in after.values()):
                raise PubSubError("not-acceptable", None, "a node keeps at least one owner")
        for jid, aff in changes.items():
            if aff == "none":
                node.affiliations.pop(jid, None)
            else:
                node.affiliations[jid] = aff
            if aff == "outcast":     # a banned entity loses its subscriptions
                for sub in [s for s in node.subscriptions if s.split("/", 1)[0] == jid]:
                    node.subscriptions.pop(sub, None)
                    node.sub_options.pop(sub, None)
        return node

    def set_subscriptions(self, req: Requester, name: str | None,
                          changes: dict[str, str]) -> tuple[Node, dict[str, str]]:
        """The owner sets subscription states (``none`` removes); returns the
        node and the states that changed."""
        node = self.get_node(name)
        self.check_node_owner(node, req)
        for jid, state in changes.items():
            if state not in SUBSCRIPTION_STATES:
                raise PubSubError("bad-request", None, f"subscription state {state} is not valid")
        changed = {}
        for jid, state in changes.items():
            if node.subscriptions.get(jid, "none") == state:
                continue
            if state == "none":
                node.subscriptions.pop(jid, None)
                node.sub_options.pop(jid, None)
            else:
                node.subscriptions[jid] = state
            changed[jid] = state
        return node, changed

    # -- anybody -----------------------------------------------------------
    def get_items(self, req: Requester, name: str | None, *, max_items: int | None = None,
                  ids: list[str] | None = None) -> list[Item]:
        """Items, oldest first; ``max_items`` keeps the newest N; ``ids`` picks some."""
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

    def subscribe(self, req: Requester, name: str | None, jid: str) -> tuple[Node, str]:
        """Subscribe ``jid``; returns the node and the state (``pending`` for a
        node whose access model is ``authorize``, until an owner approves)."""
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        bare = jid.split("/", 1)[0]
        node = self.nodes.get(name)
        if node is None and self.policy.autocreate_on_subscribe and self.may_create(req):
            node = self._new_node(name, None, req.bare)
        if node is None:
            raise PubSubError("item-not-found", None, f"no node {name}")
        aff = self.affiliation(node, req)
        if bare != req.bare and aff != "owner":
            raise PubSubError("bad-request", "invalid-jid")
        if node.access_model == "authorize" and aff not in ("owner", "publisher", "member"):
            if aff == "outcast":
                raise PubSubError("forbidden", None, "you are banned from this node")
            if node.subscriptions.get(jid) != "subscribed":
                node.subscriptions[jid] = "pending"
            return node, node.subscriptions[jid]
        if bare == req.bare:
            self.check_access(node, req)
        node.subscriptions[jid] = "subscribed"
        return node, "subscribed"

    def unsubscribe(self, req: Requester, name: str | None, jid: str) -> Node:
        if not name:
            raise PubSubError("bad-request", "nodeid-required")
        bare = jid.split("/", 1)[0]
        node = self.get_node(name)
        if bare != req.bare and self.affiliation(node, req) != "owner":
            if self.owner is not None:
                raise PubSubError("bad-request", "invalid-jid")
            raise PubSubError("forbidden", None, "you may not unsubscribe this JID")
        if jid not in node.subscriptions:
            raise PubSubError("unexpected-request", "not-subscribed")
        del node.subscriptions[jid]
        node.sub_options.pop(jid, None)
        return node

    def subscription_for_options(self, req: Requester, name: str | None, jid: str | None) -> Node:
        """The node whose subscription of ``jid`` ``req`` may read or change the
        options of (XEP-0060 §6.3.4)."""
        node = self.get_node(name)
        if not jid:
            raise PubSubError("bad-request", "jid-required")
        if jid.split("/", 1)[0] != req.bare and self.affiliation(node, req) != "owner":
            raise PubSubError("forbidden", None, "you may not see this JID's options")
        state = node.subscriptions.get(jid)
        if state is None:
            raise PubSubError("unexpected-request", "not-subscribed")
        if state == "pending":
            raise PubSubError("forbidden", "pending-subscription")
        return node

    def visible_nodes(self, req: Requester) -> list[Node]:
        return [n for n in self.nodes.values() if self.may_see(n, req)]


# -- the wire: errors, forms, notifications ----------------------------------------------

def to_stanza_error(err: PubSubError) -> StanzaError:
    app = None
    if err.pubsub:
        app = ET.Element(ns.q(ns.PUBSUB_ERRORS, err.pubsub))
        if err.feature:
            app.set("feature", err.feature)
    return StanzaError(err.condition, err.text, app=app)


def unsupported(feature: str) -> StanzaError:
    return to_stanza_error(unsupported_error(feature))


FIELD_TYPES = {"bool": "boolean", "int_or_max": "text-single", "list-multi": "list-multi",
               "list-single": "list-single"}

# forms as clients send them: the type is not checked (nor the FORM_TYPE)
ANY_FORM = ("submit", "form", "result", "cancel")


def config_form(config: dict, spec: dict | None = None, *, labels: bool = False) -> ET.Element:
    """The node configuration form (``pubsub#node_config``) showing ``config``."""
    spec = CONFIG_FIELDS if spec is None else spec
    fields = []
    for var, (kind, choices) in spec.items():
        value = config.get(var)
        if kind == "list-multi":
            value = [str(v) for v in value or ()]
        elif kind == "bool":
            value = bool(value)
        elif value is None:
            value = ""
        fields.append(forms.Field(var, FIELD_TYPES.get(kind, "text-single"), value,
                                  label=LABELS.get(var) if labels else None,
                                  options=choices or ()))
    return forms.build(ns.PUBSUB_NODE_CONFIG, fields)


def submitted_options(x: ET.Element | None, limit: int, *, spec: dict | None = None,
                      access_models: tuple[str, ...] = ("open", "presence", "roster",
                                                        "whitelist")) -> dict:
    """The node configuration a form (node_config or publish-options) asks for;
    ``not-acceptable`` for an unknown field or a bad value."""
    sub = forms.read(x, types=ANY_FORM)
    return parse_options({var: sub.raw(var) for var in sub.fields}, limit, spec=spec,
                         access_models=access_models)


def _ps(name: str) -> str:
    return ns.q(ns.PUBSUB, name)


@dataclass
class PublishRequest:
    item_id: str | None
    payload: ET.Element | None
    options: ET.Element | None       # the publish-options form, if any


def publish_request(pubsub_el: ET.Element, action: ET.Element, *,
                    payload_required: bool = True) -> PublishRequest:
    """Read ``<publish><item id=…>payload</item></publish>`` (one item; XEP-0060
    §7.1.3 errors)."""
    items = action.findall(_ps("item"))
    if len(items) > 1:
        raise PubSubError("bad-request", "invalid-payload", "one item per publish")
    item = items[0] if items else None
    payload = None
    if item is not None:
        kids = list(item)
        if len(kids) > 1:
            raise PubSubError("bad-request", "invalid-payload", "one payload per item")
        payload = kids[0] if kids else None
    if payload is None and payload_required:
        raise PubSubError("bad-request", "item-required" if item is None else "payload-required")
    po = pubsub_el.find(_ps("publish-options"))
    return PublishRequest(item.get("id") if item is not None else None, payload,
                          po.find(forms.X) if po is not None else None)


def items_answer(node: str, items, *, publisher: bool = False) -> ET.Element:
    """``<pubsub><items node=…><item id=…>payload</item>…</items></pubsub>``."""
    out = ET.Element(_ps("pubsub"))
    its = ET.SubElement(out, _ps("items"), {"node": node})
    for it in items:
        attrs = {"id": it.id}
        if publisher and it.publisher:
            attrs["publisher"] = it.publisher
        el = ET.SubElement(its, _ps("item"), attrs)
        if it.xml:
            el.append(from_xml(it.xml))
    return out


def _event(*children: ET.Element) -> ET.Element:
    ev_el = ET.Element(ns.q(ns.PUBSUB_EVENT, "event"))
    ev_el.extend(children)
    return ev_el


def items_event(node: Node, items, *, publisher: bool = False) -> ET.Element:
    """``<event><items node=…><item id=…>payload</item>…</items></event>`` (the
    payloads unless the node is configured without them; the publisher's JID
    when ``publisher``)."""
    its = ET.Element(ns.q(ns.PUBSUB_EVENT, "items"), {"node": node.name})
    payloads = node.config["pubsub#deliver_payloads"]
    for it in items:
        attrs = {"id": it.id}
        if publisher and it.publisher:
            attrs["publisher"] = it.publisher
        item = ET.SubElement(its, ns.q(ns.PUBSUB_EVENT, "item"), attrs)
        if payloads and it.xml:
            item.append(from_xml(it.xml))
    return _event(its)


def retract_event(node: Node, item_id: str) -> ET.Element:
    its = ET.Element(ns.q(ns.PUBSUB_EVENT, "items"), {"node": node.name})
    ET.SubElement(its, ns.q(ns.PUBSUB_EVENT, "retract"), {"id": item_id})
    return _event(its)


def delete_event(node: Node, redirect: str | None = None) -> ET.Element:
    el = ET.Element(ns.q(ns.PUBSUB_EVENT, "delete"), {"node": node.name})
    if redirect:
        ET.SubElement(el, ns.q(ns.PUBSUB_EVENT, "redirect"), {"uri": redirect})
    return _event(el)


def purge_event(node: Node) -> ET.Element:
    return _event(ET.Element(ns.q(ns.PUBSUB_EVENT, "purge"), {"node": node.name}))


def configuration_event(node: Node, spec: dict | None = None, *,
                        payload: bool = True) -> ET.Element:
    el = ET.Element(ns.q(ns.PUBSUB_EVENT, "configuration"), {"node": node.name})
    if payload:
        form = config_form(node.config, spec)
        form.set("type", "result")
        el.append(form)
    return _event(el)


def subscription_answer(node: Node, jid: str, state: str) -> ET.Element:
    """``<pubsub><subscription node jid subscription/></pubsub>``: the answer to a
    subscribe, and the message telling a subscriber its new state (§8.7.2)."""
    out = ET.Element(_ps("pubsub"))
    ET.SubElement(out, _ps("subscription"), {"node": node.name, "jid": jid,
                                            "subscription": state})
    return out

"""PEP nodes as the import and export commands see them: the one place in cli/ that
knows how the pep module keeps an account's nodes (``xmppd/modules/pep/service.py``):

* map store ``pep_nodes``: user → node name → ``{"config": {"pubsub#...": value},
  "aff": {bare JID: affiliation}, "subs": {JID: "subscribed"}}`` (a config key that
  is missing takes the module's default);
* map store ``pep_items``: user → node name → ``[[id, payload XML, publisher,
  when], ...]``, oldest first.

:class:`PepNode` is that record as plain data; :func:`read_nodes` and
:func:`write_node` move it in and out of the stores.
"""
from __future__ import annotations

from dataclasses import dataclass, field

NODES = "pep_nodes"
ITEMS = "pep_items"

# node configuration fields (XEP-0060 pubsub#...) and the kind of value each holds
CONFIG_KINDS = {
    "pubsub#access_model": ("open", "presence", "roster", "whitelist"),
    "pubsub#publish_model": ("publishers", "subscribers", "open"),
    "pubsub#max_items": "max",
    "pubsub#persist_items": bool,
    "pubsub#send_last_published_item": ("never", "on_sub", "on_sub_and_presence"),
    "pubsub#deliver_notifications": bool,
    "pubsub#deliver_payloads": bool,
    "pubsub#notify_retract": bool,
    "pubsub#notify_delete": bool,
    "pubsub#notify_config": bool,
    "pubsub#roster_groups_allowed": list,
    "pubsub#title": str,
    "pubsub#description": str,
    "pubsub#type": str,
    "pubsub#itemreply": ("owner", "publisher"),
}
AFFILIATIONS = ("publisher", "publish-only", "member", "outcast")
MAX_ITEMS = 256   # the pep module's ceiling (pep_max_items' default and Prosody's)


@dataclass
class PepItem:
    id: str
    xml: str                 # the payload, serialized ("" for none)
    publisher: str = ""
    when: float = 0.0


@dataclass
class PepNode:
    name: str
    config: dict = field(default_factory=dict)         # pubsub#... -> value
    affiliations: dict = field(default_factory=dict)   # bare JID -> affiliation
    subscriptions: dict = field(default_factory=dict)  # JID -> "subscribed"
    items: list = field(default_factory=list)          # PepItem, oldest first

    def record(self) -> dict:
        return {"config": dict(self.config), "aff": dict(self.affiliations),
                "subs": dict(self.subscriptions)}

    def item_records(self) -> list:
        return [[i.id, i.xml, i.publisher, i.when] for i in self.items]


def config_value(var: str, value):
    """``value`` checked and converted for the field ``var`` (from a form's text or
    another server's data); ValueError if the field is unknown or the value bad."""
    kind = CONFIG_KINDS.get(var)
    if kind is None:
        raise ValueError(f"unknown node option {var}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        v = str(value).strip().lower()
        if v in ("1", "true"):
            return True
        if v in ("0", "false"):
            return False
    elif kind == "max":
        if str(value).strip() == "max":
            return "max"
        if not isinstance(value, bool):
            try:
                n = int(str(value).strip())
            except ValueError:
                n = 0
            if n >= 1:
                return min(n, MAX_ITEMS)
    elif kind is list:
        if isinstance(value, (list, tuple, set)):
            return sorted({str(v) for v in value})
        return [str(value)] if value else []
    elif kind is str:
        return "" if value is None else str(value)
    elif value in kind:
        return value
    raise ValueError(f"invalid value {value!r} for {var}")


def limit(node: PepNode) -> int:
    mi = node.config.get("pubsub#max_items", 1)
    return MAX_ITEMS if mi == "max" else min(int(mi), MAX_ITEMS)


async def read_nodes(storage, host: str, user: str) -> dict[str, PepNode]:
    recs = await storage.map(host, NODES).items(user)
    items = await storage.map(host, ITEMS).items(user) if recs else {}
    out = {}
    for name, rec in recs.items():
        if not isinstance(rec, dict):
            continue
        node = PepNode(name, dict(rec.get("config") or {}), dict(rec.get("aff") or {}),
                       dict(rec.get("subs") or {}))
        for r in items.get(name) or ():
            if isinstance(r, list) and len(r) >= 2:
                node.items.append(PepItem(r[0], r[1], r[2] if len(r) > 2 else "",
                                          r[3] if len(r) > 3 else 0.0))
        out[name] = node
    return out


async def write_nodes(storage, host: str, user: str, nodes: list[PepNode]) -> None:
    """Store these nodes of ``user`` (each replacing a node of that name), items
    after configurations; an items list longer than the node keeps its newest."""
    if not nodes:
        return
    await storage.map(host, NODES).set_many(user, {n.name: n.record() for n in nodes})
    await storage.map(host, ITEMS).set_many(
        user, {n.name: n.item_records()[-limit(n):]
               if n.config.get("pubsub#persist_items", True) else [] for n in nodes})

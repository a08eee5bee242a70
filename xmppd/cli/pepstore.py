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

from ..xmpp import pubsub

NODES = "pep_nodes"
ITEMS = "pep_items"

# a PEP node's configuration fields (XEP-0060 pubsub#...), their kinds and choices:
# the PubSub core's, with the access models PEP offers
CONFIG_FIELDS = pubsub.CONFIG_FIELDS
ACCESS_MODELS = pubsub.Policy().access_models
AFFILIATIONS = ("publisher", "publish-only", "member", "outcast")
MAX_ITEMS = 256   # the pep module's ceiling (pep_max_items' default and Prosody's)

PepItem = pubsub.Item     # id, payload XML ("" for none), publisher, when


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
        return [i.record() for i in self.items]


def multi(var: str) -> bool:
    """Whether the field ``var`` holds a list of values."""
    return CONFIG_FIELDS[var][0] == "list-multi"


def config_value(var: str, value):
    """``value`` checked and converted for the field ``var`` (from a form's text or
    another server's data); ValueError if the field is unknown or the value bad."""
    spec = CONFIG_FIELDS.get(var)
    if spec is None:
        raise ValueError(f"unknown node option {var}")
    kind, choices = spec
    if var == "pubsub#access_model":
        choices = ACCESS_MODELS
    if kind == "bool":
        if isinstance(value, bool):
            return value
        v = str(value).strip().lower()
        if v in ("1", "true"):
            return True
        if v in ("0", "false"):
            return False
    elif kind == "int_or_max":
        if str(value).strip() == "max":
            return "max"
        if not isinstance(value, bool):
            try:
                n = int(str(value).strip())
            except ValueError:
                n = 0
            if n >= 1:
                return min(n, MAX_ITEMS)
    elif kind == "list-multi":
        if isinstance(value, (list, tuple, set)):
            return sorted({str(v) for v in value})
        return [str(value)] if value else []
    elif kind == "text":
        return "" if value is None else str(value)
    elif value in (choices or ()):
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
                node.items.append(PepItem.from_record(r))
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

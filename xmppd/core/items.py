"""Items by kind (Prosody's ``module:add_item``): lists that modules add to and
others read, each addition and removal announced on the owner's event bus
(``item-added/<kind>``, ``item-removed/<kind>``)."""
from __future__ import annotations

from typing import Any

from . import events as ev
from .modules import Item


class ItemRegistry:
    def __init__(self, bus: ev.EventBus):
        self.bus = bus
        self._items: dict[str, list[Item]] = {}

    def add(self, kind: str, value: Any, module: str = "") -> Item:
        item = Item(kind, value, module)
        self._items.setdefault(kind, []).append(item)
        self._announce("added", item)
        return item

    def remove(self, item: Item) -> None:
        lst = self._items.get(item.kind)
        if lst and item in lst:
            lst.remove(item)
            self._announce("removed", item)

    def values(self, kind: str) -> list:
        return [i.value for i in self._items.get(kind, ())]

    def _announce(self, action: str, item: Item) -> None:
        # item handlers are plain functions: they run now, in order
        self.bus.call(ev.item_event(action, item.kind), item.value)

"""Some stores on one backend, the others on another: Prosody's per-store table.

    storage = { archive = "sql"; muc_log = "sql" }   -- the rest: default_storage

:class:`RoutedStorage` hands out each store from the backend its name is routed
to (``routes``: store name -> backend) or from ``default``. ``delete_user`` and
``stores`` go to every backend; ``close`` closes each once.
"""
from __future__ import annotations

from typing import Mapping

from .api import ArchiveStore, KeyValStore, MapStore, Storage, check_name


class RoutedStorage(Storage):
    def __init__(self, default: Storage, routes: Mapping[str, Storage]) -> None:
        self.default = default
        self.routes = dict(routes)
        self.backends: list[Storage] = []
        for b in [default, *self.routes.values()]:
            if not any(b is x for x in self.backends):
                self.backends.append(b)

    @property
    def kind(self) -> str:   # type: ignore[override]
        return "+".join(b.kind for b in self.backends)

    def backend(self, store: str) -> Storage:
        return self.routes.get(check_name("store", store), self.default)

    def keyval(self, host: str, store: str) -> KeyValStore:
        return self.backend(store).keyval(host, store)

    def map(self, host: str, store: str) -> MapStore:
        return self.backend(store).map(host, store)

    def archive(self, host: str, store: str) -> ArchiveStore:
        return self.backend(store).archive(host, store)

    async def stores(self) -> list[tuple[str, str, str]]:
        out = set()
        for b in self.backends:
            # a store routed elsewhere that still has data here is not this storage's
            out.update(t for t in await b.stores() if self.backend(t[2]) is b)
        return sorted(out)

    async def delete_user(self, host: str, user: str | None) -> None:
        for b in self.backends:
            await b.delete_user(host, user)

    async def close(self) -> None:
        for b in self.backends:
            await b.close()

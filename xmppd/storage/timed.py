"""A storage backend whose every operation is timed: what ``xmppd_storage_operation_
duration_seconds`` shows.

:class:`TimedStorage` wraps any :class:`~xmppd.storage.api.Storage`; the stores it
hands out wrap the backend's and time each call of the API (``get``, ``set``,
``append``, ``append_many``, ``query``...) from the call to its result, as the caller waits for it
(aiosqlite's queue included). A time goes to ``histogram_for(store_type,
operation)`` (something with ``observe(seconds)``), looked up once per store.
Whatever is not the API (a backend's own helpers, ``kind``) is passed through.
"""
from __future__ import annotations

from time import perf_counter
from typing import Any, Callable

from .api import ArchiveStore, KeyValStore, MapStore, Storage

OPERATIONS = {
    "keyval": ("get", "set", "delete", "users"),
    "map": ("get", "set", "delete", "items", "clear", "set_many", "users"),
    "archive": ("append", "append_many", "query", "count", "get", "delete", "users"),
}


def _timed(op: str):
    async def call(self, *args, **kwargs):
        t0 = perf_counter()
        try:
            return await getattr(self._inner, op)(*args, **kwargs)
        finally:
            self._observers[op].observe(perf_counter() - t0)
    call.__name__ = call.__qualname__ = op
    return call


class _TimedStore:
    __slots__ = ("_inner", "_observers")

    def __init__(self, inner, observers: dict):
        self._inner = inner
        self._observers = observers

    def __getattr__(self, name: str) -> Any:
        if name in _TimedStore.__slots__:
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<timed {self._inner!r}>"


def _store_class(kind: str, base: type) -> type:
    ns = {op: _timed(op) for op in OPERATIONS[kind]}
    ns["__slots__"] = ()
    cls = type(f"Timed{base.__name__}", (_TimedStore, base), ns)
    cls.__abstractmethods__ = frozenset()
    return cls


_CLASSES = {"keyval": _store_class("keyval", KeyValStore), "map": _store_class("map", MapStore),
            "archive": _store_class("archive", ArchiveStore)}


class TimedStorage(Storage):
    """``inner`` with every store operation (and ``delete_user``) timed."""

    def __init__(self, inner: Storage, histogram_for: Callable[[str, str], Any]):
        self._inner = inner
        self._histogram_for = histogram_for
        self._observers = {kind: {op: histogram_for(kind, op) for op in ops}
                           for kind, ops in OPERATIONS.items()}
        self._delete_user = histogram_for("storage", "delete_user")

    @property
    def inner(self) -> Storage:
        return self._inner

    @property
    def kind(self) -> str:   # type: ignore[override]
        return self._inner.kind

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def keyval(self, host: str, store: str) -> KeyValStore:
        return _CLASSES["keyval"](self._inner.keyval(host, store), self._observers["keyval"])

    def map(self, host: str, store: str) -> MapStore:
        return _CLASSES["map"](self._inner.map(host, store), self._observers["map"])

    def archive(self, host: str, store: str) -> ArchiveStore:
        return _CLASSES["archive"](self._inner.archive(host, store), self._observers["archive"])

    async def stores(self) -> list[tuple[str, str, str]]:
        return await self._inner.stores()

    async def delete_user(self, host: str, user: str | None) -> None:
        t0 = perf_counter()
        try:
            await self._inner.delete_user(host, user)
        finally:
            self._delete_user.observe(perf_counter() - t0)

    async def close(self) -> None:
        await self._inner.close()

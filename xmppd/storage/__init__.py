"""Storage for modules: keyval, map and archive stores behind one small API.

    storage = await open_storage("sqlite", path="var/xmppd.sqlite")   # default backend
    storage = await open_storage("postgres", database="xmppd", host="localhost",
                                 username="xmppd", password="...")
    storage = await open_storage("memory")                           # unit tests
    roster = storage.map("falcot.com", "roster")
    await roster.set("joe", "rhertzog@falcot.com", {"subscription": "both"})

See :mod:`xmppd.storage.api` for the semantics (host-wide data is user ``""``)
and :mod:`xmppd.storage.sqlite` / :mod:`xmppd.storage.postgres` for durability,
faults and schema migrations; :mod:`xmppd.storage.routed` puts some stores on one
backend and the rest on another (Prosody's ``storage = { archive = "sql" }``).
"""
from __future__ import annotations

from typing import Any

from .api import (
    ArchiveItem, ArchiveStore, ItemNotFound, KeyValStore, MapStore, Storage, StorageError,
)

__all__ = [
    "ArchiveItem", "ArchiveStore", "ItemNotFound", "KeyValStore", "MapStore", "Storage",
    "StorageError", "KINDS", "open_storage",
]

KINDS = ("sqlite", "postgres", "memory")

POSTGRES_OPTIONS = {"database", "host", "port", "username", "password", "pool_size",
                    "retry_timeout", "connect_timeout"}


async def open_storage(kind: str = "sqlite", **options: Any) -> Storage:
    """Open a storage backend.

    ``"sqlite"`` takes ``path`` (required; parent directories are created),
    ``synchronous`` (``"normal"``, the default, survives process crashes;
    ``"full"`` also survives power loss; ``"off"``: no fsync, a machine crash may
    corrupt the database) and ``busy_timeout`` (seconds, default 5).
    ``"postgres"`` takes ``database``, ``host`` (a name, an address or the
    directory of a Unix socket), ``port``, ``username``, ``password`` (the ``sql``
    table's names), ``pool_size`` (connections, default 10), ``retry_timeout``
    (seconds an operation is retried while PostgreSQL is unreachable, default 10)
    and ``connect_timeout``.
    ``"memory"`` takes no options. Unknown kinds or options raise StorageError.
    """
    if kind == "sqlite":
        from .sqlite import open_sqlite

        unknown = set(options) - {"path", "synchronous", "busy_timeout"}
        if unknown:
            raise StorageError(f"unknown sqlite storage option(s): {', '.join(sorted(unknown))}")
        if "path" not in options:
            raise StorageError("sqlite storage needs a path")
        return await open_sqlite(**options)
    if kind == "postgres":
        from .postgres import open_postgres

        unknown = set(options) - POSTGRES_OPTIONS
        if unknown:
            raise StorageError(
                f"unknown postgres storage option(s): {', '.join(sorted(unknown))}")
        return await open_postgres(**options)
    if kind == "memory":
        if options:
            raise StorageError(
                f"unknown memory storage option(s): {', '.join(sorted(options))}")
        from .memory import MemoryStorage

        return MemoryStorage()
    raise StorageError(f"unknown storage kind {kind!r} (known: {', '.join(KINDS)})")

"""Storage for modules: keyval, map and archive stores behind one small API.

    storage = await open_storage("sqlite", path="var/xmppd.sqlite")   # default backend
    storage = await open_storage("memory")                           # unit tests
    roster = storage.map("falcot.com", "roster")
    await roster.set("joe", "rhertzog@falcot.com", {"subscription": "both"})

See :mod:`xmppd.storage.api` for the semantics (host-wide data is user ``""``)
and :mod:`xmppd.storage.sqlite` for durability and schema migrations.
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

KINDS = ("sqlite", "memory")


async def open_storage(kind: str = "sqlite", **options: Any) -> Storage:
    """Open a storage backend.

    ``"sqlite"`` takes ``path`` (required; parent directories are created),
    ``synchronous`` (``"normal"``, the default, survives process crashes;
    ``"full"`` also survives power loss; ``"off"``: no fsync, a machine crash may
    corrupt the database) and ``busy_timeout`` (seconds, default 5).
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
    if kind == "memory":
        if options:
            raise StorageError(
                f"unknown memory storage option(s): {', '.join(sorted(options))}")
        from .memory import MemoryStorage

        return MemoryStorage()
    raise StorageError(f"unknown storage kind {kind!r} (known: {', '.join(KINDS)})")

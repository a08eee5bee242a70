"""The storage the configuration asks for, with Prosody's options.

``storage`` names a backend for every store, or (Prosody's table form) one per
store name, the others going to ``default_storage``::

    storage = "sql"                                   -- everything in PostgreSQL
    storage = { archive = "sql"; muc_log = "sql" }    -- these two; the rest: sqlite
    sql = { driver = "PostgreSQL"; database = "xmppd"; host = "localhost";
            port = 5432; username = "xmppd"; password = "..." }

Backend names: ``"sqlite"`` and Prosody's ``"internal"`` (xmppd's SQLite database,
data_path/xmppd.sqlite), ``"sql"`` (the ``sql`` option's database: PostgreSQL; or,
with Prosody's ``driver = "SQLite3"`` or no ``sql`` option, xmppd's SQLite
database), ``"memory"`` (nothing survives a restart).
"""
from __future__ import annotations

from pathlib import Path

# sqlite_tune (Prosody's option and names) -> PRAGMA synchronous; the journal is WAL in all
SQLITE_TUNE = {"normal": "normal", "safe": "full", "fast": "off", "default": "full"}

BACKENDS = ("sqlite", "internal", "sql", "memory")
SQL_DRIVERS = {"postgresql": "postgres", "postgres": "postgres", "pgsql": "postgres",
               "sqlite3": "sqlite", "sqlite": "sqlite"}
SQL_KEYS = {"driver": "driver", "database": "database", "host": "host", "port": "port",
            "username": "username", "password": "password"}


class StorageConfigError(Exception):
    """The configured storage cannot be opened; ``option`` is the option to look at."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


def backend_kind(config, name) -> str:
    """``"sqlite"``, ``"postgres"`` or ``"memory"`` for a configured backend name."""
    name = str(name)
    if name in ("sqlite", "internal"):
        return "sqlite"
    if name == "memory":
        return "memory"
    if name == "sql":
        sql = config.get("sql")
        if not isinstance(sql, dict) or not sql.get("driver"):
            return "sqlite"   # Prosody's default sql: SQLite3
        kind = SQL_DRIVERS.get(str(sql["driver"]).lower())
        if kind is None:
            raise StorageConfigError(
                f"sql: driver {sql['driver']!r} is not supported (xmppd has PostgreSQL "
                "and SQLite3)", "sql")
        return kind
    raise StorageConfigError(f"unknown storage driver {name!r} (xmppd has "
                             f"{', '.join(BACKENDS)})", "storage")


def routes(config) -> tuple[str, dict[str, str]]:
    """The default backend kind and the per-store ones the configuration asks for."""
    value = config.get("storage", default="sqlite")
    if isinstance(value, dict):
        default = backend_kind(config, config.get("default_storage", default="sqlite"))
        return default, {str(store): backend_kind(config, name) for store, name in value.items()}
    return backend_kind(config, value), {}


def postgres_options(config) -> dict:
    sql = config.get("sql")
    if not isinstance(sql, dict):
        raise StorageConfigError("sql: PostgreSQL needs the sql option: { driver = "
                                 "\"PostgreSQL\"; database = \"xmppd\"; ... }", "sql")
    opts = {SQL_KEYS[k]: v for k, v in sql.items() if k in SQL_KEYS and k != "driver"}
    opts.setdefault("database", "xmppd")
    if "port" in opts:
        try:
            opts["port"] = int(opts["port"])
        except (TypeError, ValueError):
            raise StorageConfigError(f"sql: port {opts['port']!r} is not a number", "sql") from None
    for k in ("database", "host", "username", "password"):
        if k in opts and opts[k] is not None:
            opts[k] = str(opts[k])
    return opts


async def open_backend(config, data_path: Path, kind: str):
    """One backend, opened as configured."""
    from ..storage import StorageError, open_storage
    if kind == "sqlite":
        from ..config.options import CORE_OPTIONS, lookup
        tune = lookup(config, next(o for o in CORE_OPTIONS if o.name == "sqlite_tune"))
        return await open_storage("sqlite", path=str(data_path / "xmppd.sqlite"),
                                  synchronous=SQLITE_TUNE[tune])
    if kind == "postgres":
        try:
            return await open_storage("postgres", **postgres_options(config))
        except StorageError as exc:
            raise StorageConfigError(f"sql: cannot open the storage: {exc}", "sql") from None
    if kind == "memory":
        return await open_storage("memory")
    raise StorageConfigError(f"unknown storage kind {kind!r}", "storage")


async def open_configured_storage(config, data_path: Path, kind: str | None = None):
    """The storage the configuration asks for (``kind``: just that backend, as
    ``xmppctl storage migrate`` opens its source and its target)."""
    if kind is not None:
        return await open_backend(config, data_path, kind)
    default, per_store = routes(config)
    kinds = {default, *per_store.values()}
    opened: dict = {}
    try:
        for k in sorted(kinds):
            opened[k] = await open_backend(config, data_path, k)
    except BaseException:
        for s in opened.values():
            await s.close()
        raise
    if len(opened) == 1:
        return opened[default]
    from ..storage.routed import RoutedStorage
    return RoutedStorage(opened[default], {store: opened[k] for store, k in per_store.items()})

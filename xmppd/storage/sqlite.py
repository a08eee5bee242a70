"""SQLite storage (the default): one database file for all hosts, via aiosqlite.

Durability: the database runs in WAL mode. With ``synchronous=NORMAL`` (the
default) a committed transaction is in the WAL file before the write returns,
so it survives a crash of the process (``kill -9``, OOM killer, segfault); it
can be lost on power failure or kernel crash, since the WAL is only fsync'ed at
checkpoints. ``open_storage("sqlite", path=..., synchronous="full")`` fsyncs the
WAL on every commit, which survives power loss too, at the cost of one fsync
per commit (writes that arrive together share one: group commit, below);
``"off"`` never fsyncs (a crash of the machine may corrupt the database). The
configuration chooses with Prosody's ``sqlite_tune`` ("normal", "safe", "fast").

Every write commits before its coroutine returns. Two connections are used: a
writer, on which all writes are serialised by an asyncio lock (so one caller's
multi-statement transaction never swallows another caller's statement), and a
read-only reader, which in WAL mode sees only committed data and does not wait
for the writer. A ``:memory:`` database has just one connection for both.

The schema is versioned with ``PRAGMA user_version`` and ``MIGRATIONS``, an
ordered list in which entry *n-1* brings a database from version *n-1* to *n*.
Opening an older database migrates it in one transaction; a newer one is
refused with a StorageError. Append new migrations; never edit old ones.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, TypeVar

import aiosqlite

from .api import (
    ArchiveItem, ArchiveStore, ItemNotFound, KeyValStore, MapStore, Storage, StorageError,
    archive_rows, check_key, check_keys, check_limit, check_name, check_when, decode, encode,
    norm_user, search_pattern,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Each migration: a tuple of single SQL statements, applied in order.
MIGRATIONS: list[tuple[str, ...]] = [
    # 1: initial schema
    (
        """CREATE TABLE keyval (
            host TEXT NOT NULL, store TEXT NOT NULL, user TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (host, store, user)
        ) WITHOUT ROWID""",
        """CREATE TABLE map (
            host TEXT NOT NULL, store TEXT NOT NULL, user TEXT NOT NULL,
            key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (host, store, user, key)
        ) WITHOUT ROWID""",
        # id is the rowid: new rows get max(id)+1, which is the insertion order.
        """CREATE TABLE archive (
            id INTEGER PRIMARY KEY,
            host TEXT NOT NULL, store TEXT NOT NULL, user TEXT NOT NULL,
            key TEXT NOT NULL, "when" REAL NOT NULL, with_jid TEXT,
            value TEXT NOT NULL,
            UNIQUE (host, store, user, key)
        )""",
        'CREATE INDEX archive_when ON archive (host, store, user, "when", id)',
    ),
    # 2: per-correspondent queries (MAM "with" filter)
    (
        'CREATE INDEX archive_with ON archive (host, store, user, with_jid, "when", id)',
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

_SYNCHRONOUS = {"off": "OFF", "normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}


async def migrate(conn: aiosqlite.Connection, path: str, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version ``target``; return the version found.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("PRAGMA user_version") as cur:
            (found,) = await cur.fetchone()
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"{path}: database schema version {found} is newer than this xmppd "
                f"supports (version {SCHEMA_VERSION}); upgrade xmppd or restore a backup "
                "made for this version")
        for n in range(found + 1, target + 1):
            log.info("%s: migrating storage schema to version %d", path, n)
            for stmt in MIGRATIONS[n - 1]:
                await conn.execute(stmt)
        if target > found:
            await conn.execute(f"PRAGMA user_version = {int(target)}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    return found


async def _connect(path: str, pragmas: Iterable[str]) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        for p in pragmas:
            await conn.execute(p)
    except BaseException:
        await conn.close()
        raise
    return conn


ANALYSIS_LIMIT = 1000


async def open_sqlite(path: str | os.PathLike[str], *, synchronous: str = "normal",
                      busy_timeout: float = 5.0) -> "SQLiteStorage":
    path = os.fspath(path)
    sync = _SYNCHRONOUS.get(str(synchronous).lower())
    if sync is None:
        raise StorageError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, "
                           f"not {synchronous!r}")
    memory = path == ":memory:" or path == ""
    if not memory:
        parent = os.path.dirname(os.path.abspath(path))
        try:
            await asyncio.to_thread(os.makedirs, parent, exist_ok=True)
        except OSError as e:
            raise StorageError(f"{path}: cannot create directory {parent}: {e}") from None
    timeout_ms = int(busy_timeout * 1000)
    common = [f"PRAGMA busy_timeout = {timeout_ms}", "PRAGMA foreign_keys = ON"]
    writer = reader = None
    try:
        writer = await _connect(path, common + [
            "PRAGMA journal_mode = WAL", f"PRAGMA synchronous = {sync}",
            # ANALYZE (run by PRAGMA optimize at close) samples instead of reading
            # every index: closing a database of millions of archived messages
            # takes milliseconds, not seconds
            f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}"])
        if not memory:
            async with writer.execute("PRAGMA journal_mode") as cur:
                (mode,) = await cur.fetchone()
            if str(mode).lower() != "wal":
                raise StorageError(f"{path}: cannot switch the database to WAL mode "
                                   f"(journal_mode is {mode})")
        await migrate(writer, path)
        if memory:
            reader = writer
        else:
            reader = await _connect(path, common + ["PRAGMA query_only = ON"])
    except BaseException as e:
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()
        if isinstance(e, sqlite3.Error):
            raise StorageError(f"{path}: cannot open database: {e}") from e
        raise
    return SQLiteStorage(path, writer, reader)


def _run_batch(conn: sqlite3.Connection, stmts: list[tuple[str, tuple]]) -> list:
    """In the database thread: run ``stmts`` in one transaction; per statement
    its row count or the exception it raised."""
    out: list = []
    if len(stmts) == 1:
        sql, params = stmts[0]
        try:
            out.append(conn.execute(sql, params).rowcount)
        except sqlite3.Error as e:
            out.append(e)
        return out
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in stmts:
            try:
                out.append(conn.execute(sql, params).rowcount)
            except sqlite3.Error as e:
                out.append(e)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


class SQLiteStorage(Storage):
    kind = "sqlite"

    def __init__(self, path: str, writer: aiosqlite.Connection,
                 reader: aiosqlite.Connection) -> None:
        self.path = path
        self._w = writer
        self._r = reader
        self._shared = reader is writer
        self._lock = asyncio.Lock()
        self._closed = False
        # group commit: single-statement writes that arrive while one batch is
        # being written go together into the next transaction (one thread hop,
        # one commit); each caller's future resolves only after that commit
        self._pending: list[tuple[str, tuple, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    # ------------------------------------------------------------ plumbing
    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")

    async def fetchall(self, sql: str, params: tuple = ()) -> list[tuple]:
        self._check_open()
        try:
            if self._shared:
                async with self._lock:
                    return list(await self._r.execute_fetchall(sql, params))
            return list(await self._r.execute_fetchall(sql, params))
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: {e}") from e

    async def write(self, sql: str, params: tuple = ()) -> int:
        """Run one write statement (committed on return); return the changed row count.

        Writes from many coroutines are grouped: those that arrive while a batch
        is being written are committed together in the next one, in order. A
        statement that fails fails alone (SQLite rolls back just that statement).
        """
        self._check_open()
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((sql, params, fut))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_writes())
        result = await asyncio.shield(fut)
        if isinstance(result, BaseException):
            raise StorageError(f"{self.path}: {result}") from result
        return result

    async def _flush_writes(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                stmts = [(sql, params) for sql, params, _ in batch]
                try:
                    async with self._lock:
                        results = await self._w._execute(_run_batch, self._w._conn, stmts)
                except BaseException as e:  # the whole batch failed (disk full, closed...)
                    results = [e] * len(batch)
                for (_, _, fut), r in zip(batch, results):
                    if not fut.done():
                        fut.set_result(r)
        finally:
            self._flusher = None

    async def transaction(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``fn(conn)`` in one write transaction, committed on return.

        Once started, the transaction runs to its end even if the caller is
        cancelled, so a cancellation never leaves a transaction open.
        """
        self._check_open()

        async def run() -> T:
            async with self._lock:
                await self._w.execute("BEGIN IMMEDIATE")
                try:
                    result = await fn(self._w)
                except BaseException:
                    await self._w.execute("ROLLBACK")
                    raise
                await self._w.execute("COMMIT")
                return result

        try:
            return await asyncio.shield(run())
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: {e}") from e

    # ------------------------------------------------------------ Storage
    def keyval(self, host: str, store: str) -> KeyValStore:
        return _KeyVal(self, check_name("host", host), check_name("store", store))

    def map(self, host: str, store: str) -> MapStore:
        return _Map(self, check_name("host", host), check_name("store", store))

    def archive(self, host: str, store: str) -> ArchiveStore:
        return _Archive(self, check_name("host", host), check_name("store", store))

    async def stores(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for table in ("keyval", "map", "archive"):
            # a walk of the primary key / unique index, one seek per (host, store)
            host = store = None
            while True:
                if host is None:
                    rows = await self.fetchall(
                        f"SELECT host, store FROM {table} ORDER BY host, store LIMIT 1")
                else:
                    rows = await self.fetchall(
                        f"SELECT host, store FROM {table} WHERE (host, store) > (?, ?) "
                        "ORDER BY host, store LIMIT 1", (host, store))
                if not rows:
                    break
                host, store = rows[0]
                out.append((host, table, store))
        return sorted(out)

    async def delete_user(self, host: str, user: str | None) -> None:
        check_name("host", host)
        user = norm_user(user)

        async def run(conn: aiosqlite.Connection) -> None:
            for table in ("keyval", "map", "archive"):
                # Walk the distinct stores of this host with index seeks, then delete
                # per (host, store, user) so every DELETE is an index range.
                store = None
                while True:
                    if store is None:
                        sql = f"SELECT min(store) FROM {table} WHERE host = ?"
                        params: tuple = (host,)
                    else:
                        sql = f"SELECT min(store) FROM {table} WHERE host = ? AND store > ?"
                        params = (host, store)
                    async with conn.execute(sql, params) as cur:
                        (store,) = await cur.fetchone()
                    if store is None:
                        break
                    await conn.execute(
                        f"DELETE FROM {table} WHERE host = ? AND store = ? AND user = ?",
                        (host, store, user))

        await self.transaction(run)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:  # writes already accepted are committed first
            await self._flusher
        async with self._lock:  # let in-flight writes finish
            try:
                await self._w.execute("PRAGMA optimize")
            except sqlite3.Error:  # pragma: no cover - best effort
                pass
            if not self._shared:
                await self._r.close()
            await self._w.close()


class _Store:
    def __init__(self, s: SQLiteStorage, host: str, store: str) -> None:
        self._s, self.host, self.store = s, host, store


class _KeyVal(_Store, KeyValStore):
    async def get(self, user: str | None) -> Any | None:
        rows = await self._s.fetchall(
            "SELECT value FROM keyval WHERE host = ? AND store = ? AND user = ?",
            (self.host, self.store, norm_user(user)))
        return decode(rows[0][0]) if rows else None

    async def set(self, user: str | None, value: Any) -> None:
        if value is None:
            await self.delete(user)
            return
        await self._s.write(
            "INSERT INTO keyval (host, store, user, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (host, store, user) DO UPDATE SET value = excluded.value",
            (self.host, self.store, norm_user(user), encode(value)))

    async def delete(self, user: str | None) -> bool:
        n = await self._s.write(
            "DELETE FROM keyval WHERE host = ? AND store = ? AND user = ?",
            (self.host, self.store, norm_user(user)))
        return n > 0

    async def users(self) -> list[str]:
        rows = await self._s.fetchall(
            "SELECT user FROM keyval WHERE host = ? AND store = ? ORDER BY user",
            (self.host, self.store))
        return [r[0] for r in rows]


_MAP_UPSERT = ("INSERT INTO map (host, store, user, key, value) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (host, store, user, key) DO UPDATE SET value = excluded.value")
_MAP_DELETE = "DELETE FROM map WHERE host = ? AND store = ? AND user = ? AND key = ?"


class _Map(_Store, MapStore):
    async def get(self, user: str | None, key: str) -> Any | None:
        rows = await self._s.fetchall(
            "SELECT value FROM map WHERE host = ? AND store = ? AND user = ? AND key = ?",
            (self.host, self.store, norm_user(user), check_key(key)))
        return decode(rows[0][0]) if rows else None

    async def set(self, user: str | None, key: str, value: Any) -> None:
        if value is None:
            await self.delete(user, key)
            return
        await self._s.write(_MAP_UPSERT, (self.host, self.store, norm_user(user),
                                          check_key(key), encode(value)))

    async def delete(self, user: str | None, key: str) -> bool:
        n = await self._s.write(_MAP_DELETE,
                                (self.host, self.store, norm_user(user), check_key(key)))
        return n > 0

    async def items(self, user: str | None) -> dict[str, Any]:
        rows = await self._s.fetchall(
            "SELECT key, value FROM map WHERE host = ? AND store = ? AND user = ?",
            (self.host, self.store, norm_user(user)))
        return {k: decode(v) for k, v in rows}

    async def clear(self, user: str | None) -> None:
        await self._s.write("DELETE FROM map WHERE host = ? AND store = ? AND user = ?",
                            (self.host, self.store, norm_user(user)))

    async def set_many(self, user: str | None, values: Mapping[str, Any]) -> None:
        user = norm_user(user)
        check_keys(values)
        base = (self.host, self.store, user)
        upserts = [base + (k, encode(v)) for k, v in values.items() if v is not None]
        deletes = [base + (k,) for k, v in values.items() if v is None]
        if not upserts and not deletes:
            return

        async def run(conn: aiosqlite.Connection) -> None:
            if deletes:
                await conn.executemany(_MAP_DELETE, deletes)
            if upserts:
                await conn.executemany(_MAP_UPSERT, upserts)

        await self._s.transaction(run)

    async def users(self) -> list[str]:
        rows = await self._s.fetchall(
            "SELECT DISTINCT user FROM map WHERE host = ? AND store = ? ORDER BY user",
            (self.host, self.store))
        return [r[0] for r in rows]


_ARCHIVE_INSERT = (
    'INSERT OR REPLACE INTO archive (host, store, user, key, "when", with_jid, value) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)")


class _Archive(_Store, ArchiveStore):
    async def append(self, user: str | None, value: Any, *, with_jid: str | None = None,
                     when: float | None = None, key: str | None = None) -> str:
        when = check_when(when, time.time())
        if with_jid is not None:
            check_name("with_jid", with_jid)
        key = secrets.token_urlsafe(12) if key is None else check_key(key)
        # OR REPLACE: an existing item with this key is deleted and the new row gets
        # a fresh id, i.e. it moves to the end of the insertion order.
        await self._s.write(_ARCHIVE_INSERT,
                            (self.host, self.store, norm_user(user), key, when, with_jid,
                             encode(value)))
        return key

    async def append_many(self, user: str | None,
                          items: Iterable[tuple[str, float | None, str | None, Any]]) -> int:
        base = (self.host, self.store, norm_user(user))
        rows = [base + row for row in archive_rows(items)]
        if not rows:
            return 0

        async def run(conn: aiosqlite.Connection) -> None:
            # in order, each OR REPLACE as append's: a key given twice ends where it
            # was given last
            await conn.executemany(_ARCHIVE_INSERT, rows)

        await self._s.transaction(run)
        return len(rows)

    def _where(self, user: str | None, with_jid: str | None, start: float | None,
               end: float | None, text: str | None = None) -> tuple[list[str], list[Any]]:
        where = ["host = ?", "store = ?", "user = ?"]
        params: list[Any] = [self.host, self.store, norm_user(user)]
        if text is not None:   # LIKE folds ASCII letters only
            where.append("value LIKE ? ESCAPE '\\'")
            params.append(search_pattern(text))
        if with_jid is not None:
            where.append("with_jid = ?")
            params.append(with_jid)
        if start is not None:
            where.append('"when" >= ?')
            params.append(float(start))
        if end is not None:
            where.append('"when" <= ?')
            params.append(float(end))
        return where, params

    async def _position(self, user: str | None, key: str) -> tuple[float, int]:
        rows = await self._s.fetchall(
            'SELECT "when", id FROM archive WHERE host = ? AND store = ? AND user = ? '
            "AND key = ?", (self.host, self.store, norm_user(user), check_key(key)))
        if not rows:
            raise ItemNotFound(f"no archive item with key {key!r}")
        return rows[0][0], rows[0][1]

    def query_sql(self, user: str | None, *, with_jid: str | None = None,
                  start: float | None = None, end: float | None = None,
                  after_pos: tuple[float, int] | None = None,
                  before_pos: tuple[float, int] | None = None,
                  limit: int | None = None, reverse: bool = False,
                  text: str | None = None) -> tuple[str, list[Any]]:
        """The SELECT behind ``query`` (public so tests can EXPLAIN it)."""
        # Keep one lower and one upper bound: the tighter one implies the other, and
        # SQLite's planner drops the (with_jid, when) index when ``"when" >= ?`` and a
        # row-value bound on ("when", id) are both given.
        if start is not None and after_pos is not None:
            if after_pos[0] >= start:
                start = None
            else:
                after_pos = None
        if end is not None and before_pos is not None:
            if before_pos[0] <= end:
                end = None
            else:
                before_pos = None
        where, params = self._where(user, with_jid, start, end, text)
        if after_pos is not None:
            where.append('("when", id) > (?, ?)')
            params.extend(after_pos)
        if before_pos is not None:
            where.append('("when", id) < (?, ?)')
            params.extend(before_pos)
        order = ' DESC' if reverse else ''
        sql = (f'SELECT key, "when", with_jid, value FROM archive WHERE {" AND ".join(where)} '
               f'ORDER BY "when"{order}, id{order}')
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return sql, params

    async def query(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    after: str | None = None, before: str | None = None,
                    limit: int | None = None, reverse: bool = False,
                    text: str | None = None) -> list[ArchiveItem]:
        limit = check_limit(limit)
        after_pos = await self._position(user, after) if after is not None else None
        before_pos = await self._position(user, before) if before is not None else None
        sql, params = self.query_sql(user, with_jid=with_jid, start=start, end=end,
                                     after_pos=after_pos, before_pos=before_pos,
                                     limit=limit, reverse=reverse, text=text)
        rows = await self._s.fetchall(sql, tuple(params))
        return [ArchiveItem(k, w, j, decode(v)) for k, w, j, v in rows]

    async def count(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    text: str | None = None) -> int:
        where, params = self._where(user, with_jid, start, end, text)
        rows = await self._s.fetchall(
            f"SELECT count(*) FROM archive WHERE {' AND '.join(where)}", tuple(params))
        return rows[0][0]

    async def get(self, user: str | None, key: str) -> ArchiveItem | None:
        rows = await self._s.fetchall(
            'SELECT key, "when", with_jid, value FROM archive '
            "WHERE host = ? AND store = ? AND user = ? AND key = ?",
            (self.host, self.store, norm_user(user), check_key(key)))
        if not rows:
            return None
        k, w, j, v = rows[0]
        return ArchiveItem(k, w, j, decode(v))

    async def delete(self, user: str | None, *, key: str | None = None,
                     before_when: float | None = None) -> int:
        where = ["host = ?", "store = ?", "user = ?"]
        params: list[Any] = [self.host, self.store, norm_user(user)]
        if key is not None:
            where.append("key = ?")
            params.append(check_key(key))
        if before_when is not None:
            where.append('"when" < ?')
            params.append(float(before_when))
        return await self._s.write(f"DELETE FROM archive WHERE {' AND '.join(where)}",
                                   tuple(params))

    async def users(self) -> list[str]:
        out: list[str] = []
        user = None
        while True:   # one index seek per user, not a scan of their items
            if user is None:
                rows = await self._s.fetchall(
                    "SELECT min(user) FROM archive WHERE host = ? AND store = ?",
                    (self.host, self.store))
            else:
                rows = await self._s.fetchall(
                    "SELECT min(user) FROM archive WHERE host = ? AND store = ? AND user > ?",
                    (self.host, self.store, user))
            user = rows[0][0]
            if user is None:
                return out
            out.append(user)

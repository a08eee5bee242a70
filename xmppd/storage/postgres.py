"""PostgreSQL storage, via asyncpg: for an admin who outgrows SQLite or runs several nodes.

Chosen with Prosody's syntax::

    storage = "sql"
    sql = { driver = "PostgreSQL"; database = "xmppd"; host = "localhost";
            port = 5432; username = "xmppd"; password = "..." }

The tables are those of the SQLite backend (``keyval``, ``map``, ``archive``,
one row per value, keyed by host and store) plus ``xmppd_schema``, which holds
the schema version. ``MIGRATIONS`` is an ordered list in which entry *n-1*
brings a database from version *n-1* to *n*; opening an older database migrates
it in one transaction (under an advisory lock, so two nodes starting together
migrate once); a newer one is refused with a StorageError. Append new
migrations; never edit old ones.

Durability: every write is one autocommitted statement or one transaction, and
the coroutine returns when PostgreSQL has answered the COMMIT, which with the
default ``synchronous_commit = on`` means the WAL record is flushed to disk: an
acknowledged write survives a crash of xmppd, of PostgreSQL and of the machine.

Connections come from an asyncpg pool; asyncpg prepares each statement once per
connection and keeps it in its statement cache, and every statement here has a
fixed text (parameters are ``$n``), so each is parsed and planned once.

Faults. A connection lost in the middle of an operation (PostgreSQL restarting,
a network blip, an administrator terminating the backend) is retried on a new
connection until ``retry_timeout`` seconds have passed; every write here is
idempotent (upserts, deletes, an archive append under its key), so a write that
committed before the connection dropped and is run again changes nothing. When
the time is up the operation raises StorageError and the caller answers with an
error: nothing is acknowledged that was not committed. Other errors (a full
disk, a value PostgreSQL refuses) raise StorageError at once.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, TypeVar

from .api import (
    ArchiveItem, ArchiveStore, ItemNotFound, KeyValStore, MapStore, Storage, StorageError,
    archive_rows, check_key, check_keys, check_limit, check_name, check_when, decode, encode,
    last_of_each_key, norm_user, search_pattern,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: initial schema (the SQLite backend's versions 1 and 2); names compare and
    # sort by code point (COLLATE "C"), as in SQLite, whatever the database's locale
    (
        """CREATE TABLE keyval (
            host text COLLATE "C" NOT NULL, store text COLLATE "C" NOT NULL,
            "user" text COLLATE "C" NOT NULL, value text NOT NULL,
            PRIMARY KEY (host, store, "user"))""",
        """CREATE TABLE map (
            host text COLLATE "C" NOT NULL, store text COLLATE "C" NOT NULL,
            "user" text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (host, store, "user", key))""",
        # id gives the insertion order: a replaced item takes a new one
        """CREATE TABLE archive (
            id bigserial PRIMARY KEY,
            host text COLLATE "C" NOT NULL, store text COLLATE "C" NOT NULL,
            "user" text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
            "when" double precision NOT NULL, with_jid text COLLATE "C",
            value text NOT NULL,
            UNIQUE (host, store, "user", key))""",
        'CREATE INDEX archive_when ON archive (host, store, "user", "when", id)',
        'CREATE INDEX archive_with ON archive (host, store, "user", with_jid, "when", id)',
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

# any number; the advisory lock that serialises migrations of one database
_MIGRATION_LOCK = 0x786D7070  # "xmpp"

DEFAULT_RETRY_TIMEOUT = 10.0


def _asyncpg():
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - a dependency; Debian: python3-asyncpg
        raise StorageError("PostgreSQL storage needs the asyncpg library "
                           "(pip install asyncpg; Debian: apt-get install python3-asyncpg)") from None
    return asyncpg


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the connection going away (retry on a new one)."""
    asyncpg = _asyncpg()
    if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, (asyncpg.exceptions.ConnectionDoesNotExistError,
                        asyncpg.exceptions.ConnectionFailureError,
                        asyncpg.exceptions.CannotConnectNowError,
                        asyncpg.exceptions.AdminShutdownError,
                        asyncpg.exceptions.CrashShutdownError,
                        asyncpg.exceptions.TooManyConnectionsError)):
        return True
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return True   # the protocol state after a connection broke mid-operation
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        msg = str(exc)
        return "connection" in msg and ("closed" in msg or "lost" in msg)
    return False


def describe(exc: BaseException) -> str:
    asyncpg = _asyncpg()
    if isinstance(exc, asyncpg.exceptions.DiskFullError):
        return f"the PostgreSQL server's disk is full ({exc})"
    if isinstance(exc, asyncpg.exceptions.InvalidPasswordError):
        return f"PostgreSQL refused the user name or password ({exc})"
    if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
        return f"{exc} (create it: createdb -O USER DATABASE)"
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return f"cannot connect to the PostgreSQL server: {exc or type(exc).__name__}"
    return str(exc) or type(exc).__name__


async def migrate(conn, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version ``target``; return the version found."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS xmppd_schema (version integer NOT NULL)")
        found = await conn.fetchval("SELECT max(version) FROM xmppd_schema")
        found = found or 0
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {found} is newer than this xmppd supports "
                f"(version {SCHEMA_VERSION}); upgrade xmppd or restore a backup made "
                "for this version")
        for n in range(found + 1, target + 1):
            log.info("migrating the PostgreSQL storage schema to version %d", n)
            for stmt in MIGRATIONS[n - 1]:
                await conn.execute(stmt)
        if target > found:
            await conn.execute("DELETE FROM xmppd_schema")
            await conn.execute("INSERT INTO xmppd_schema (version) VALUES ($1)", target)
    return found


async def _no_reset(conn) -> None:
    return None


async def open_postgres(*, database: str = "xmppd", host: str | None = None,
                        port: int | None = None, username: str | None = None,
                        password: str | None = None, pool_size: int = 10,
                        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
                        connect_timeout: float = 10.0) -> "PostgresStorage":
    asyncpg = _asyncpg()
    where = f"PostgreSQL database {database!r}"
    if host:
        where += f" on {host}" + (f":{port}" if port else "")
    extra = {}
    if "reset" in inspect.signature(asyncpg.create_pool).parameters:   # asyncpg >= 0.30
        # a connection goes back into the pool as it is: nothing here leaves session
        # state behind (no LISTEN, no cursor, no SET, only transaction-scoped locks),
        # and asyncpg's default reset is one more round trip per operation
        extra["reset"] = _no_reset
    try:
        pool = await asyncpg.create_pool(
            database=database, host=host or None, port=int(port) if port else None,
            user=username or None, password=password or None,
            min_size=0, max_size=max(1, int(pool_size)), timeout=connect_timeout,
            server_settings={"application_name": "xmppd"}, **extra)
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(f"{where}: {describe(exc)}") from None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException as exc:
        await pool.close()
        if isinstance(exc, StorageError):
            raise StorageError(f"{where}: {exc}") from None
        if isinstance(exc, Exception):
            raise StorageError(f"{where}: {describe(exc)}") from None
        raise
    return PostgresStorage(pool, where, retry_timeout)


# loose index scans: one index seek per distinct (host, store), not a scan of the table
_STORES = """
    WITH RECURSIVE s(host, store) AS (
      (SELECT host, store FROM {table} ORDER BY host, store LIMIT 1)
      UNION ALL
      SELECT n.host, n.store FROM s, LATERAL (
        SELECT host, store FROM {table} t WHERE (t.host, t.store) > (s.host, s.store)
        ORDER BY host, store LIMIT 1) n)
    SELECT host, store FROM s"""


def _host_stores(table: str) -> str:
    return f"""
    WITH RECURSIVE s(store) AS (
      (SELECT store FROM {table} WHERE host = $1 ORDER BY store LIMIT 1)
      UNION ALL
      SELECT n.store FROM s, LATERAL (
        SELECT store FROM {table} t WHERE t.host = $1 AND t.store > s.store
        ORDER BY store LIMIT 1) n)
    SELECT store FROM s"""


class PostgresStorage(Storage):
    kind = "postgres"

    def __init__(self, pool, where: str, retry_timeout: float) -> None:
        self._pool = pool
        self.where = where
        self.retry_timeout = retry_timeout
        self._closed = False
        self._running: set[asyncio.Future] = set()

    # ------------------------------------------------------------ plumbing
    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")

    async def run(self, fn: Callable[[Any], Awaitable[T]], *, write: bool = True) -> T:
        """``fn(conn)`` on a pooled connection, again on a new one while the
        connection is lost, for up to ``retry_timeout`` seconds. A write runs to
        its end even if the caller is cancelled (shielded), so what a cancelled
        caller started is committed or rolled back, never left half done."""
        self._check_open()

        async def attempt() -> T:
            deadline = time.monotonic() + self.retry_timeout
            delay = 0.05
            while True:
                try:
                    async with self._pool.acquire() as conn:
                        try:
                            return await fn(conn)
                        except Exception as exc:
                            # a connection that broke, or whose protocol state is
                            # confused by it, never goes back into the pool
                            if _transient(exc) and not conn.is_closed():
                                conn.terminate()
                            raise
                except StorageError:
                    raise
                except Exception as exc:
                    if not _transient(exc) or self._closed:
                        raise StorageError(f"{self.where}: {describe(exc)}") from exc
                    if time.monotonic() + delay > deadline:
                        raise StorageError(
                            f"{self.where}: unreachable for {self.retry_timeout:g} s "
                            f"({describe(exc)})") from exc
                    log.warning("%s: %s; retrying", self.where, describe(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)

        if not write:
            return await attempt()
        task = asyncio.ensure_future(attempt())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def fetch(self, sql: str, *params: Any) -> list:
        return await self.run(lambda c: c.fetch(sql, *params), write=False)

    async def execute(self, sql: str, *params: Any) -> int:
        """One write statement, committed on return; the changed row count."""
        status = await self.run(lambda c: c.execute(sql, *params))
        try:
            return int(status.rsplit(" ", 1)[-1])
        except ValueError:  # pragma: no cover
            return 0

    async def transaction(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        async def run(conn) -> T:
            async with conn.transaction():
                return await fn(conn)
        return await self.run(run)

    # ------------------------------------------------------------ Storage
    def keyval(self, host: str, store: str) -> KeyValStore:
        return _KeyVal(self, check_name("host", host), check_name("store", store))

    def map(self, host: str, store: str) -> MapStore:
        return _Map(self, check_name("host", host), check_name("store", store))

    def archive(self, host: str, store: str) -> ArchiveStore:
        return _Archive(self, check_name("host", host), check_name("store", store))

    async def stores(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for kind, table in (("keyval", "keyval"), ("map", "map"), ("archive", "archive")):
            rows = await self.fetch(_STORES.format(table=table))
            out.extend((r[0], kind, r[1]) for r in rows)
        return sorted(out)

    async def delete_user(self, host: str, user: str | None) -> None:
        check_name("host", host)
        user = norm_user(user)

        async def run(conn) -> None:
            for table in ("keyval", "map", "archive"):
                # per store of the host, so that every DELETE is an index range
                for (store,) in await conn.fetch(_host_stores(table), host):
                    await conn.execute(
                        f'DELETE FROM {table} WHERE host = $1 AND store = $2 AND "user" = $3',
                        host, store, user)

        await self.transaction(run)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._running:  # writes already started are committed first
            await asyncio.gather(*self._running, return_exceptions=True)
        await self._pool.close()


class _Store:
    def __init__(self, s: PostgresStorage, host: str, store: str) -> None:
        self._s, self.host, self.store = s, host, store

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}/{self.store} on {self._s.where}>"


class _KeyVal(_Store, KeyValStore):
    async def get(self, user: str | None) -> Any | None:
        rows = await self._s.fetch(
            'SELECT value FROM keyval WHERE host = $1 AND store = $2 AND "user" = $3',
            self.host, self.store, norm_user(user))
        return decode(rows[0][0]) if rows else None

    async def set(self, user: str | None, value: Any) -> None:
        if value is None:
            await self.delete(user)
            return
        await self._s.execute(
            'INSERT INTO keyval (host, store, "user", value) VALUES ($1, $2, $3, $4) '
            'ON CONFLICT (host, store, "user") DO UPDATE SET value = excluded.value',
            self.host, self.store, norm_user(user), encode(value))

    async def delete(self, user: str | None) -> bool:
        n = await self._s.execute(
            'DELETE FROM keyval WHERE host = $1 AND store = $2 AND "user" = $3',
            self.host, self.store, norm_user(user))
        return n > 0

    async def users(self) -> list[str]:
        rows = await self._s.fetch(
            'SELECT "user" FROM keyval WHERE host = $1 AND store = $2 ORDER BY "user"',
            self.host, self.store)
        return [r[0] for r in rows]


_MAP_UPSERT = ('INSERT INTO map (host, store, "user", key, value) VALUES ($1, $2, $3, $4, $5) '
               'ON CONFLICT (host, store, "user", key) DO UPDATE SET value = excluded.value')
_MAP_DELETE = 'DELETE FROM map WHERE host = $1 AND store = $2 AND "user" = $3 AND key = $4'


class _Map(_Store, MapStore):
    async def get(self, user: str | None, key: str) -> Any | None:
        rows = await self._s.fetch(
            'SELECT value FROM map WHERE host = $1 AND store = $2 AND "user" = $3 AND key = $4',
            self.host, self.store, norm_user(user), check_key(key))
        return decode(rows[0][0]) if rows else None

    async def set(self, user: str | None, key: str, value: Any) -> None:
        if value is None:
            await self.delete(user, key)
            return
        await self._s.execute(_MAP_UPSERT, self.host, self.store, norm_user(user),
                              check_key(key), encode(value))

    async def delete(self, user: str | None, key: str) -> bool:
        n = await self._s.execute(_MAP_DELETE, self.host, self.store, norm_user(user),
                                  check_key(key))
        return n > 0

    async def items(self, user: str | None) -> dict[str, Any]:
        rows = await self._s.fetch(
            'SELECT key, value FROM map WHERE host = $1 AND store = $2 AND "user" = $3',
            self.host, self.store, norm_user(user))
        return {k: decode(v) for k, v in rows}

    async def clear(self, user: str | None) -> None:
        await self._s.execute('DELETE FROM map WHERE host = $1 AND store = $2 AND "user" = $3',
                              self.host, self.store, norm_user(user))

    async def set_many(self, user: str | None, values: Mapping[str, Any]) -> None:
        user = norm_user(user)
        check_keys(values)
        base = (self.host, self.store, user)
        upserts = [base + (k, encode(v)) for k, v in values.items() if v is not None]
        deletes = [base + (k,) for k, v in values.items() if v is None]
        if not upserts and not deletes:
            return

        async def run(conn) -> None:
            if deletes:
                await conn.executemany(_MAP_DELETE, deletes)
            if upserts:
                await conn.executemany(_MAP_UPSERT, upserts)

        await self._s.transaction(run)

    async def users(self) -> list[str]:
        rows = await self._s.fetch(
            'SELECT DISTINCT "user" FROM map WHERE host = $1 AND store = $2 '
            'ORDER BY 1', self.host, self.store)
        return [r[0] for r in rows]


_ARCHIVE_UPSERT = (
    'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
    "VALUES ($1, $2, $3, $4, $5, $6, $7) "
    'ON CONFLICT (host, store, "user", key) DO UPDATE SET '
    "id = nextval(pg_get_serial_sequence('archive', 'id')), "
    '"when" = excluded."when", with_jid = excluded.with_jid, value = excluded.value')


# append_many: one statement for the whole batch (arrays unnested in their order, so
# the ids follow it); a key may appear once in it (ON CONFLICT cannot update a row
# twice), so the batch keeps each key's last item, which is what appending them one
# by one leaves
_ARCHIVE_UPSERT_MANY = (
    'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
    "SELECT $1, $2, $3, t.k, t.w, t.j, t.v "
    "FROM unnest($4::text[], $5::float8[], $6::text[], $7::text[]) "
    "WITH ORDINALITY AS t(k, w, j, v, n) ORDER BY t.n "
    'ON CONFLICT (host, store, "user", key) DO UPDATE SET '
    "id = nextval(pg_get_serial_sequence('archive', 'id')), "
    '"when" = excluded."when", with_jid = excluded.with_jid, value = excluded.value')


class _Archive(_Store, ArchiveStore):
    async def append(self, user: str | None, value: Any, *, with_jid: str | None = None,
                     when: float | None = None, key: str | None = None) -> str:
        when = check_when(when, time.time())
        if with_jid is not None:
            check_name("with_jid", with_jid)
        key = secrets.token_urlsafe(12) if key is None else check_key(key)
        # an existing item with this key takes the new values and a new id: it moves
        # to the end of the insertion order (and a retried append is harmless)
        await self._s.execute(_ARCHIVE_UPSERT, self.host, self.store, norm_user(user), key,
                              when, with_jid, encode(value))
        return key

    async def append_many(self, user: str | None,
                          items: Iterable[tuple[str, float | None, str | None, Any]]) -> int:
        rows = archive_rows(items)
        if not rows:
            return 0
        keys, whens, withs, values = zip(*last_of_each_key(rows))
        # one statement, so one transaction; run again after a lost connection, it
        # upserts the same rows (see append)
        await self._s.execute(_ARCHIVE_UPSERT_MANY, self.host, self.store, norm_user(user),
                              list(keys), list(whens), list(withs), list(values))
        return len(rows)

    def _where(self, user: str | None, with_jid: str | None, start: float | None,
               end: float | None, text: str | None = None) -> tuple[list[str], list[Any]]:
        where = ["host = $1", "store = $2", '"user" = $3']
        params: list[Any] = [self.host, self.store, norm_user(user)]
        if text is not None:   # filters the user's items (or an admin's trigram index)
            params.append(search_pattern(text))
            where.append(f"value ILIKE ${len(params)}")
        if with_jid is not None:
            params.append(with_jid)
            where.append(f"with_jid = ${len(params)}")
        if start is not None:
            params.append(float(start))
            where.append(f'"when" >= ${len(params)}')
        if end is not None:
            params.append(float(end))
            where.append(f'"when" <= ${len(params)}')
        return where, params

    async def _position(self, user: str | None, key: str) -> tuple[float, int]:
        rows = await self._s.fetch(
            'SELECT "when", id FROM archive WHERE host = $1 AND store = $2 AND "user" = $3 '
            "AND key = $4", self.host, self.store, norm_user(user), check_key(key))
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
        where, params = self._where(user, with_jid, start, end, text)
        if after_pos is not None:
            params.extend(after_pos)
            where.append(f'("when", id) > (${len(params) - 1}, ${len(params)})')
        if before_pos is not None:
            params.extend(before_pos)
            where.append(f'("when", id) < (${len(params) - 1}, ${len(params)})')
        order = " DESC" if reverse else ""
        # the ORDER BY names every index column, so the (host, store, user[, with_jid],
        # when, id) index delivers the rows in order and LIMIT stops the scan
        eq = 'host, store, "user"' + (", with_jid" if with_jid is not None else "")
        order_by = ", ".join(f"{c}{order}" for c in eq.split(", ")) + \
            f', "when"{order}, id{order}'
        sql = (f'SELECT key, "when", with_jid, value FROM archive WHERE {" AND ".join(where)} '
               f"ORDER BY {order_by}")
        if limit is not None:
            params.append(limit)
            sql += f" LIMIT ${len(params)}"
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
        rows = await self._s.fetch(sql, *params)
        return [ArchiveItem(k, w, j, decode(v)) for k, w, j, v in rows]

    async def count(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    text: str | None = None) -> int:
        where, params = self._where(user, with_jid, start, end, text)
        rows = await self._s.fetch(
            f"SELECT count(*) FROM archive WHERE {' AND '.join(where)}", *params)
        return rows[0][0]

    async def get(self, user: str | None, key: str) -> ArchiveItem | None:
        rows = await self._s.fetch(
            'SELECT key, "when", with_jid, value FROM archive '
            'WHERE host = $1 AND store = $2 AND "user" = $3 AND key = $4',
            self.host, self.store, norm_user(user), check_key(key))
        if not rows:
            return None
        k, w, j, v = rows[0]
        return ArchiveItem(k, w, j, decode(v))

    async def delete(self, user: str | None, *, key: str | None = None,
                     before_when: float | None = None) -> int:
        where = ["host = $1", "store = $2", '"user" = $3']
        params: list[Any] = [self.host, self.store, norm_user(user)]
        if key is not None:
            params.append(check_key(key))
            where.append(f"key = ${len(params)}")
        if before_when is not None:
            params.append(float(before_when))
            where.append(f'"when" < ${len(params)}')
        return await self._s.execute(f"DELETE FROM archive WHERE {' AND '.join(where)}",
                                     *params)

    async def users(self) -> list[str]:
        rows = await self._s.fetch(f"""
            WITH RECURSIVE u("user") AS (
              (SELECT "user" FROM archive WHERE host = $1 AND store = $2
               ORDER BY "user" LIMIT 1)
              UNION ALL
              SELECT n."user" FROM u, LATERAL (
                SELECT "user" FROM archive a WHERE a.host = $1 AND a.store = $2
                AND a."user" > u."user" ORDER BY "user" LIMIT 1) n)
            SELECT "user" FROM u""", self.host, self.store)
        return sorted(r[0] for r in rows)

"""The storage API modules see: three store kinds behind one ``Storage`` object.

Per (host, store name) there is

* a **keyval** store: one value per user (``accounts``, ``vcard``);
* a **map** store: many keys per user (``roster``, ``private``);
* an **archive** store: append-only, time-ordered items per user (``archive``
  for MAM, ``muc_log``), each item with a key, a time, an optional peer JID.

Values are JSON values (dict, list, str, int, float, bool, None inside
containers). They are encoded on write and decoded on read by every backend, so
what a reader gets back is always a fresh copy with JSON's shape (tuples come
back as lists, dict keys as strings), whatever the backend. XML payloads are
stored by callers as strings.

**Host-wide data** lives under the user ``""`` (empty string). ``None`` is
accepted wherever a user is expected and means the same thing; it is stored
and returned as ``""`` (so ``keyval.users()`` lists ``""`` when a host-wide
value is set).

Every write has reached the backend's durable state before its coroutine
returns, so a caller may acknowledge to the client right after ``await``. A write
that cannot be made durable (the database is gone, the disk is full) raises
StorageError: never acknowledged, then dropped.

To walk everything a backend holds (``xmppctl storage migrate``), ``Storage.stores()``
lists the ``(host, kind, store)`` that have data and each store's ``users()`` its users.
"""
from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = [
    "ArchiveItem", "ArchiveStore", "ItemNotFound", "KeyValStore", "MapStore",
    "Storage", "StorageError",
]


class StorageError(Exception):
    """Any failure of the storage layer (bad value, broken or too-new database, ...)."""


class ItemNotFound(StorageError, LookupError):
    """An archive ``after``/``before`` key that does not exist in the queried archive."""


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    key: str
    when: float
    with_jid: str | None
    value: Any


# ---------------------------------------------------------------- helpers
def encode(value: Any) -> str:
    """JSON-encode a value for storage; a value JSON cannot carry raises StorageError."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise StorageError(f"value is not JSON-serialisable: {e}") from None


def decode(text: str) -> Any:
    return json.loads(text)


def norm_user(user: str | None) -> str:
    if user is None:
        return ""
    if not isinstance(user, str):
        raise TypeError(f"user must be str or None, not {type(user).__name__}")
    return user


def check_name(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    return value


def check_when(when: float | None, default: float) -> float:
    if when is None:
        return default
    if isinstance(when, bool) or not isinstance(when, (int, float)) or when != when:
        raise TypeError("when must be a number of seconds since the epoch")
    return float(when)


# ---------------------------------------------------------------- stores
class KeyValStore(abc.ABC):
    """One value per user. ``set(user, None)`` is the same as ``delete(user)``."""

    host: str
    store: str

    @abc.abstractmethod
    async def get(self, user: str | None) -> Any | None: ...

    @abc.abstractmethod
    async def set(self, user: str | None, value: Any) -> None: ...

    @abc.abstractmethod
    async def delete(self, user: str | None) -> bool:
        """Remove the user's value; True if there was one."""

    @abc.abstractmethod
    async def users(self) -> list[str]:
        """Users with a value in this store, sorted."""


class MapStore(abc.ABC):
    """Many keys per user. Setting a key to ``None`` deletes it."""

    host: str
    store: str

    @abc.abstractmethod
    async def get(self, user: str | None, key: str) -> Any | None: ...

    @abc.abstractmethod
    async def set(self, user: str | None, key: str, value: Any) -> None: ...

    @abc.abstractmethod
    async def delete(self, user: str | None, key: str) -> bool:
        """Remove one key; True if it existed."""

    @abc.abstractmethod
    async def items(self, user: str | None) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def clear(self, user: str | None) -> None:
        """Remove every key of the user in this store."""

    @abc.abstractmethod
    async def set_many(self, user: str | None, values: Mapping[str, Any]) -> None:
        """Set several keys in one transaction; a ``None`` value deletes its key."""

    @abc.abstractmethod
    async def users(self) -> list[str]:
        """Users with at least one key in this store, sorted."""


class ArchiveStore(abc.ABC):
    """Append-only items per user, ordered by ``when`` then by insertion order.

    Query semantics (both backends):

    * ``with_jid`` is an exact string match (callers normalise, e.g. to a bare JID);
    * ``start``/``end`` are inclusive bounds on ``when``;
    * ``after``/``before`` are item keys, exclusive; an unknown key raises
      :class:`ItemNotFound`;
    * results come in ascending order, or descending with ``reverse=True``;
      ``limit`` keeps the first ``limit`` items *in that order* — so "the last
      10 items before X" is ``query(before=X, limit=10, reverse=True)``;
    * ``text`` (full-text search, MAM's ``{urn:xmpp:fulltext:0}fulltext``, as
      Prosody's SQL storage does it) keeps the items whose stored value contains
      that string, ASCII letters compared case-insensitively (PostgreSQL folds the
      case of other letters too, SQLite and memory do not); the value is
      compared in its JSON text, so an XML string is searched as written (a caller
      searching the text of an element escapes ``&`` and ``<`` as XML does).
      A search filters the user's items (an index range); on PostgreSQL an admin
      may add a trigram index (the admin guide says how, and what it costs).
    """

    host: str
    store: str

    @abc.abstractmethod
    async def append(self, user: str | None, value: Any, *, with_jid: str | None = None,
                     when: float | None = None, key: str | None = None) -> str:
        """Append an item and return its key (a new random one if none is given).

        Appending with the key of an existing item of the same user replaces that
        item (it moves to its new ``when``/insertion position).
        """

    @abc.abstractmethod
    async def append_many(self, user: str | None,
                          items: Iterable[tuple[str, float | None, str | None, Any]]) -> int:
        """Append ``(key, when, with_jid, value)`` items in one transaction; return how
        many were given.

        The same as ``append(user, value, with_jid=with_jid, when=when, key=key)`` for
        each item in order (an item whose key the archive or an earlier item of
        ``items`` has replaces that one; ``when`` ``None`` is now), but atomic: when
        the coroutine returns every item is durable, and when it raises (a value
        that is not JSON, the database refusing a row) none is written. A key is
        required (the caller bulk-loads items it has keys for). Safe to repeat with
        the same items (PostgreSQL retries it after a lost connection): a repeat
        changes only the insertion order, moving the items after the others.
        Meant for bulk loads (``xmppctl storage migrate``, imports), a few thousand
        items per call.
        """

    @abc.abstractmethod
    async def query(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    after: str | None = None, before: str | None = None,
                    limit: int | None = None, reverse: bool = False,
                    text: str | None = None) -> list[ArchiveItem]: ...

    @abc.abstractmethod
    async def count(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    text: str | None = None) -> int: ...

    @abc.abstractmethod
    async def get(self, user: str | None, key: str) -> ArchiveItem | None: ...

    @abc.abstractmethod
    async def delete(self, user: str | None, *, key: str | None = None,
                     before_when: float | None = None) -> int:
        """Delete items and return how many went.

        ``key`` deletes that item; ``before_when`` deletes items with ``when`` strictly
        lower; both given means both conditions; neither means all the user's items.
        """

    @abc.abstractmethod
    async def users(self) -> list[str]:
        """Users with at least one item in this archive, sorted."""


class Storage(abc.ABC):
    """A storage backend: hands out stores, deletes users, closes."""

    kind: str

    @abc.abstractmethod
    def keyval(self, host: str, store: str) -> KeyValStore: ...

    @abc.abstractmethod
    def map(self, host: str, store: str) -> MapStore: ...

    @abc.abstractmethod
    def archive(self, host: str, store: str) -> ArchiveStore: ...

    @abc.abstractmethod
    async def stores(self) -> list[tuple[str, str, str]]:
        """Every store holding data, as sorted ``(host, kind, store)`` tuples, ``kind``
        being ``"keyval"``, ``"map"`` or ``"archive"``: what ``xmppctl storage
        migrate`` copies. A store whose last value was deleted may be left out."""

    @abc.abstractmethod
    async def delete_user(self, host: str, user: str | None) -> None:
        """Remove every store of every kind for that user on that host."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Wait for pending writes, then release the backend. Idempotent."""


def check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError("limit must be a non-negative int or None")
    return limit


def search_pattern(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) for stored values containing
    ``text``: the string as JSON writes it inside a value, ``%``/``_`` escaped."""
    check_name("text", text)
    inner = encode(text)[1:-1]
    return "%" + inner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains_text(stored: str, text: str) -> bool:
    """What ``search_pattern`` matches, for a backend without SQL: ASCII letters
    compared case-insensitively."""
    return _ascii_lower(encode(text)[1:-1]) in _ascii_lower(stored)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _ascii_lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


def check_key(key: str) -> str:
    return check_name("key", key)


def archive_rows(items: Iterable[tuple[str, float | None, str | None, Any]],
                 ) -> list[tuple[str, float, str | None, str]]:
    """``append_many``'s items checked and encoded, as ``(key, when, with_jid,
    encoded value)``, before anything is written (a bad one writes nothing)."""
    now = time.time()
    rows = []
    for item in items:
        try:
            key, when, with_jid, value = item
        except (TypeError, ValueError):
            raise TypeError("an archive item is (key, when, with_jid, value)") from None
        check_key(key)
        if with_jid is not None:
            check_name("with_jid", with_jid)
        rows.append((key, check_when(when, now), with_jid, encode(value)))
    return rows


def last_of_each_key(rows: list[tuple]) -> list[tuple]:
    """``rows`` (key first) without those a later row of the same key replaces: what
    appending them one by one leaves, in the same order."""
    last = {row[0]: i for i, row in enumerate(rows)}
    if len(last) == len(rows):
        return rows
    return [row for i, row in enumerate(rows) if last[row[0]] == i]


def check_keys(keys: Iterable[str]) -> None:
    for k in keys:
        check_key(k)

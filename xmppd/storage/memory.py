"""In-memory storage: the same semantics as SQLite, in dicts. For unit tests.

Values are kept JSON-encoded, exactly as the SQLite backend keeps them, so a
test against this backend sees the same copies and the same encoding errors.
Nothing survives ``close()``.
"""
from __future__ import annotations

import bisect
import itertools
import secrets
import time
from typing import Any, Iterable, Mapping

from .api import (
    ArchiveItem, ArchiveStore, ItemNotFound, KeyValStore, MapStore, Storage, StorageError,
    archive_rows, check_key, check_keys, check_limit, check_name, check_when, contains_text,
    decode, encode, norm_user,
)


class _Item:
    __slots__ = ("sort", "key", "when", "with_jid", "value")

    def __init__(self, sort: tuple[float, int], key: str, when: float,
                 with_jid: str | None, value: str) -> None:
        self.sort = sort
        self.key = key
        self.when = when
        self.with_jid = with_jid
        self.value = value

    def public(self) -> ArchiveItem:
        return ArchiveItem(self.key, self.when, self.with_jid, decode(self.value))


class _Archive:
    """One user's archive: items sorted by (when, seq) plus a key index."""

    __slots__ = ("items", "sorts", "by_key")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.sorts: list[tuple[float, int]] = []
        self.by_key: dict[str, _Item] = {}

    def remove(self, item: _Item) -> None:
        i = bisect.bisect_left(self.sorts, item.sort)
        del self.items[i]
        del self.sorts[i]
        del self.by_key[item.key]

    def add(self, item: _Item) -> None:
        i = bisect.bisect_right(self.sorts, item.sort)
        self.items.insert(i, item)
        self.sorts.insert(i, item.sort)
        self.by_key[item.key] = item


class MemoryStorage(Storage):
    kind = "memory"

    def __init__(self) -> None:
        # (host, store) -> user -> encoded value
        self._kv: dict[tuple[str, str], dict[str, str]] = {}
        # (host, store) -> user -> key -> encoded value
        self._map: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
        # (host, store) -> user -> _Archive
        self._arc: dict[tuple[str, str], dict[str, _Archive]] = {}
        self._seq = itertools.count(1)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")

    def keyval(self, host: str, store: str) -> KeyValStore:
        return _KeyVal(self, check_name("host", host), check_name("store", store))

    def map(self, host: str, store: str) -> MapStore:
        return _Map(self, check_name("host", host), check_name("store", store))

    def archive(self, host: str, store: str) -> ArchiveStore:
        return _ArchiveStore(self, check_name("host", host), check_name("store", store))

    async def stores(self) -> list[tuple[str, str, str]]:
        self._check_open()
        return sorted((host, kind, store)
                      for kind, table in (("keyval", self._kv), ("map", self._map),
                                          ("archive", self._arc))
                      for (host, store), users in table.items() if users)

    async def delete_user(self, host: str, user: str | None) -> None:
        self._check_open()
        user = norm_user(user)
        for table in (self._kv, self._map, self._arc):
            for (h, _), users in table.items():
                if h == host:
                    users.pop(user, None)

    async def close(self) -> None:
        self._closed = True


class _KeyVal(KeyValStore):
    def __init__(self, s: MemoryStorage, host: str, store: str) -> None:
        self._s, self.host, self.store = s, host, store

    def _data(self) -> dict[str, str]:
        self._s._check_open()
        return self._s._kv.setdefault((self.host, self.store), {})

    async def get(self, user: str | None) -> Any | None:
        text = self._data().get(norm_user(user))
        return None if text is None else decode(text)

    async def set(self, user: str | None, value: Any) -> None:
        user = norm_user(user)
        if value is None:
            self._data().pop(user, None)
            return
        text = encode(value)
        self._data()[user] = text

    async def delete(self, user: str | None) -> bool:
        return self._data().pop(norm_user(user), None) is not None

    async def users(self) -> list[str]:
        return sorted(self._data())


class _Map(MapStore):
    def __init__(self, s: MemoryStorage, host: str, store: str) -> None:
        self._s, self.host, self.store = s, host, store

    def _data(self) -> dict[str, dict[str, str]]:
        self._s._check_open()
        return self._s._map.setdefault((self.host, self.store), {})

    async def get(self, user: str | None, key: str) -> Any | None:
        check_key(key)
        text = self._data().get(norm_user(user), {}).get(key)
        return None if text is None else decode(text)

    async def set(self, user: str | None, key: str, value: Any) -> None:
        await self.set_many(user, {key: value})

    async def delete(self, user: str | None, key: str) -> bool:
        check_key(key)
        data = self._data()
        user = norm_user(user)
        keys = data.get(user)
        if keys is None or key not in keys:
            return False
        del keys[key]
        if not keys:
            del data[user]
        return True

    async def items(self, user: str | None) -> dict[str, Any]:
        return {k: decode(v) for k, v in self._data().get(norm_user(user), {}).items()}

    async def clear(self, user: str | None) -> None:
        self._data().pop(norm_user(user), None)

    async def set_many(self, user: str | None, values: Mapping[str, Any]) -> None:
        user = norm_user(user)
        check_keys(values)
        # encode everything first: a bad value changes nothing (like a rolled-back transaction)
        encoded = {k: (None if v is None else encode(v)) for k, v in values.items()}
        data = self._data()
        keys = data.setdefault(user, {})
        for k, text in encoded.items():
            if text is None:
                keys.pop(k, None)
            else:
                keys[k] = text
        if not keys:
            del data[user]

    async def users(self) -> list[str]:
        return sorted(self._data())


class _ArchiveStore(ArchiveStore):
    def __init__(self, s: MemoryStorage, host: str, store: str) -> None:
        self._s, self.host, self.store = s, host, store

    def _users(self) -> dict[str, _Archive]:
        self._s._check_open()
        return self._s._arc.setdefault((self.host, self.store), {})

    async def append(self, user: str | None, value: Any, *, with_jid: str | None = None,
                     when: float | None = None, key: str | None = None) -> str:
        user = norm_user(user)
        when = check_when(when, time.time())
        if with_jid is not None:
            check_name("with_jid", with_jid)
        key = secrets.token_urlsafe(12) if key is None else check_key(key)
        text = encode(value)
        arc = self._users().setdefault(user, _Archive())
        old = arc.by_key.get(key)
        if old is not None:
            arc.remove(old)
        arc.add(_Item((when, next(self._s._seq)), key, when, with_jid, text))
        return key

    async def append_many(self, user: str | None,
                          items: Iterable[tuple[str, float | None, str | None, Any]]) -> int:
        user = norm_user(user)
        rows = archive_rows(items)   # everything checked first: a bad item adds nothing
        if not rows:
            return 0
        arc = self._users().setdefault(user, _Archive())
        for key, when, with_jid, text in rows:
            old = arc.by_key.get(key)
            if old is not None:
                arc.remove(old)
            arc.add(_Item((when, next(self._s._seq)), key, when, with_jid, text))
        return len(rows)

    def _select(self, user: str | None, with_jid: str | None, start: float | None,
                end: float | None, text: str | None = None) -> list[_Item]:
        arc = self._users().get(norm_user(user))
        if arc is None:
            return []
        return [it for it in arc.items
                if (with_jid is None or it.with_jid == with_jid)
                and (start is None or it.when >= start)
                and (end is None or it.when <= end)
                and (text is None or contains_text(it.value, text))]

    async def query(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    after: str | None = None, before: str | None = None,
                    limit: int | None = None, reverse: bool = False,
                    text: str | None = None) -> list[ArchiveItem]:
        limit = check_limit(limit)
        if text is not None:
            check_name("text", text)
        arc = self._users().get(norm_user(user))
        bounds = []
        for k in (after, before):
            if k is None:
                bounds.append(None)
                continue
            it = arc.by_key.get(k) if arc is not None else None
            if it is None:
                raise ItemNotFound(f"no archive item with key {k!r}")
            bounds.append(it.sort)
        lo, hi = bounds
        items = [it for it in self._select(user, with_jid, start, end, text)
                 if (lo is None or it.sort > lo) and (hi is None or it.sort < hi)]
        if reverse:
            items.reverse()
        if limit is not None:
            items = items[:limit]
        return [it.public() for it in items]

    async def count(self, user: str | None, *, with_jid: str | None = None,
                    start: float | None = None, end: float | None = None,
                    text: str | None = None) -> int:
        return len(self._select(user, with_jid, start, end, text))

    async def get(self, user: str | None, key: str) -> ArchiveItem | None:
        check_key(key)
        arc = self._users().get(norm_user(user))
        it = arc.by_key.get(key) if arc is not None else None
        return None if it is None else it.public()

    async def delete(self, user: str | None, *, key: str | None = None,
                     before_when: float | None = None) -> int:
        users = self._users()
        user = norm_user(user)
        arc = users.get(user)
        if arc is None:
            return 0
        doomed = [it for it in arc.items
                  if (key is None or it.key == key)
                  and (before_when is None or it.when < before_when)]
        for it in doomed:
            arc.remove(it)
        if not arc.items:
            del users[user]
        return len(doomed)

    async def users(self) -> list[str]:
        return sorted(self._users())

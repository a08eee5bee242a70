"""The storage API, run against every backend (memory, SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from xmppd.storage import (
    ArchiveItem, ItemNotFound, Storage, StorageError, open_storage,
)
from xmppd.storage import sqlite as sqlite_backend

HOST = "falcot.com"
OTHER = "debian.org"


POSTGRES = pytest.param("postgres", marks=pytest.mark.external("postgres"))


@pytest.fixture(params=["memory", "sqlite", POSTGRES])
async def storage(request, tmp_path):
    if request.param == "memory":
        s = await open_storage("memory")
    elif request.param == "postgres":
        s = await open_storage("postgres", **request.getfixturevalue("pg_database"))
    else:
        s = await open_storage("sqlite", path=tmp_path / "var" / "xmppd.sqlite")
    assert s.kind == request.param
    assert isinstance(s, Storage)
    yield s
    await s.close()


# ------------------------------------------------------------------ keyval
async def test_keyval_roundtrip(storage):
    kv = storage.keyval(HOST, "accounts")
    assert await kv.get("joe") is None
    value = {"password": "s3cr3t", "n": 1, "f": 1.5, "ok": True, "l": [1, "a", None], "é": "ü"}
    await kv.set("joe", value)
    assert await kv.get("joe") == value
    await kv.set("joe", {"password": "new"})
    assert await kv.get("joe") == {"password": "new"}
    assert await kv.users() == ["joe"]
    assert await kv.delete("joe") is True
    assert await kv.delete("joe") is False
    assert await kv.get("joe") is None
    assert await kv.users() == []


async def test_keyval_scalar_values_and_none_deletes(storage):
    kv = storage.keyval(HOST, "misc")
    for v in ("text", 0, 3, 2.5, False, [], {}):
        await kv.set("u", v)
        got = await kv.get("u")
        assert got == v and type(got) is type(v)
    await kv.set("u", None)
    assert await kv.get("u") is None
    assert await kv.users() == []


async def test_keyval_returns_copies(storage):
    kv = storage.keyval(HOST, "accounts")
    value = {"groups": ["a"]}
    await kv.set("joe", value)
    value["groups"].append("b")
    got = await kv.get("joe")
    assert got == {"groups": ["a"]}
    got["groups"].append("c")
    assert await kv.get("joe") == {"groups": ["a"]}


async def test_keyval_rejects_non_json(storage):
    kv = storage.keyval(HOST, "accounts")
    with pytest.raises(StorageError):
        await kv.set("joe", {"x": object()})
    with pytest.raises(StorageError):
        await kv.set("joe", float("nan"))
    assert await kv.get("joe") is None


async def test_keyval_isolated_by_host_store_and_user(storage):
    await storage.keyval(HOST, "accounts").set("joe", 1)
    await storage.keyval(OTHER, "accounts").set("joe", 2)
    await storage.keyval(HOST, "vcard").set("joe", 3)
    await storage.keyval(HOST, "accounts").set("raphael", 4)
    assert await storage.keyval(HOST, "accounts").get("joe") == 1
    assert await storage.keyval(OTHER, "accounts").get("joe") == 2
    assert await storage.keyval(HOST, "vcard").get("joe") == 3
    assert await storage.keyval(HOST, "accounts").users() == ["joe", "raphael"]
    assert await storage.keyval(OTHER, "accounts").users() == ["joe"]


async def test_host_wide_user_is_empty_string(storage):
    kv = storage.keyval(HOST, "server")
    await kv.set(None, {"motd": "hi"})
    assert await kv.get("") == {"motd": "hi"}
    assert await kv.get(None) == {"motd": "hi"}
    assert await kv.users() == [""]
    m = storage.map(HOST, "server_map")
    await m.set(None, "k", 1)
    assert await m.items("") == {"k": 1}


# ------------------------------------------------------------------ map
async def test_map_roundtrip(storage):
    m = storage.map(HOST, "roster")
    assert await m.get("joe", "rhertzog@falcot.com") is None
    assert await m.items("joe") == {}
    await m.set("joe", "rhertzog@falcot.com", {"subscription": "both", "groups": ["Admins"]})
    await m.set("joe", "lolando@falcot.com", {"subscription": "to"})
    assert await m.get("joe", "rhertzog@falcot.com") == {"subscription": "both",
                                                         "groups": ["Admins"]}
    assert await m.items("joe") == {
        "rhertzog@falcot.com": {"subscription": "both", "groups": ["Admins"]},
        "lolando@falcot.com": {"subscription": "to"},
    }
    await m.set("joe", "lolando@falcot.com", {"subscription": "none"})
    assert await m.get("joe", "lolando@falcot.com") == {"subscription": "none"}
    assert await m.delete("joe", "lolando@falcot.com") is True
    assert await m.delete("joe", "lolando@falcot.com") is False
    assert list(await m.items("joe")) == ["rhertzog@falcot.com"]
    await m.set("joe", "rhertzog@falcot.com", None)
    assert await m.items("joe") == {}


async def test_map_clear_and_users(storage):
    m = storage.map(HOST, "roster")
    await m.set("joe", "a", 1)
    await m.set("joe", "b", 2)
    await m.set("raphael", "a", 3)
    await storage.map(HOST, "private").set("joe", "x", 4)
    assert await m.users() == ["joe", "raphael"]
    await m.clear("joe")
    assert await m.items("joe") == {}
    assert await m.items("raphael") == {"a": 3}
    assert await storage.map(HOST, "private").items("joe") == {"x": 4}
    assert await m.users() == ["raphael"]


async def test_map_set_many(storage):
    m = storage.map(HOST, "roster")
    await m.set_many("joe", {"a": 1, "b": {"x": 2}, "c": "three"})
    assert await m.items("joe") == {"a": 1, "b": {"x": 2}, "c": "three"}
    await m.set_many("joe", {"a": None, "b": 20, "d": 4, "zz": None})
    assert await m.items("joe") == {"b": 20, "c": "three", "d": 4}
    await m.set_many("joe", {})
    assert len(await m.items("joe")) == 3


async def test_map_set_many_is_all_or_nothing(storage):
    m = storage.map(HOST, "roster")
    await m.set("joe", "a", 1)
    with pytest.raises(StorageError):
        await m.set_many("joe", {"a": None, "b": 2, "c": {1, 2}})
    assert await m.items("joe") == {"a": 1}


async def test_concurrent_writes(storage):
    m = storage.map(HOST, "roster")
    kv = storage.keyval(HOST, "accounts")

    async def one(i):
        if i % 3 == 0:
            await m.set_many("joe", {f"k{i}": i, f"k{i}b": i})
        elif i % 3 == 1:
            await m.set("joe", f"k{i}", i)
        else:
            await kv.set(f"u{i}", i)

    await asyncio.gather(*(one(i) for i in range(60)))
    items = await m.items("joe")
    assert len(items) == 20 * 2 + 20
    assert len(await kv.users()) == 20


async def test_cancelled_transaction_does_not_corrupt(storage):
    m = storage.map(HOST, "roster")
    tasks = [asyncio.create_task(m.set_many("joe", {f"k{i}": i, f"j{i}": i}))
             for i in range(10)]
    await asyncio.sleep(0)
    for t in tasks[::2]:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await m.set("joe", "after", 1)
    items = await m.items("joe")
    assert items["after"] == 1
    for i in range(10):  # each set_many went in whole or not at all
        assert (f"k{i}" in items) == (f"j{i}" in items)


# ------------------------------------------------------------------ archive
async def fill(a, user="joe", n=10):
    """n items at t=1000+i, alternating with_jid a@x / b@x; returns their keys."""
    keys = []
    for i in range(n):
        keys.append(await a.append(user, {"body": f"m{i}"},
                                   with_jid="a@x" if i % 2 == 0 else "b@x", when=1000.0 + i))
    return keys


def bodies(items):
    return [it.value["body"] for it in items]


async def test_archive_append_get(storage):
    a = storage.archive(HOST, "archive")
    key = await a.append("joe", "<message/>", with_jid="raphael@falcot.com", when=12.5)
    assert isinstance(key, str) and key
    item = await a.get("joe", key)
    assert item == ArchiveItem(key, 12.5, "raphael@falcot.com", "<message/>")
    assert await a.get("joe", "nope") is None
    assert await a.get("raphael", key) is None
    k2 = await a.append("joe", {"x": 1})
    assert k2 != key
    item2 = await a.get("joe", k2)
    assert item2.with_jid is None
    assert abs(item2.when - time.time()) < 60
    assert await a.append("joe", 1, key="mykey", when=1.0) == "mykey"


async def test_archive_explicit_key_replaces(storage):
    a = storage.archive(HOST, "archive")
    await a.append("joe", "old", key="k", when=1.0)
    await a.append("joe", "other", when=2.0)
    await a.append("joe", "new", key="k", when=3.0)
    assert [it.value for it in await a.query("joe")] == ["other", "new"]
    assert await a.count("joe") == 2
    # the same key for another user is a different item
    await a.append("raphael", "r", key="k", when=1.0)
    assert (await a.get("joe", "k")).value == "new"


async def test_archive_order_time_then_insertion(storage):
    a = storage.archive(HOST, "archive")
    await a.append("joe", {"body": "late"}, when=50.0)
    await a.append("joe", {"body": "early"}, when=10.0)
    await a.append("joe", {"body": "tie1"}, when=30.0)
    await a.append("joe", {"body": "tie2"}, when=30.0)
    await a.append("joe", {"body": "tie3"}, when=30.0)
    assert bodies(await a.query("joe")) == ["early", "tie1", "tie2", "tie3", "late"]
    assert bodies(await a.query("joe", reverse=True)) == ["late", "tie3", "tie2", "tie1",
                                                          "early"]


async def test_archive_filters_and_count(storage):
    a = storage.archive(HOST, "archive")
    await fill(a)
    await fill(a, user="raphael", n=3)
    assert bodies(await a.query("joe")) == [f"m{i}" for i in range(10)]
    assert bodies(await a.query("joe", with_jid="b@x")) == ["m1", "m3", "m5", "m7", "m9"]
    assert bodies(await a.query("joe", start=1003, end=1006)) == ["m3", "m4", "m5", "m6"]
    assert bodies(await a.query("joe", with_jid="a@x", start=1003)) == ["m4", "m6", "m8"]
    assert await a.count("joe") == 10
    assert await a.count("joe", with_jid="a@x") == 5
    assert await a.count("joe", start=1003, end=1006) == 4
    assert await a.count("joe", with_jid="b@x", end=1004) == 2
    assert await a.count("raphael") == 3
    assert await a.count("nobody") == 0
    assert await a.query("nobody") == []
    assert await storage.archive(HOST, "muc_log").count("joe") == 0
    assert await storage.archive(OTHER, "archive").count("joe") == 0


async def test_archive_paging(storage):
    a = storage.archive(HOST, "archive")
    keys = await fill(a)
    assert bodies(await a.query("joe", limit=3)) == ["m0", "m1", "m2"]
    assert bodies(await a.query("joe", limit=0)) == []
    assert bodies(await a.query("joe", after=keys[2], limit=3)) == ["m3", "m4", "m5"]
    assert bodies(await a.query("joe", after=keys[8])) == ["m9"]
    assert bodies(await a.query("joe", after=keys[9])) == []
    assert bodies(await a.query("joe", before=keys[2])) == ["m0", "m1"]
    # "the last 3 before m7", as MAM's <before/> wants it
    assert bodies(await a.query("joe", before=keys[7], limit=3, reverse=True)) == [
        "m6", "m5", "m4"]
    assert bodies(await a.query("joe", after=keys[2], before=keys[6])) == ["m3", "m4", "m5"]
    assert bodies(await a.query("joe", reverse=True, limit=2)) == ["m9", "m8"]
    assert bodies(await a.query("joe", with_jid="a@x", after=keys[3], limit=2)) == ["m4", "m6"]
    assert bodies(await a.query("joe", start=1002, end=1008, after=keys[5],
                                reverse=True)) == ["m8", "m7", "m6"]
    # page through everything, 4 at a time
    seen, after = [], None
    while True:
        page = await a.query("joe", after=after, limit=4)
        if not page:
            break
        seen += bodies(page)
        after = page[-1].key
    assert seen == [f"m{i}" for i in range(10)]


async def test_archive_paging_ties_on_time(storage):
    a = storage.archive(HOST, "archive")
    keys = [await a.append("joe", {"body": f"m{i}"}, when=5.0) for i in range(6)]
    assert bodies(await a.query("joe", after=keys[1], limit=2)) == ["m2", "m3"]
    assert bodies(await a.query("joe", before=keys[4], limit=2, reverse=True)) == ["m3", "m2"]


async def test_archive_unknown_key(storage):
    a = storage.archive(HOST, "archive")
    keys = await fill(a, n=2)
    with pytest.raises(ItemNotFound):
        await a.query("joe", after="no-such-key")
    with pytest.raises(ItemNotFound):
        await a.query("joe", before="no-such-key")
    with pytest.raises(StorageError):  # ItemNotFound is a StorageError
        await a.query("raphael", after=keys[0])  # another user's key is unknown here
    with pytest.raises(ItemNotFound):
        await storage.archive(HOST, "muc_log").query("joe", after=keys[0])


async def test_archive_delete(storage):
    a = storage.archive(HOST, "archive")
    keys = await fill(a)
    await fill(a, user="raphael", n=4)
    assert await a.delete("joe", key=keys[0]) == 1
    assert await a.delete("joe", key=keys[0]) == 0
    assert await a.get("joe", keys[0]) is None
    assert await a.delete("joe", before_when=1004) == 3  # m1, m2, m3
    assert bodies(await a.query("joe")) == ["m4", "m5", "m6", "m7", "m8", "m9"]
    assert await a.delete("joe", key=keys[9], before_when=1005) == 0
    assert await a.delete("joe") == 6
    assert await a.query("joe") == []
    assert await a.count("raphael") == 4
    assert await a.delete("nobody") == 0


async def test_archive_append_many_order_and_fields(storage):
    a = storage.archive(HOST, "archive")
    assert await a.append_many("joe", []) == 0
    assert await a.append_many("joe", iter(())) == 0
    assert await a.users() == []
    await a.append("joe", {"body": "before"}, when=5.0, key="b")
    items = [(f"k{i}", 5.0 if i < 3 else 4.0, "a@x" if i % 2 else None, {"body": f"m{i}"})
             for i in range(5)]
    assert await a.append_many("joe", (it for it in items)) == 5
    # time then insertion order, the batch's order among equal times, after "before"
    assert [it.key for it in await a.query("joe")] == ["k3", "k4", "b", "k0", "k1", "k2"]
    assert await a.get("joe", "k1") == ArchiveItem("k1", 5.0, "a@x", {"body": "m1"})
    assert await a.get("joe", "k4") == ArchiveItem("k4", 4.0, None, {"body": "m4"})
    assert bodies(await a.query("joe", with_jid="a@x")) == ["m3", "m1"]
    # when None is now; another user, host and store are apart
    await a.append_many(None, [("h", None, None, "host-wide")])
    assert abs((await a.get("", "h")).when - time.time()) < 60
    assert await a.users() == ["", "joe"]
    assert await storage.archive(OTHER, "archive").count("joe") == 0
    assert await storage.archive(HOST, "muc_log").count("joe") == 0


async def test_archive_append_many_replaces_existing_keys(storage):
    a = storage.archive(HOST, "archive")
    for i in range(3):
        await a.append("joe", f"old{i}", key=f"k{i}", when=1.0)
    # k0 replaced (moves after k1, k2), k9 given twice: its last item counts
    n = await a.append_many("joe", [("k9", 1.0, None, "first"), ("k0", 1.0, "x@y", "new0"),
                                    ("k8", 1.0, None, "k8"), ("k9", 1.0, None, "second")])
    assert n == 4
    assert [(it.key, it.value) for it in await a.query("joe")] == [
        ("k1", "old1"), ("k2", "old2"), ("k0", "new0"), ("k8", "k8"), ("k9", "second")]
    assert (await a.get("joe", "k0")).with_jid == "x@y"
    assert await a.count("joe") == 5
    # the same batch again changes nothing but the insertion order (a retry)
    await a.append("joe", "last", key="z", when=1.0)
    await a.append_many("joe", [("k0", 1.0, "x@y", "new0"), ("k8", 1.0, None, "k8")])
    assert [it.key for it in await a.query("joe")] == ["k1", "k2", "k9", "z", "k0", "k8"]


async def test_archive_append_many_is_atomic(storage):
    a = storage.archive(HOST, "archive")
    await a.append("joe", "kept", key="k0", when=1.0)
    good = [(f"k{i}", 2.0, None, f"m{i}") for i in range(4)]
    # a value that is not JSON, last in the batch: nothing of the batch is written
    with pytest.raises(StorageError):
        await a.append_many("joe", good + [("bad", 3.0, None, {"x": object()})])
    with pytest.raises(TypeError):
        await a.append_many("joe", good + [(None, 3.0, None, "no key")])
    with pytest.raises(TypeError):
        await a.append_many("joe", good + [("k9", 3.0, None)])
    assert [(it.key, it.value) for it in await a.query("joe")] == [("k0", "kept")]
    if storage.kind == "memory":
        return
    # the database refusing a row in the middle of the batch rolls back the rows before it
    if storage.kind == "sqlite":
        async def trigger(conn):
            await conn.execute(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.archive "
                "WHEN NEW.value = '\"refused\"' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        await storage.transaction(trigger)
        bad = ("k5", 2.0, None, "refused")
    else:   # PostgreSQL's text cannot hold NUL
        bad = ("k\x00", 2.0, None, "m")
    with pytest.raises(StorageError):
        await a.append_many("joe", good[:2] + [bad] + good[2:])
    assert [(it.key, it.value) for it in await a.query("joe")] == [("k0", "kept")]
    assert await a.append_many("joe", good) == 4
    assert await a.count("joe") == 4


async def test_delete_user(storage):
    for host in (HOST, OTHER):
        for user in ("joe", "raphael"):
            await storage.keyval(host, "accounts").set(user, {"u": user})
            await storage.keyval(host, "vcard").set(user, "<vCard/>")
            await storage.map(host, "roster").set(user, "x@y", {"s": "both"})
            await storage.map(host, "private").set(user, "ns", "<x/>")
            await storage.archive(host, "archive").append(user, "m")
            await storage.archive(host, "muc_log").append(user, "m")
    await storage.delete_user(HOST, "joe")
    for store in ("accounts", "vcard"):
        assert await storage.keyval(HOST, store).get("joe") is None
        assert await storage.keyval(HOST, store).get("raphael") is not None
        assert await storage.keyval(OTHER, store).get("joe") is not None
    for store in ("roster", "private"):
        assert await storage.map(HOST, store).items("joe") == {}
        assert await storage.map(HOST, store).items("raphael") != {}
        assert await storage.map(OTHER, store).items("joe") != {}
    for store in ("archive", "muc_log"):
        assert await storage.archive(HOST, store).count("joe") == 0
        assert await storage.archive(HOST, store).count("raphael") == 1
        assert await storage.archive(OTHER, store).count("joe") == 1
    await storage.delete_user(HOST, "nobody")  # no error


async def test_enumeration(storage):
    assert await storage.stores() == []
    await storage.keyval(HOST, "accounts").set("joe", 1)
    await storage.keyval(HOST, "accounts").set("", 2)
    await storage.keyval(OTHER, "vcard").set("joe", 1)
    await storage.map(HOST, "roster").set("raphael", "joe@x", {})
    await storage.map(HOST, "roster").set_many("joe", {"a": 1, "b": 2})
    a = storage.archive(HOST, "archive")
    for user in ("zoe", "joe", "é", "joe", ""):
        await a.append(user, {"x": 1})
    await storage.archive(OTHER, "muc_log").append("room", "m")
    assert await storage.stores() == [
        (OTHER, "archive", "muc_log"), (OTHER, "keyval", "vcard"),
        (HOST, "archive", "archive"), (HOST, "keyval", "accounts"), (HOST, "map", "roster")]
    assert await a.users() == ["", "joe", "zoe", "é"]
    assert await storage.map(HOST, "roster").users() == ["joe", "raphael"]
    assert await storage.archive(HOST, "muc_log").users() == []
    await a.delete("zoe")
    assert await a.users() == ["", "joe", "é"]


async def test_closed_storage_refuses(storage):
    await storage.close()
    with pytest.raises(StorageError):
        await storage.keyval(HOST, "accounts").get("joe")
    await storage.close()  # idempotent


async def test_open_storage_errors(tmp_path):
    with pytest.raises(StorageError, match="unknown storage kind"):
        await open_storage("oracle")
    with pytest.raises(StorageError, match="path"):
        await open_storage("sqlite")
    with pytest.raises(StorageError, match="bogus"):
        await open_storage("memory", bogus=1)
    with pytest.raises(StorageError, match="synchronous"):
        await open_storage("sqlite", path=tmp_path / "x.sqlite", synchronous="sometimes")


# ------------------------------------------------------------------ sqlite only
async def test_sqlite_reopen_persists(tmp_path):
    path = tmp_path / "deep" / "er" / "xmppd.sqlite"
    s = await open_storage("sqlite", path=str(path))
    await s.keyval(HOST, "accounts").set("joe", {"p": 1})
    await s.map(HOST, "roster").set_many("joe", {"a": 1, "b": 2})
    keys = await fill(s.archive(HOST, "archive"), n=3)
    await s.close()
    assert path.exists()

    s = await open_storage("sqlite", path=path, synchronous="full")
    assert await s.keyval(HOST, "accounts").get("joe") == {"p": 1}
    assert await s.map(HOST, "roster").items("joe") == {"a": 1, "b": 2}
    items = await s.archive(HOST, "archive").query("joe", after=keys[0])
    assert bodies(items) == ["m1", "m2"]
    await s.close()


async def test_sqlite_pragmas(tmp_path):
    s = await open_storage("sqlite", path=tmp_path / "x.sqlite")
    try:
        assert (await s.fetchall("PRAGMA journal_mode"))[0][0] == "wal"
        assert (await s.fetchall("PRAGMA foreign_keys"))[0][0] == 1
        assert (await s.fetchall("PRAGMA user_version"))[0][0] == sqlite_backend.SCHEMA_VERSION
        # synchronous is per connection: check the writer's
        async with s._w.execute("PRAGMA synchronous") as cur:
            assert (await cur.fetchone())[0] == 1  # NORMAL
    finally:
        await s.close()
    s = await open_storage("sqlite", path=tmp_path / "x.sqlite", synchronous="full")
    try:
        async with s._w.execute("PRAGMA synchronous") as cur:
            assert (await cur.fetchone())[0] == 2  # FULL
    finally:
        await s.close()


@pytest.mark.parametrize("tune,level", [(None, 1), ("normal", 1), ("safe", 2), ("fast", 0),
                                       ("default", 2)])
async def test_sqlite_tune_sets_synchronous(tmp_path, tune, level):
    # the configuration's sqlite_tune (Prosody's option and names) decides the fsyncs
    from xmppd.config import parse_config_text
    from xmppd.core.server import open_configured_storage
    cfg = parse_config_text("" if tune is None else f'sqlite_tune = "{tune}"\n', filename="x.cfg.lua")
    s = await open_configured_storage(cfg, tmp_path)
    try:
        async with s._w.execute("PRAGMA synchronous") as cur:
            assert (await cur.fetchone())[0] == level
        assert (await s.fetchall("PRAGMA journal_mode"))[0][0] == "wal"
    finally:
        await s.close()


def test_sqlite_tune_unknown_value_is_a_config_error(tmp_path):
    from xmppd.config import ConfigError, parse_config_text
    from xmppd.core.server import open_configured_storage
    cfg = parse_config_text('data_path = "var"\nsqlite_tune = "paranoid"\n', filename="x.cfg.lua")
    with pytest.raises(ConfigError) as e:
        asyncio.run(open_configured_storage(cfg, tmp_path))
    assert str(e.value).startswith("x.cfg.lua:2:") and "safe" in str(e.value)


def _make_v1_database(path):
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in sqlite_backend.MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO keyval VALUES (?, ?, ?, ?)", (HOST, "accounts", "joe", '{"p":1}'))
    conn.execute('INSERT INTO archive (host, store, user, key, "when", with_jid, value) '
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (HOST, "archive", "joe", "k1", 1.0, "a@x", '"m"'))
    conn.close()


def _indexes(path):
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'archive'")}
    finally:
        conn.close()


async def test_sqlite_migrates_v1(tmp_path):
    path = tmp_path / "old.sqlite"
    _make_v1_database(path)
    assert "archive_with" not in _indexes(path)
    s = await open_storage("sqlite", path=path)
    try:
        assert (await s.fetchall("PRAGMA user_version"))[0][0] == sqlite_backend.SCHEMA_VERSION
        assert await s.keyval(HOST, "accounts").get("joe") == {"p": 1}
        assert (await s.archive(HOST, "archive").query("joe", with_jid="a@x"))[0].key == "k1"
    finally:
        await s.close()
    assert {"archive_when", "archive_with"} <= _indexes(path)


async def test_sqlite_refuses_newer_schema(tmp_path):
    path = tmp_path / "new.sqlite"
    s = await open_storage("sqlite", path=path)
    await s.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {sqlite_backend.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this xmppd supports"):
        await open_storage("sqlite", path=path)


async def test_sqlite_refuses_garbage_file(tmp_path):
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StorageError, match="garbage.sqlite"):
        await open_storage("sqlite", path=path)


async def test_sqlite_archive_queries_use_indexes(tmp_path):
    s = await open_storage("sqlite", path=tmp_path / "x.sqlite")
    a = s.archive(HOST, "archive")
    # a realistic spread so the planner's choice is the one it makes in production
    rows = [(HOST, "archive", f"u{i % 50}", f"k{i}", float(i), f"j{i % 7}@x", '"m"')
            for i in range(5000)]
    await s.transaction(lambda conn: conn.executemany(
        'INSERT INTO archive (host, store, user, key, "when", with_jid, value) '
        "VALUES (?, ?, ?, ?, ?, ?, ?)", rows))
    await s.write("ANALYZE")
    cases = [
        ({"with_jid": "j1@x", "start": 100.0, "limit": 50}, "archive_with"),
        ({"start": 100.0, "limit": 50}, "archive_when"),
        ({"after_pos": (100.0, 101), "limit": 50}, "archive_when"),
        ({"with_jid": "j1@x", "before_pos": (4000.0, 4001), "limit": 20, "reverse": True},
         "archive_with"),
        ({"start": 10.0, "end": 2000.0, "reverse": True}, "archive_when"),
    ]
    try:
        for kwargs, index in cases:
            sql, params = a.query_sql("u1", **kwargs)
            plan = " | ".join(r[3] for r in await s.fetchall("EXPLAIN QUERY PLAN " + sql,
                                                             tuple(params)))
            assert f"USING INDEX {index}" in plan, (kwargs, plan)
            assert "SCAN" not in plan and "TEMP B-TREE" not in plan, (kwargs, plan)
        items = await a.query("u1", with_jid="j1@x", start=100.0, limit=5)
        assert [it.when for it in items] == [351.0, 701.0, 1051.0, 1401.0, 1751.0]
    finally:
        await s.close()


async def test_closing_a_large_database_analyses_a_sample(tmp_path):
    # PRAGMA optimize at close may run ANALYZE; with a limit it samples the
    # indexes instead of reading millions of archived rows during shutdown
    s = await sqlite_backend.open_sqlite(tmp_path / "a.sqlite")
    try:
        async with s._w.execute("PRAGMA analysis_limit") as cur:
            assert (await cur.fetchone())[0] == sqlite_backend.ANALYSIS_LIMIT
    finally:
        await s.close()


async def test_archive_text_search(storage):
    """``text``: the items whose stored value contains the string, ASCII letters
    compared case-insensitively; LIKE's wildcards are plain characters."""
    a = storage.archive(HOST, "archive")
    bodies = ["Hello World", "hello there", "100% sure", "a_b", "nothing", "say \"hi\"",
              "back\\slash", "Ünïcode café"]
    for i, b in enumerate(bodies):
        await a.append("joe", {"xml": f"<message><body>{b}</body></message>"},
                       with_jid="a@x" if i % 2 == 0 else "b@x", when=1000.0 + i, key=f"k{i}")
    await a.append("raphael", {"xml": "<message><body>hello</body></message>"}, when=1.0)

    async def keys(text, **kw):
        return [it.key for it in await a.query("joe", text=text, **kw)]
    assert await keys("hello") == ["k0", "k1"]
    assert await keys("HELLO") == ["k0", "k1"]
    assert await a.count("joe", text="hello") == 2
    assert await a.count("joe", text="hello", with_jid="b@x") == 1
    assert await keys("hello", reverse=True, limit=1) == ["k1"]
    assert await keys("hello", after="k0") == ["k1"]
    assert await keys("hello", start=1000.5) == ["k1"]
    assert await keys("%") == ["k2"]
    assert await keys("_") == ["k3"]
    assert await keys('"hi"') == ["k5"]
    assert await keys("\\") == ["k6"]
    assert await keys("café") == ["k7"]
    assert await keys("zzz") == []
    assert await a.count("joe", text="zzz") == 0

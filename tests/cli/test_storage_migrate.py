"""``xmppctl storage migrate``: SQLite to PostgreSQL and back, every store of every
host, resumable, verified; against a real PostgreSQL (tests/pg.py). xmppctl runs in-process
(``run_ctl_here``: the same code without an interpreter's start-up each time)."""
from __future__ import annotations

import io

import pytest

from tests import pg
from xmppd.cli.storage_migrate import BATCH, PAGE, Progress
from xmppd.storage import open_storage

from .conftest import DOMAIN, ctl_async, run_ctl_here, write_tree

pytestmark = pytest.mark.external("postgres")

OTHER = "debian.org"   # data of a host the configuration no longer names is copied too


@pytest.fixture
def setup(tmp_path, cert_files, pg_database):
    cluster = pg.cluster()
    cfg = write_tree(tmp_path, cert_files, extra=cluster.sql_table(pg_database["database"]) + "\n")
    return cfg, tmp_path / "var" / "xmppd.sqlite", pg_database


async def fill(s) -> None:
    kv = s.keyval(DOMAIN, "vcard")
    await kv.set("joe", {"n": "Joe", "l": [1, 2.5, None, True]})
    await kv.set("", {"host": "wide"})
    await kv.set("é", "unicode")
    await s.keyval(OTHER, "accounts").set("raphael", {"pw": "x"})
    m = s.map(DOMAIN, "roster")
    await m.set_many("joe", {"a@x": {"s": "both"}, "b@x": {"s": "to"}})
    await m.set_many("raphael", {"joe@x": {}})
    a = s.archive(DOMAIN, "archive")
    # more than a page and more than a batch of the copy; times with ties
    assert 2500 > BATCH > PAGE
    await a.append_many("joe", [(f"k{i}", 1000.0 + i // 4, f"p{i % 3}@x", f"<m>{i}</m>")
                                for i in range(2500)])
    await a.append("", "host-wide", when=5.0, key="h")
    await s.archive(DOMAIN, "muc_log").append("room", {"body": "hi"}, with_jid="nick",
                                                when=7.5, key="r1")


async def dump(s) -> dict:
    out = {}
    for host, kind, store in await s.stores():
        if kind == "keyval":
            st = s.keyval(host, store)
            out[host, kind, store] = {u: await st.get(u) for u in await st.users()}
        elif kind == "map":
            st = s.map(host, store)
            out[host, kind, store] = {u: await st.items(u) for u in await st.users()}
        else:
            st = s.archive(host, store)
            out[host, kind, store] = {u: await st.query(u) for u in await st.users()}
    return out


async def test_migrate_to_postgres_and_back(setup):
    cfg, sqlite_path, pgopts = setup
    src = await open_storage("sqlite", path=sqlite_path)
    try:
        await fill(src)
        want = await dump(src)
    finally:
        await src.close()
    assert len(want) == 5

    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sql")
    assert r.returncode == 0, r.stderr
    assert "migrated from sqlite to sql" in r.stdout and "verified" in r.stdout
    assert f"{DOMAIN} archive (archive): 2501 item(s), sha256 " in r.stderr, r.stderr
    assert "identical" in r.stderr and "DIFFERENT" not in r.stderr

    dst = await open_storage("postgres", **pgopts)
    try:
        assert await dump(dst) == want     # every item, with its key, time, peer and order
        # an interruption: a user's archive half copied, a roster key missing, a value stale
        a = dst.archive(DOMAIN, "archive")
        await a.delete("joe", before_when=1200.0)
        await dst.map(DOMAIN, "roster").delete("joe", "a@x")
        await dst.map(DOMAIN, "roster").set("joe", "stray@x", {})
        await dst.keyval(DOMAIN, "vcard").set("joe", "stale")
    finally:
        await dst.close()
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sql",
                        "--verify")
    assert r.returncode == 1
    assert f"{DOMAIN} archive (archive): 2501 item(s) in the source, 1701 in the target" in r.stderr
    assert f"{DOMAIN} roster (map): 3 item(s) on both sides, but their contents differ" in r.stderr
    assert "run the migration again" not in r.stderr

    # running it again finishes the job
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sql")
    assert r.returncode == 0, r.stderr
    dst = await open_storage("postgres", **pgopts)
    try:
        assert await dump(dst) == want
    finally:
        await dst.close()
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sql",
                        "--verify")
    assert r.returncode == 0, r.stderr
    assert "sqlite and sql hold the same data" in r.stdout

    # and back, into an empty SQLite database
    sqlite_path.unlink()
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sql", "--to", "sqlite")
    assert r.returncode == 0, r.stderr
    back = await open_storage("sqlite", path=sqlite_path)
    try:
        assert await dump(back) == want
    finally:
        await back.close()


async def test_migrate_refusals(setup, tmp_path):
    cfg, _, pgopts = setup
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sqlite")
    assert r.returncode == 1 and "are the same database" in r.stderr
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "mongodb")
    assert r.returncode == 1 and "unknown storage driver 'mongodb'" in r.stderr
    # a wrong password: the sql option is named
    text = cfg.read_text().replace(pg.PASSWORD, "wrong")
    cfg.write_text(text)
    r = await ctl_async("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sql")
    assert r.returncode == 1
    assert "sql: cannot open the storage: PostgreSQL database" in r.stderr
    assert "refused the user name or password" in r.stderr


def test_migrate_refuses_while_xmppd_runs(setup, start_daemon):
    cfg, _, _ = setup
    d = start_daemon(cfg).wait_ready()
    r = run_ctl_here("--config", str(cfg), "storage", "migrate", "--from", "sqlite", "--to", "sql")
    assert r.returncode == 1
    assert "xmppd is running: stop it before migrating its storage" in r.stderr
    d.stop()


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    p = Progress(out)
    p.start("falcot.com archive (archive)", 4)
    p.advance(4)
    p.finish("4 item(s)")
    text = out.getvalue()
    assert "\rfalcot.com archive (archive)" in text
    assert "[" + "#" * 30 + "] 4/4" in text
    assert text.endswith("falcot.com archive (archive): 4 item(s)\n")
    plain = io.StringIO()
    p = Progress(plain)
    p.start("x", 2)
    p.advance(2)
    p.finish("done")
    assert plain.getvalue() == "x: done\n"

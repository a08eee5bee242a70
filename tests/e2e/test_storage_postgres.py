"""The server on PostgreSQL when PostgreSQL misbehaves: it restarts mid-traffic (no
acknowledged message is lost), it stays down (the sender gets a clear stanza
error, nothing is acknowledged then dropped), it refuses the password or is not
there at start (a clear message naming the ``sql`` option)."""
from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from tests import pg
from xmppd.config import parse_config_text
from xmppd.app import build_server
from xmppd.core.server import StartupError

from .clients import logged_in, slix_connect
from .conftest import DOMAIN, make_config, start_server

pytestmark = [pytest.mark.external("postgres"), pytest.mark.timeout(120)]

MODULES = '    modules_enabled = { "disco", "ping", "smacks", "offline" }\n'


@pytest.fixture(autouse=True)
def _need_postgres():
    if not pg.available():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")


async def wait_for(cond, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def offline_bodies(srv, user: str) -> list[str]:
    import xml.etree.ElementTree as ET
    items = await srv.server.storage.archive(DOMAIN, "offline").query(user)
    return [ET.fromstring(it.value).findtext("{jabber:client}body") for it in items]


async def test_postgres_restart_mid_traffic_loses_no_acknowledged_message(tmp_path, certs):
    """Alice (stream management, acks every 5 stanzas) sends messages to bob, who
    is offline, before, while and after PostgreSQL restarts: every message the server acknowledged
    is in bob's offline store, once; none was refused (the writes waited for the
    database to come back)."""
    srv = await start_server(tmp_path, certs, host_extra=MODULES, storage="sql")
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        await srv.adduser(f"bob@{DOMAIN}")
        a = await slix_connect(srv, f"alice@{DOMAIN}/phone", plugins=("xep_0030", "xep_0198"))
        try:
            await wait_for(lambda: a.plugin["xep_0198"].sm_id is not None)
            acked: list[str] = []
            a.add_event_handler("stanza_acked", lambda s: s.name == "message"
                                and acked.append(s["body"]))
            restarted = threading.Event()

            def restart():
                pg.cluster().restart("fast")   # every connection is terminated
                restarted.set()

            # messages go on before, during and after the restart (50 more after it)
            n, thread, after = 0, None, None
            while after is None or n < after + 50:
                a.send_message(mto=f"bob@{DOMAIN}", mbody=f"m{n}", mtype="chat")
                n += 1
                if n == 60:
                    await wait_for(lambda: len(acked) >= 20)
                    thread = threading.Thread(target=restart)
                    thread.start()
                if after is None and restarted.is_set():
                    after = n
                assert n < 20000, "PostgreSQL did not restart"
                await asyncio.sleep(0.005)
            a.plugin["xep_0198"].request_ack()
            await wait_for(lambda: len(acked) == n and restarted.is_set(), timeout=60)
            thread.join()
            assert a.errors.empty(), a.errors.get_nowait()
            stored = await offline_bodies(srv, "bob")
            assert sorted(stored) == sorted(set(stored)), "a message stored twice"
            missing = [b for b in acked if b not in set(stored)]
            assert not missing, f"acknowledged, then lost: {missing[:10]}"
        finally:
            a.disconnect(wait=0)
    finally:
        await srv.server.stop()


async def test_postgres_down_means_a_stanza_error_not_a_silent_loss(tmp_path, certs):
    """PostgreSQL stays down longer than the server retries: the message to an
    offline user comes back as internal-server-error (type wait) with a text that
    says why, and is not acknowledged as stored; once PostgreSQL is back, it works."""
    srv = await start_server(tmp_path, certs, host_extra=MODULES, storage="sql")
    cluster = pg.cluster()
    try:
        srv.server.storage.inner.retry_timeout = 1
        await srv.adduser(f"alice@{DOMAIN}")
        await srv.adduser(f"bob@{DOMAIN}")
        async with logged_in(srv, f"alice@{DOMAIN}") as a:
            await asyncio.to_thread(cluster.stop, "fast")
            try:
                a.send_message(mto=f"bob@{DOMAIN}", mbody="lost?", mtype="chat")
                err = await a.next_error(timeout=20)
                assert err["error"]["condition"] == "internal-server-error"
                assert err["error"]["type"] == "wait"
                assert "cannot store" in err["error"]["text"]
            finally:
                await asyncio.to_thread(cluster.start)
            a.send_message(mto=f"bob@{DOMAIN}", mbody="later", mtype="chat")
            for _ in range(200):
                if await offline_bodies(srv, "bob") == ["later"]:
                    break
                await asyncio.sleep(0.05)
            assert await offline_bodies(srv, "bob") == ["later"]
    finally:
        await srv.server.stop()


def _startup_error(tmp_path, certs, sql: str) -> str:
    text = make_config(tmp_path, certs).replace('storage = "sqlite"', 'storage = "sql"\n' + sql)
    path = tmp_path / "xmppd.cfg.lua"
    path.write_text(text)
    server = build_server(parse_config_text(text, filename=str(path), base_dir=str(tmp_path)))

    async def go():
        try:
            await server.start()
        except StartupError as exc:
            return str(exc)
        finally:
            await server.stop()
        raise AssertionError("the server started")
    return go()


async def test_wrong_password_at_start_names_the_sql_option(tmp_path, certs):
    cluster = pg.cluster()
    db = cluster.new_database()["database"]
    sql = cluster.sql_table(db).replace(pg.PASSWORD, "wrong")
    msg = await _startup_error(tmp_path, certs, sql)
    assert msg.startswith(f"sql: cannot open the storage: PostgreSQL database '{db}' on "
                          f"127.0.0.1:{cluster.port}: PostgreSQL refused the user name or "
                          "password"), msg
    assert f"(sql at {tmp_path / 'xmppd.cfg.lua'}:" in msg, msg


async def test_unreachable_server_at_start_names_the_sql_option(tmp_path, certs):
    cluster = pg.cluster()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sql = cluster.sql_table("xmppd").replace(f"port = {cluster.port}", f"port = {port}")
    msg = await _startup_error(tmp_path, certs, sql)
    assert msg.startswith(f"sql: cannot open the storage: PostgreSQL database 'xmppd' on "
                          f"127.0.0.1:{port}: cannot connect to the PostgreSQL server"), msg
    assert "(sql at " in msg, msg

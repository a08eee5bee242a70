"""Last Activity (XEP-0012) with slixmpp's xep_0012 plugin."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from .clients import Login, logged_in
from .conftest import start_server

PLUGINS = ("xep_0030", "xep_0012")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "disco", "lastactivity" }\n')
    try:
        await s.adduser("alice@xmppd.test")
        await s.adduser("bob@xmppd.test")
        yield s
    finally:
        await s.server.stop()


async def test_server_uptime(srv):
    async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
        srv.server.started_at -= 42
        r = await a.plugin["xep_0012"].get_last_activity("xmppd.test", timeout=10)
        assert r["last_activity"]["seconds"] >= 42
        info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
        assert "jabber:iq:last" in info["disco_info"]["features"]


async def test_own_last_logout_with_status_and_others_forbidden(srv):
    async with logged_in(srv, "alice@xmppd.test/old", plugins=PLUGINS) as a:
        a.send_presence(ptype="unavailable", pstatus="gone fishing")
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.2)
    store = srv.server.storage.keyval("xmppd.test", "lastactivity")
    rec = await store.get("alice")
    assert rec["s"] == "gone fishing"
    rec["t"] -= 100
    await store.set("alice", rec)
    async with logged_in(srv, Login("alice@xmppd.test/new", send_presence=False), "bob@xmppd.test",
                         plugins=PLUGINS) as (a, b):
        # to one's own bare JID: allowed (not available now, so the last logout)
        r = await a.plugin["xep_0012"].get_last_activity("alice@xmppd.test", timeout=10)
        assert r["last_activity"]["seconds"] >= 100
        assert r["last_activity"]["status"] == "gone fishing"
        # bob is not subscribed to alice's presence
        with pytest.raises(IqError) as exc:
            await b.plugin["xep_0012"].get_last_activity("alice@xmppd.test", timeout=10)
        assert exc.value.iq["error"]["condition"] == "forbidden"
        # bob's own: online now, so 0
        r = await b.plugin["xep_0012"].get_last_activity("bob@xmppd.test", timeout=10)
        assert r["last_activity"]["seconds"] == 0


async def test_full_jid_goes_to_the_client(srv):
    async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", plugins=PLUGINS) as (a, b):
        a.plugin["xep_0012"].set_last_activity(seconds=7, status="idle")
        r = await b.plugin["xep_0012"].get_last_activity(a.boundjid, timeout=10)
        assert r["from"] == a.boundjid
        assert r["last_activity"]["seconds"] >= 7

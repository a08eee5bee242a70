"""Bookmarks 2 (XEP-0402) in PEP and its #compat view through private-storage
bookmarks (XEP-0048 over XEP-0049): slixmpp's xep_0402 and xep_0048."""
from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference

from .clients import Login, logged_in
from .conftest import start_server
from .peputil import PLUGINS, next_event, no_event, options, pep_connect, publish, pubsub_error

A, B = "alice@xmppd.test", "bob@xmppd.test"
NS = "urn:xmpp:bookmarks:1"
BM_PLUGINS = PLUGINS + ("xep_0402", "xep_0049", "xep_0048")
BM_OPTS = dict(access_model="whitelist", max_items="max", persist_items="true",
               send_last_published_item="never")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs,
                           host_extra='    modules_enabled = { "disco", "pep", "private" }\n')
    try:
        await s.adduser(A)
        await s.adduser(B)
        yield s
    finally:
        await s.server.stop()


def conference(name, nick=None, autojoin=True, password=None):
    c = Conference()
    c["name"] = name
    c["autojoin"] = autojoin
    if nick:
        c["nick"] = nick
    if password:
        c["password"] = password
    return c


async def pep_bookmarks(c):
    got = await c.plugin["xep_0060"].get_items(None, NS, timeout=10)
    return {i["id"]: i["conference"] for i in got["pubsub"]["items"]}


async def legacy_get(c):
    got = await c.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
    return {str(conf["jid"]): conf for conf in got["private"]["bookmarks"]["conferences"]}


async def test_bookmarks2_and_compat_view(srv):
    async with logged_in(srv, A, Login(A + "/phone", interests=[NS]), B, connect=pep_connect,
                         plugins=BM_PLUGINS) as (a, a2, b):
        await publish(a, NS, conference("Coven", nick="alice").xml, id="coven@chat.xmppd.test",
                      opts=options(**BM_OPTS))
        await publish(a, NS, conference("Quiet", autojoin=False, password="pw").xml,
                      id="quiet@chat.xmppd.test", opts=options(**BM_OPTS))
        for _ in range(2):
            name, msg = await next_event(a2)
            assert name == "pubsub_publish" and msg["pubsub_event"]["items"]["node"] == NS
        bms = await pep_bookmarks(a)
        assert set(bms) == {"coven@chat.xmppd.test", "quiet@chat.xmppd.test"}
        assert bms["coven@chat.xmppd.test"]["nick"] == "alice"
        # nobody else sees them
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].get_items(A, NS, timeout=10)
        assert pubsub_error(e.value) == ("not-allowed", "closed-node")
        # a legacy client reads them through private storage
        legacy = await legacy_get(a)
        assert set(legacy) == {"coven@chat.xmppd.test", "quiet@chat.xmppd.test"}
        assert legacy["coven@chat.xmppd.test"]["name"] == "Coven"
        assert legacy["coven@chat.xmppd.test"]["nick"] == "alice"
        assert legacy["coven@chat.xmppd.test"]["autojoin"] in (True, "true")
        assert legacy["quiet@chat.xmppd.test"]["password"] == "pw"
        assert legacy["quiet@chat.xmppd.test"]["autojoin"] in (False, "false")
        # ... and writes them: one added, one removed, one changed
        bm = Bookmarks()
        bm.add_conference("coven@chat.xmppd.test", "ally", name="Coven", autojoin=True)
        bm.add_conference("new@chat.xmppd.test", "alice", name="New", autojoin=False)
        await a.plugin["xep_0048"].set_bookmarks(bm, method="xep_0049", timeout=10)
        seen = {}
        for _ in range(3):
            name, msg = await next_event(a2)
            if name == "pubsub_retract":
                seen[msg["pubsub_event"]["items"]["retract"]["id"]] = "retract"
            else:
                seen[msg["pubsub_event"]["items"]["item"]["id"]] = "publish"
        assert seen == {"coven@chat.xmppd.test": "publish", "new@chat.xmppd.test": "publish",
                        "quiet@chat.xmppd.test": "retract"}
        bms = await pep_bookmarks(a)
        assert set(bms) == {"coven@chat.xmppd.test", "new@chat.xmppd.test"}
        assert bms["coven@chat.xmppd.test"]["nick"] == "ally"
        assert bms["new@chat.xmppd.test"]["autojoin"] is False
        # setting the same again changes nothing
        await a.plugin["xep_0048"].set_bookmarks(bm, method="xep_0049", timeout=10)
        await no_event(a2, 0.3)
        info = await a.plugin["xep_0030"].get_info(A, timeout=10)
        assert NS + "#compat" in info["disco_info"]["features"]


async def test_legacy_first_creates_bookmarks2_node(srv):
    async with logged_in(srv, A, connect=pep_connect, plugins=BM_PLUGINS) as a:
        # nothing anywhere yet: private storage answers (empty)
        assert await legacy_get(a) == {}
        bm = Bookmarks()
        bm.add_conference("room@chat.xmppd.test", "alice", name="Room", autojoin=True)
        await a.plugin["xep_0048"].set_bookmarks(bm, method="xep_0049", timeout=10)
        bms = await pep_bookmarks(a)
        assert list(bms) == ["room@chat.xmppd.test"] and bms["room@chat.xmppd.test"]["autojoin"] is True
        conf = await a.plugin["xep_0060"].get_node_config(None, NS, timeout=10)
        values = conf["pubsub_owner"]["configure"]["form"].get_values()
        assert values["pubsub#access_model"] == "whitelist" and values["pubsub#max_items"] == "max"
        # a bookmarks 2 client's publish-options match the node the conversion made
        await publish(a, NS, conference("Other").xml, id="other@chat.xmppd.test", opts=options(**BM_OPTS))
        assert set(await legacy_get(a)) == {"room@chat.xmppd.test", "other@chat.xmppd.test"}

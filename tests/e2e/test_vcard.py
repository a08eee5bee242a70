"""vcard-temp (XEP-0054) with slixmpp's xep_0054 plugin."""
from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError

from .clients import logged_in
from .conftest import start_server

PLUGINS = ("xep_0030", "xep_0054")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "disco", "vcard" }\n'
                                                       '    vcard_max_size = 2000\n')
    try:
        await s.adduser("alice@xmppd.test")
        await s.adduser("bob@xmppd.test")
        yield s
    finally:
        await s.server.stop()


async def test_own_vcard_set_get_and_others_read_it(srv):
    async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", plugins=PLUGINS) as (a, b):
        v = a.plugin["xep_0054"]
        empty = await v.get_vcard(local=False, cached=False, timeout=10)
        assert empty["vcard_temp"]["FN"] == ""  # none stored yet: an empty vCard
        card = v.make_vcard()
        card["FN"] = "Alice Liddell"
        card["NICKNAME"] = "alice"
        await v.publish_vcard(card, timeout=10)
        mine = await v.get_vcard(local=False, cached=False, timeout=10)
        assert mine["vcard_temp"]["FN"] == "Alice Liddell"
        theirs = await b.plugin["xep_0054"].get_vcard("alice@xmppd.test", local=False, cached=False,
                                                      timeout=10)
        assert theirs["vcard_temp"]["FN"] == "Alice Liddell"
        assert theirs["vcard_temp"]["NICKNAME"] == ["alice"]
        # bob has none: item-not-found for others
        with pytest.raises(IqError) as exc:
            await a.plugin["xep_0054"].get_vcard("bob@xmppd.test", local=False, cached=False,
                                                 timeout=10)
        assert exc.value.iq["error"]["condition"] == "item-not-found"


async def test_cannot_set_someone_elses_vcard_and_size_limit(srv):
    async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
        v = a.plugin["xep_0054"]
        card = v.make_vcard()
        card["FN"] = "Mallory"
        iq = a.make_iq_set(ito="bob@xmppd.test")
        iq.append(card)
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert exc.value.iq["error"]["condition"] == "forbidden"
        big = v.make_vcard()
        big["FN"] = "x" * 5000
        with pytest.raises(IqError) as exc:
            await v.publish_vcard(big, timeout=10)
        assert exc.value.iq["error"]["condition"] == "not-acceptable"


async def test_vcard_advertised(srv):
    async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
        info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
        assert "vcard-temp" in info["disco_info"]["features"]
        info = await a.plugin["xep_0030"].get_info("bob@xmppd.test", timeout=10)
        assert "vcard-temp" in info["disco_info"]["features"]


async def test_vcard_legacy_is_an_alias(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "vcard_legacy" }\n')
    try:
        assert "vcard" in s.server.hosts["xmppd.test"].modules
    finally:
        await s.server.stop()

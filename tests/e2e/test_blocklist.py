"""Blocking Command (XEP-0191) with slixmpp's xep_0191 plugin: the list, pushes,
and the effects on stanzas in both directions and on presence."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from .clients import logged_in
from .conftest import start_server

PLUGINS = ("xep_0030", "xep_0199", "xep_0191")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs,
                           extra='modules_enabled = { "disco", "ping", "blocklist" }\n')
    try:
        for u in ("alice@xmppd.test", "bob@xmppd.test", "carol@other.test"):
            await s.adduser(u)
        yield s
    finally:
        await s.server.stop()


def queue_of(client, event):
    q: asyncio.Queue = asyncio.Queue()
    client.add_event_handler(event, q.put_nowait)
    return q


async def test_block_pushes_and_both_directions(srv):
    async with logged_in(srv, "alice@xmppd.test/one", "alice@xmppd.test/two", "bob@xmppd.test",
                         plugins=PLUGINS) as (a, a2, b):
        blocked_pushes = queue_of(a2, "blocked")
        unblocked_pushes = queue_of(a2, "unblocked")
        pushes_to_a = queue_of(a, "blocked")
        assert await a2.plugin["xep_0191"].get_blocked_jids(timeout=10) == set()  # now interested
        await a.plugin["xep_0191"].block(JID("bob@xmppd.test"), timeout=10)
        push = await asyncio.wait_for(blocked_pushes.get(), 10)
        assert [i["jid"] for i in push["block"]["items"]] == [JID("bob@xmppd.test")]
        await asyncio.sleep(0.1)
        assert pushes_to_a.empty()  # 'a' never asked for the list: no pushes for it
        assert await a.plugin["xep_0191"].get_blocked_jids(timeout=10) == {JID("bob@xmppd.test")}

        # inbound: bob's message bounces, his IQ gets service-unavailable
        b.send_message(mto="alice@xmppd.test", mbody="let me in", mtype="chat")
        err = await b.next_error()
        assert err["error"]["condition"] == "service-unavailable"
        with pytest.raises(IqError) as exc:
            await b.plugin["xep_0199"].send_ping(a.boundjid, timeout=10)
        assert exc.value.iq["error"]["condition"] == "service-unavailable"
        # ... and his presence is dropped
        b.send_presence(pto=a.boundjid, pstatus="hello?")
        # outbound: alice's message to bob is refused as blocked
        a.send_raw("<message to='bob@xmppd.test' type='chat' id='out1'><body>hi</body></message>")
        err = await a.next_error()
        assert err["id"] == "out1" and err["error"]["condition"] == "not-acceptable"
        assert err.xml.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") is not None
        with pytest.raises(IqError) as exc:
            await a.plugin["xep_0199"].send_ping(b.boundjid, timeout=10)
        assert exc.value.iq["error"]["condition"] == "not-acceptable"
        await asyncio.sleep(0.3)
        assert a.messages.empty() and b.messages.empty()
        for c in (a, a2):
            while not c.presences.empty():
                assert c.presences.get_nowait()["from"].bare != "bob@xmppd.test"

        # unblock: both ways work again
        await a.plugin["xep_0191"].unblock(JID("bob@xmppd.test"), timeout=10)
        push = await asyncio.wait_for(unblocked_pushes.get(), 10)
        assert [i["jid"] for i in push["unblock"]["items"]] == [JID("bob@xmppd.test")]
        b.send_message(mto="alice@xmppd.test", mbody="now?", mtype="chat")
        assert (await a.next_message())["body"] == "now?"
        a.send_message(mto="bob@xmppd.test", mbody="yes", mtype="chat")
        assert (await b.next_message())["body"] == "yes"


async def test_block_many_domain_and_unblock_all(srv):
    async with logged_in(srv, "alice@xmppd.test", "carol@other.test", plugins=PLUGINS) as (a, c):
        blk = a.plugin["xep_0191"]
        await blk.block([JID("other.test"), JID("mallory@evil.example"), JID("bob@xmppd.test/spam")],
                        timeout=10)
        assert await blk.get_blocked_jids(timeout=10) == {
            JID("other.test"), JID("mallory@evil.example"), JID("bob@xmppd.test/spam")}
        c.send_message(mto="alice@xmppd.test", mbody="domain blocked", mtype="chat")
        assert (await c.next_error())["error"]["condition"] == "service-unavailable"
        # an empty <block/> is a bad request; a bad JID is jid-malformed
        iq = a.make_iq_set()
        iq.enable("block")
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert exc.value.iq["error"]["condition"] == "bad-request"
        iq = a.make_iq_set()
        ET.SubElement(ET.SubElement(iq.xml, "{urn:xmpp:blocking}block"), "{urn:xmpp:blocking}item",
                      {"jid": "a@b@c"})
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert exc.value.iq["error"]["condition"] == "jid-malformed"
        # <unblock/> without items empties the list
        iq = a.make_iq_set()
        iq.enable("unblock")
        await iq.send(timeout=10)
        assert await blk.get_blocked_jids(timeout=10) == set()
        c.send_message(mto="alice@xmppd.test", mbody="back", mtype="chat")
        assert (await a.next_message())["body"] == "back"


async def test_blocking_sends_unavailable_to_who_had_presence(srv):
    async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", plugins=PLUGINS) as (a, b):
        a.send_presence(pto="bob@xmppd.test", pstatus="here for you")  # directed presence
        while True:
            p = await asyncio.wait_for(b.presences.get(), 10)
            if p["from"] == a.boundjid:
                assert p["type"] == "available"
                break
        await a.plugin["xep_0191"].block(JID("bob@xmppd.test"), timeout=10)
        while True:
            p = await asyncio.wait_for(b.presences.get(), 10)
            if p["from"] == a.boundjid:
                assert p["type"] == "unavailable"
                break
        # later presence of alice does not reach bob
        a.send_presence(pto="bob@xmppd.test", pstatus="sneaky")
        await asyncio.sleep(0.3)
        while not b.presences.empty():
            assert b.presences.get_nowait()["from"].bare != "alice@xmppd.test"


async def test_blocklist_survives_restart_and_is_advertised(tmp_path, certs):
    extra = 'modules_enabled = { "disco", "blocklist" }\n'
    s = await start_server(tmp_path, certs, extra=extra)
    try:
        await s.adduser("alice@xmppd.test")
        async with logged_in(s, "alice@xmppd.test", plugins=PLUGINS) as a:
            info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
            assert "urn:xmpp:blocking" in info["disco_info"]["features"]
            await a.plugin["xep_0191"].block(JID("spam@example.org"), timeout=10)
    finally:
        await s.server.stop()
    s = await start_server(tmp_path, certs, extra=extra)
    try:
        async with logged_in(s, "alice@xmppd.test", plugins=PLUGINS) as a:
            assert await a.plugin["xep_0191"].get_blocked_jids(timeout=10) == {JID("spam@example.org")}
    finally:
        await s.server.stop()

"""Offline messages (XEP-0160, XEP-0203): stored while the account is offline,
delivered in order with a delay stamp at login, kept across restarts."""
from __future__ import annotations

import asyncio

import pytest

from .clients import Login, logged_in
from .conftest import start_server

MODULES = '    modules_enabled = { "disco", "offline" }\n'


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=MODULES)
    try:
        yield s
    finally:
        await s.server.stop()


def delay_of(msg):
    return msg.xml.find("{urn:xmpp:delay}delay")


async def test_stored_and_delivered_in_order_with_delay(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test") as a:
        for i in range(5):
            a.send_message(mto="bob@xmppd.test", mbody=f"msg {i}", mtype="chat")
        a.send_message(mto="bob@xmppd.test", mbody="a normal one", mtype="normal")
        a.send_message(mto="bob@xmppd.test/laptop", mbody="to a gone resource", mtype="chat")
        await asyncio.sleep(0.3)
        assert a.errors.empty()
        async with logged_in(srv, "bob@xmppd.test", plugins=("xep_0030", "xep_0203")) as b:
            got = [await b.next_message() for _ in range(7)]
            assert [m["body"] for m in got] == [f"msg {i}" for i in range(5)] + [
                "a normal one", "to a gone resource"]
            for m in got:
                d = delay_of(m)
                assert d is not None and d.get("from") == "xmppd.test"
                assert d.get("stamp").endswith("Z")
                assert m["from"] == a.boundjid
            assert got[0]["delay"]["from"] == "xmppd.test" and got[0]["delay"]["stamp"] is not None  # slixmpp's XEP-0203 view agrees
        # delivered once: a second login gets nothing
        async with logged_in(srv, "bob@xmppd.test") as b2:
            await asyncio.sleep(0.3)
            assert b2.messages.empty()


async def test_survive_restart(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=MODULES)
    try:
        await s.adduser("alice@xmppd.test")
        await s.adduser("bob@xmppd.test")
        async with logged_in(s, "alice@xmppd.test") as a:
            a.send_message(mto="bob@xmppd.test", mbody="before the restart", mtype="chat")
            a.send_message(mto="bob@xmppd.test", mbody="second", mtype="chat")
            await asyncio.sleep(0.3)
    finally:
        await s.server.stop()
    s = await start_server(tmp_path, certs, host_extra=MODULES)
    try:
        async with logged_in(s, "bob@xmppd.test") as b:
            got = [(await b.next_message())["body"] for _ in range(2)]
            assert got == ["before the restart", "second"]
    finally:
        await s.server.stop()


async def test_quota_bounces_with_service_unavailable(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=MODULES + "    offline_max_messages = 2\n")
    try:
        await s.adduser("alice@xmppd.test")
        await s.adduser("bob@xmppd.test")
        async with logged_in(s, "alice@xmppd.test") as a:
            for i in range(3):
                a.send_message(mto="bob@xmppd.test", mbody=f"m{i}", mtype="chat")
            err = await a.next_error()
            assert err["error"]["condition"] == "service-unavailable"
            assert err["from"] == "bob@xmppd.test"
            async with logged_in(s, "bob@xmppd.test") as b:
                assert [(await b.next_message())["body"] for _ in range(2)] == ["m0", "m1"]
                await asyncio.sleep(0.2)
                assert b.messages.empty()
    finally:
        await s.server.stop()


async def test_no_store_hint_and_headline_not_stored(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test") as a:
        a.send_raw("<message to='bob@xmppd.test' type='chat' id='ns1'><body>ephemeral</body>"
                   "<no-store xmlns='urn:xmpp:hints'/></message>")
        err = await a.next_error()
        assert err["id"] == "ns1" and err["error"]["condition"] == "service-unavailable"
        a.send_message(mto="bob@xmppd.test", mbody="headline", mtype="headline")
        a.send_raw("<message to='bob@xmppd.test' type='chat'>"
                   "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        a.send_message(mto="bob@xmppd.test", mbody="kept", mtype="chat")
        await asyncio.sleep(0.3)
        async with logged_in(srv, "bob@xmppd.test") as b:
            assert (await b.next_message())["body"] == "kept"
            await asyncio.sleep(0.3)
            assert b.messages.empty()


async def test_negative_priority_does_not_get_them(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test", Login("bob@xmppd.test/bot", priority=-5)) as (a, neg):
        a.send_message(mto="bob@xmppd.test", mbody="for a real client", mtype="chat")
        await asyncio.sleep(0.3)
        assert neg.messages.empty() and a.errors.empty()
        # raising the priority of the same session delivers them
        neg.send_presence(ppriority=3)
        assert (await neg.next_message())["body"] == "for a real client"
        async with logged_in(srv, "bob@xmppd.test/phone") as b:
            await asyncio.sleep(0.3)
            assert b.messages.empty()


async def test_deleted_user_loses_offline_messages(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test") as a:
        a.send_message(mto="bob@xmppd.test", mbody="lost", mtype="chat")
        await asyncio.sleep(0.3)
        store = srv.server.storage.archive("xmppd.test", "offline")
        assert await store.count("bob") == 1
        await srv.server.accounts.delete("xmppd.test", "bob")
        assert await store.count("bob") == 0

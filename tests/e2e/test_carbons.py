"""Message Carbons (XEP-0280) with slixmpp's xep_0280 plugin: three resources of
alice (two with carbons on, one off) and bob."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from .clients import Login, logged_in
from .conftest import start_server

PLUGINS = ("xep_0030", "xep_0280")
NS = "urn:xmpp:carbons:2"
QUIET = 0.3


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, extra='modules_enabled = { "disco", "carbons" }\n')
    try:
        yield s
    finally:
        await s.server.stop()


def watch(c):
    """Queue every carbon a client gets, as ("sent"|"received", inner message)."""
    q: asyncio.Queue = asyncio.Queue()
    c.add_event_handler("carbon_received", lambda m: q.put_nowait(("received", m)))
    c.add_event_handler("carbon_sent", lambda m: q.put_nowait(("sent", m)))
    c.carbons = q
    return c


async def next_carbon(c, timeout=5):
    kind, msg = await asyncio.wait_for(c.carbons.get(), timeout)
    inner = msg["carbon_received" if kind == "received" else "carbon_sent"]
    return kind, msg, inner


async def assert_no_carbon(*clients):
    await asyncio.sleep(QUIET)
    for c in clients:
        assert c.carbons.empty(), f"{c.boundjid} got an unexpected carbon"


@pytest.fixture
async def people(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, Login("alice@xmppd.test/a", priority=5),
                         Login("alice@xmppd.test/b", priority=1), Login("alice@xmppd.test/c", priority=1),
                         "bob@xmppd.test/x", plugins=PLUGINS) as clients:
        a, b, c, bob = map(watch, clients)
        await a.plugin["xep_0280"].enable()
        await b.plugin["xep_0280"].enable()
        yield a, b, c, bob


async def test_feature_in_disco(srv):
    await srv.adduser("alice@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
        info = await a.plugin["xep_0030"].get_info(jid="xmppd.test")
        assert NS in info["disco_info"]["features"]


async def test_enable_flag_per_session(srv, people):
    a, b, c, bob = people
    sessions = srv.server.hosts["xmppd.test"].sessions_of("alice")
    assert sessions["a"].state.get("carbons") and sessions["b"].state.get("carbons")
    assert not sessions["c"].state.get("carbons")
    await b.plugin["xep_0280"].enable()  # enabling twice is fine
    await b.plugin["xep_0280"].disable()
    await b.plugin["xep_0280"].disable()
    assert not sessions["b"].state.get("carbons")


async def test_received_carbon_of_message_to_full_jid(people):
    a, b, c, bob = people
    bob.send_message(mto="alice@xmppd.test/c", mbody="to c", mtype="chat")
    got = await c.next_message()
    assert got["body"] == "to c"
    for who in (a, b):
        kind, wrapper, inner = await next_carbon(who)
        assert kind == "received"
        assert wrapper["from"] == "alice@xmppd.test"
        assert wrapper["to"] == who.boundjid
        assert wrapper["type"] == "chat"
        assert inner["body"] == "to c"
        assert inner["from"] == "bob@xmppd.test/x"
        assert inner["to"] == "alice@xmppd.test/c"
    await assert_no_carbon(c, bob)


async def test_received_carbon_not_sent_to_the_recipient(people):
    a, b, c, bob = people
    bob.send_message(mto="alice@xmppd.test/b", mbody="to b", mtype="chat")
    assert (await b.next_message())["body"] == "to b"
    kind, _, inner = await next_carbon(a)
    assert (kind, inner["body"]) == ("received", "to b")
    await assert_no_carbon(b, c)


async def test_message_to_bare_jid_carbons_the_resources_that_did_not_get_it(people):
    a, b, c, bob = people
    # a has the highest priority: it alone gets the message; b (carbons on) a copy
    bob.send_message(mto="alice@xmppd.test", mbody="to bare", mtype="chat")
    assert (await a.next_message())["body"] == "to bare"
    kind, _, inner = await next_carbon(b)
    assert (kind, inner["body"]) == ("received", "to bare")
    await assert_no_carbon(a, c)
    assert c.messages.empty()


async def test_normal_message_with_body_is_carboned_headline_is_not(people):
    a, b, c, bob = people
    bob.send_message(mto="alice@xmppd.test/a", mbody="headline", mtype="headline")
    assert (await a.next_message())["body"] == "headline"
    await assert_no_carbon(b)
    bob.send_message(mto="alice@xmppd.test/a", mbody="normal", mtype="normal")
    assert (await a.next_message())["body"] == "normal"
    kind, _, inner = await next_carbon(b)
    assert inner["body"] == "normal"


async def test_chat_state_is_carboned(people):
    a, b, c, bob = people
    msg = bob.make_message(mto="alice@xmppd.test/a", mtype="chat")
    msg.xml.append(ET.Element("{http://jabber.org/protocol/chatstates}composing"))
    msg.send()
    kind, _, inner = await next_carbon(b)
    assert inner.xml.find("{http://jabber.org/protocol/chatstates}composing") is not None


async def test_sent_carbon(people):
    a, b, c, bob = people
    a.send_message(mto="bob@xmppd.test", mbody="hi bob", mtype="chat")
    assert (await bob.next_message())["body"] == "hi bob"
    kind, wrapper, inner = await next_carbon(b)
    assert kind == "sent"
    assert wrapper["from"] == "alice@xmppd.test"
    assert wrapper["to"] == b.boundjid
    assert inner["to"] == "bob@xmppd.test"
    assert inner["from"] == a.boundjid
    assert inner["body"] == "hi bob"
    # the sender itself gets no copy, nor does the resource without carbons
    await assert_no_carbon(a, c)


async def test_sent_carbon_even_when_sender_has_carbons_off(people):
    a, b, c, bob = people
    c.send_message(mto="bob@xmppd.test", mbody="from c", mtype="chat")
    assert (await bob.next_message())["body"] == "from c"
    for who in (a, b):
        kind, _, inner = await next_carbon(who)
        assert (kind, inner["body"]) == ("sent", "from c")


async def test_private_is_not_carboned_and_is_removed(people):
    a, b, c, bob = people
    msg = a.make_message(mto="bob@xmppd.test", mbody="secret", mtype="chat")
    msg.xml.append(ET.Element(f"{{{NS}}}private"))
    msg.send()
    got = await bob.next_message()
    assert got["body"] == "secret"
    assert got.xml.find(f"{{{NS}}}private") is None
    # inbound private: the recipient's other resources get nothing either
    msg = bob.make_message(mto="alice@xmppd.test/a", mbody="psst", mtype="chat")
    msg.xml.append(ET.Element(f"{{{NS}}}private"))
    msg.send()
    got = await a.next_message()
    assert got["body"] == "psst" and got.xml.find(f"{{{NS}}}private") is None
    await assert_no_carbon(a, b, c)


async def test_no_copy_hint(people):
    a, b, c, bob = people
    msg = bob.make_message(mto="alice@xmppd.test/a", mbody="no copy", mtype="chat")
    msg.xml.append(ET.Element("{urn:xmpp:hints}no-copy"))
    msg.send()
    assert (await a.next_message())["body"] == "no copy"
    msg = a.make_message(mto="bob@xmppd.test", mbody="no copy out", mtype="chat")
    msg.xml.append(ET.Element("{urn:xmpp:hints}no-copy"))
    msg.send()
    assert (await bob.next_message())["body"] == "no copy out"
    await assert_no_carbon(a, b)


async def test_muc_private_message_is_not_carboned(people):
    a, b, c, bob = people
    # a PM relayed by a room arrives at a full JID with <x xmlns=muc#user/>
    msg = bob.make_message(mto="alice@xmppd.test/a", mbody="pm", mtype="chat")
    msg.xml.append(ET.Element("{http://jabber.org/protocol/muc#user}x"))
    msg.send()
    assert (await a.next_message())["body"] == "pm"
    await assert_no_carbon(b)


async def test_disable_stops_carbons(people):
    a, b, c, bob = people
    await b.plugin["xep_0280"].disable()
    bob.send_message(mto="alice@xmppd.test/a", mbody="after disable", mtype="chat")
    assert (await a.next_message())["body"] == "after disable"
    await assert_no_carbon(b)


async def test_cannot_enable_for_another_account(people):
    a, b, c, bob = people
    iq = a.make_iq_set(ito="bob@xmppd.test")
    iq.enable("carbon_enable")
    with pytest.raises(IqError) as exc:
        await iq.send()
    assert exc.value.condition == "not-allowed"


async def test_resource_without_presence_still_gets_carbons(srv, people):
    """Enabling carbons is an explicit request (as in Prosody): presence not needed."""
    a, b, c, bob = people
    b.send_presence(ptype="unavailable")
    await asyncio.sleep(0.2)
    bob.send_message(mto="alice@xmppd.test", mbody="while away", mtype="chat")
    assert (await a.next_message())["body"] == "while away"
    kind, _, inner = await next_carbon(b)
    assert (kind, inner["body"]) == ("received", "while away")


async def test_aioxmpp_enables_carbons_and_gets_sent_copies(srv):
    aioxmpp = pytest.importorskip("aioxmpp")
    import aioxmpp.carbons
    import aioxmpp.connector
    import aioxmpp.dispatcher
    import aioxmpp.security_layer
    import OpenSSL.SSL

    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")

    def ctx_factory():
        ctx = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(srv.cafile)
        ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, lambda *args: args[-1])
        return ctx

    async def password(jid, n):
        return "secret"

    layer = aioxmpp.security_layer.SecurityLayer(
        ctx_factory, aioxmpp.security_layer._NullVerifier, True,
        (aioxmpp.security_layer.PasswordSASLProvider(password),))
    client = aioxmpp.Client(
        aioxmpp.JID.fromstr("alice@xmppd.test/aio"), layer,
        override_peer=[("127.0.0.1", srv.port, aioxmpp.connector.STARTTLSConnector())])
    got: asyncio.Queue = asyncio.Queue()
    async with (logged_in(srv, "alice@xmppd.test/a", "bob@xmppd.test", plugins=PLUGINS) as (a, bob),
                client.connected()):
        watch(a)
        client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
            aioxmpp.MessageType.CHAT, aioxmpp.JID.fromstr("alice@xmppd.test"), got.put_nowait)
        await client.summon(aioxmpp.carbons.CarbonsClient).enable()
        a.send_message(mto="bob@xmppd.test", mbody="seen by aioxmpp", mtype="chat")
        assert (await bob.next_message())["body"] == "seen by aioxmpp"
        wrapper = await asyncio.wait_for(got.get(), 5)
        inner = wrapper.xep0280_sent.stanza
        assert inner.body.any() == "seen by aioxmpp"
        assert str(inner.to) == "bob@xmppd.test"
        # and the aioxmpp resource's own messages are copied to a
        await a.plugin["xep_0280"].enable()
        msg = aioxmpp.Message(to=aioxmpp.JID.fromstr("bob@xmppd.test"),
                              type_=aioxmpp.MessageType.CHAT)
        msg.body[None] = "from aioxmpp"
        await client.send(msg)
        kind, _, inner = await next_carbon(a)
        assert (kind, inner["body"]) == ("sent", "from aioxmpp")

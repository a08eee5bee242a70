"""Client-to-server: login, routing between users, and the core IQ services,
driven by real client libraries (slixmpp, aioxmpp)."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from .clients import AuthFailed, Login, logged_in, slix_connect


def session_of(srv, jid):
    user, rest = jid.split("@")
    host, _, res = rest.partition("/")
    sessions = srv.server.hosts[host].sessions_of(user)
    return sessions[res] if res else next(iter(sessions.values()))


async def test_starttls_scram_login(xmppd):
    await xmppd.adduser("alice@xmppd.test", "s3cret")
    async with logged_in(xmppd, "alice@xmppd.test", password="s3cret") as c:
        sess = session_of(xmppd, str(c.boundjid))
        assert sess.tls
        assert sess.sasl_mechanism.startswith("SCRAM-SHA-")
        assert str(c.boundjid).startswith("alice@xmppd.test/")


async def test_direct_tls_login(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", direct_tls=True) as c:
        assert session_of(xmppd, str(c.boundjid)).tls


async def test_wrong_password(xmppd):
    await xmppd.adduser("alice@xmppd.test", "right")
    with pytest.raises(AuthFailed):
        await slix_connect(xmppd, "alice@xmppd.test", "wrong")


async def test_unknown_user_cannot_login(xmppd):
    with pytest.raises(AuthFailed):
        await slix_connect(xmppd, "nobody@xmppd.test", "whatever")


async def test_two_users_chat_both_ways(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", "bob@xmppd.test") as (a, b):
        a.send_message(mto="bob@xmppd.test", mbody="hello bob", mtype="chat")
        m = await b.next_message()
        assert m["body"] == "hello bob"
        assert m["from"] == a.boundjid  # stamped with the full JID
        b.send_message(mto=a.boundjid, mbody="hi alice", mtype="chat")
        m = await a.next_message()
        assert m["body"] == "hi alice" and m["from"] == b.boundjid


async def test_spoofed_from_is_refused(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", "bob@xmppd.test") as (a, b):
        a.send_message(mto="bob@xmppd.test", mbody="from alice's bare JID", mfrom="alice@xmppd.test")
        m = await b.next_message()
        assert m["from"] == a.boundjid  # a bare 'from' of one's own is rewritten to the full JID
        closed = a.disconnected
        a.send_raw("<message from='bob@xmppd.test' to='bob@xmppd.test'><body>spoof</body></message>")
        await asyncio.wait_for(closed, 10)  # invalid-from closes the stream
        assert b.messages.empty()


async def test_messages_between_virtual_hosts(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("carol@other.test")
    async with logged_in(xmppd, "alice@xmppd.test", "carol@other.test") as (a, c):
        a.send_message(mto="carol@other.test", mbody="across hosts", mtype="chat")
        assert (await c.next_message())["body"] == "across hosts"


async def test_bare_jid_goes_to_highest_priority(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", Login("bob@xmppd.test/low", priority=1),
                         Login("bob@xmppd.test/high", priority=10),
                         Login("bob@xmppd.test/neg", priority=-1)) as (a, low, high, neg):
        a.send_message(mto="bob@xmppd.test", mbody="to the best", mtype="chat")
        assert (await high.next_message())["body"] == "to the best"
        # a full JID reaches exactly that resource, negative priority or not
        a.send_message(mto="bob@xmppd.test/neg", mbody="direct", mtype="chat")
        assert (await neg.next_message())["body"] == "direct"
        await asyncio.sleep(0.2)
        assert low.messages.empty() and high.messages.empty()


async def test_full_jid_of_offline_resource_falls_back_to_bare(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", "bob@xmppd.test/phone") as (a, b):
        a.send_message(mto="bob@xmppd.test/gone", mbody="chat falls back", mtype="chat")
        assert (await b.next_message())["body"] == "chat falls back"
        a.send_message(mto="bob@xmppd.test/gone", mbody="normal bounces", mtype="normal")
        err = await a.next_error()
        assert err["type"] == "error" and err["error"]["condition"] == "service-unavailable"


async def test_resource_conflict_new_session_wins(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test/desk") as first:
        errors = []
        first.add_event_handler("stream_error", errors.append)
        first_closed = first.disconnected
        async with logged_in(xmppd, "alice@xmppd.test/desk") as second:
            await asyncio.wait_for(first_closed, 10)
            assert errors and errors[0]["condition"] == "conflict"
            assert str(second.boundjid) == "alice@xmppd.test/desk"
            assert session_of(xmppd, "alice@xmppd.test/desk") is not None


async def test_unknown_user_and_domain_errors(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test") as a:
        a.send_message(mto="ghost@xmppd.test", mbody="anyone?", mtype="chat")
        err = await a.next_error()
        assert err["type"] == "error" and err["error"]["condition"] == "service-unavailable"
        a.send_message(mto="someone@unknown.invalid", mbody="far away", mtype="chat")
        err = await a.next_error()
        assert err["error"]["condition"] == "remote-server-not-found"
        assert err["from"] == "someone@unknown.invalid"
        raw = a.make_iq_get(ito="xmppd.test")
        raw.append(ET.Element("{urn:example:unknown}query"))
        with pytest.raises(IqError) as exc:
            await raw.send(timeout=10)
        assert exc.value.iq["error"]["condition"] == "service-unavailable"


async def test_ping_version_time_disco(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test") as a:
        rtt = await a.plugin["xep_0199"].ping("xmppd.test", timeout=10)
        assert rtt >= 0
        v = await a.plugin["xep_0092"].get_version("xmppd.test", timeout=10)
        assert v["software_version"]["name"] == "xmppd"
        t = await a.plugin["xep_0202"].get_entity_time("xmppd.test", timeout=10)
        # (slixmpp's own tzo/utc getters mis-parse valid values; read the XML)
        assert t["entity_time"].xml.find("{urn:xmpp:time}tzo").text == "Z"
        assert t["entity_time"].xml.find("{urn:xmpp:time}utc").text.endswith("Z")
        info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
        feats = set(info["disco_info"]["features"])
        assert {"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time",
                "http://jabber.org/protocol/disco#info"} <= feats
        assert ("server", "im") in {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        acct = await a.plugin["xep_0030"].get_info("alice@xmppd.test", timeout=10)
        assert ("account", "registered") in {(i[0], i[1]) for i in acct["disco_info"]["identities"]}


async def test_disco_lists_only_enabled_modules(tmp_path, certs):
    from .conftest import start_server
    srv = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "disco", "ping" }\n')
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test") as a:
            info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
            feats = set(info["disco_info"]["features"])
            assert "urn:xmpp:ping" in feats
            assert "jabber:iq:version" not in feats and "urn:xmpp:time" not in feats
            with pytest.raises(IqError) as exc:
                await a.plugin["xep_0092"].get_version("xmppd.test", timeout=10)
            assert exc.value.iq["error"]["condition"] == "service-unavailable"
    finally:
        await srv.server.stop()


async def test_iq_to_bare_jid_answered_by_server(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test") as a:
        with pytest.raises(IqError) as exc:
            await a.plugin["xep_0092"].get_version("bob@xmppd.test", timeout=10)
        assert exc.value.iq["error"]["condition"] == "service-unavailable"


async def test_aioxmpp_login_and_message(xmppd):
    aioxmpp = pytest.importorskip("aioxmpp")
    import aioxmpp.connector
    import aioxmpp.security_layer
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")

    import OpenSSL.SSL

    def ctx_factory():
        ctx = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(xmppd.cafile)
        ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, lambda *a: a[-1])
        return ctx

    layer = aioxmpp.security_layer.SecurityLayer(
        ctx_factory, aioxmpp.security_layer._NullVerifier, True,
        (aioxmpp.security_layer.PasswordSASLProvider(lambda jid, n: _pw()),),
    )

    async def _pw():
        return "secret"

    client = aioxmpp.Client(
        aioxmpp.JID.fromstr("alice@xmppd.test"), layer,
        override_peer=[("127.0.0.1", xmppd.port, aioxmpp.connector.STARTTLSConnector())],
    )
    async with logged_in(xmppd, "bob@xmppd.test") as b, client.connected() as stream:
        msg = aioxmpp.Message(to=aioxmpp.JID.fromstr("bob@xmppd.test"), type_=aioxmpp.MessageType.CHAT)
        msg.body[None] = "from aioxmpp"
        await stream.send(msg)
        got = await b.next_message()
        assert got["body"] == "from aioxmpp"
        assert str(got["from"]).startswith("alice@xmppd.test/")


async def test_streams_between_stanzas_hold_no_parser(xmppd):
    """A client stream between stanzas gives its expat parser back to the shared
    pool; whatever comes next is parsed as before, split anywhere."""
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", "bob@xmppd.test") as (a, b):
        sa, sb = session_of(xmppd, str(a.boundjid)), session_of(xmppd, str(b.boundjid))
        await asyncio.sleep(0.2)              # let login traffic settle
        assert sa.parser.released and sb.parser.released
        for i in range(3):
            a.send_message(mto="bob@xmppd.test", mbody=f"message {i}", mtype="chat")
            m = await b.next_message()
            assert m["body"] == f"message {i}"
            assert sa.parser.released
        # a stanza split over two writes: the parser is held in between
        raw = "<message to='bob@xmppd.test' type='chat'><body>in two parts</body></message>"
        a.send_raw(raw[:25])
        await asyncio.sleep(0.2)
        assert not sa.parser.released
        a.send_raw(raw[25:])
        m = await b.next_message()
        assert m["body"] == "in two parts" and sa.parser.released


async def test_legacy_session_iq_after_bind_is_a_result(xmppd):
    # RFC 3921's session establishment, sent after bind by Strophe.js (Converse.js)
    # although the feature says <optional/>: an empty result (it failed the login before)
    from .clients import slix_close
    await xmppd.adduser("alice@xmppd.test")
    c = await slix_connect(xmppd, "alice@xmppd.test", send_presence=False)
    try:
        for to in (None, "xmppd.test"):
            iq = c.Iq(stype="set")
            if to:
                iq["to"] = to
            iq.append(ET.fromstring("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"))
            res = await iq.send(timeout=10)
            assert res["type"] == "result" and len(res.xml) == 0
    finally:
        await slix_close(c)

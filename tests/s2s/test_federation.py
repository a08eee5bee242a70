"""Two xmppd instances federate: SASL EXTERNAL (certificates from one CA) and
dialback-only (certificates the peer does not trust, s2s_secure_auth = false);
messages and IQs both ways with real clients; bounces; policy refusals."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from tests.e2e.clients import logged_in

from .conftest import start_node

A, B = "a.test", "b.test"


def auth_methods(node):
    return {(s["direction"], s["remote"]): s["auth"] for s in node.s2s.describe()}


@pytest.fixture
async def pair_external(tmp_path, dns, cas):
    ca = cas.cafile("one")
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), ca)
    b = await start_node(tmp_path, dns, B, cas.issue("one", B), ca)
    yield a, b
    await a.stop()
    await b.stop()


@pytest.fixture
async def pair_dialback(tmp_path, dns, cas):
    # each side trusts only its own CA: the peer's certificate is as good as self-signed
    extra = "s2s_secure_auth = false\n"
    a = await start_node(tmp_path, dns, A, cas.issue("ca-a", A), cas.cafile("ca-a"), extra=extra)
    b = await start_node(tmp_path, dns, B, cas.issue("ca-b", B), cas.cafile("ca-b"), extra=extra)
    yield a, b
    await a.stop()
    await b.stop()


async def exchange(a, b):
    await a.adduser(f"alice@{A}")
    await b.adduser(f"bob@{B}")
    async with logged_in(a, f"alice@{A}") as ca, logged_in(b, f"bob@{B}") as cb:
        ca.send_message(mto=f"bob@{B}", mbody="hello from a", mtype="chat")
        m = await cb.next_message(timeout=20)
        assert m["body"] == "hello from a"
        assert m["from"] == ca.boundjid
        cb.send_message(mto=ca.boundjid, mbody="hello from b", mtype="chat")
        m = await ca.next_message(timeout=20)
        assert m["body"] == "hello from b" and m["from"] == cb.boundjid
        # in order, several at once
        for i in range(20):
            ca.send_message(mto=cb.boundjid, mbody=f"n{i}", mtype="chat")
        got = [(await cb.next_message())["body"] for _ in range(20)]
        assert got == [f"n{i}" for i in range(20)]
        # IQ ping to the remote server and to the remote user's full JID
        await ca.plugin["xep_0199"].ping(B, timeout=10)
        await cb.plugin["xep_0199"].ping(A, timeout=10)
        await ca.plugin["xep_0199"].ping(cb.boundjid, timeout=10)
        # an IQ the remote server does not handle: its error comes back across
        with pytest.raises(IqError) as info:
            iq = ca.make_iq_get(ito=B)
            iq.append(ET.Element("{urn:example:nothing}q"))
            await iq.send(timeout=10)
        assert info.value.iq["error"]["condition"] == "service-unavailable"


async def test_federation_sasl_external(pair_external):
    a, b = pair_external
    await exchange(a, b)
    assert auth_methods(a)[("out", B)] == "sasl-external"
    assert auth_methods(b)[("out", A)] == "sasl-external"
    assert auth_methods(a)[("in", B)] == "sasl-external"


async def test_federation_dialback_only(pair_dialback):
    a, b = pair_dialback
    await exchange(a, b)
    assert auth_methods(a)[("out", B)] == "dialback"
    assert auth_methods(b)[("out", A)] == "dialback"
    assert auth_methods(b)[("in", A)] == "dialback"


async def test_direct_tls_srv_preferred(tmp_path, dns, cas):
    ca = cas.cafile("one")
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), ca)
    b = await start_node(tmp_path, dns, B, cas.issue("one", B), ca, direct_tls=True)
    try:
        await a.adduser(f"alice@{A}")
        await b.adduser(f"bob@{B}")
        async with logged_in(a, f"alice@{A}") as ca_:
            await ca_.plugin["xep_0199"].ping(B, timeout=10)
        out = [s for s in a.s2s.sessions if s.direction == "out"][0]
        assert out.direct_tls and out.auth_method == "sasl-external"
        assert out.target.endswith(f":{b.s2s_tls_port}")
    finally:
        await a.stop()
        await b.stop()


async def test_secure_auth_refuses_untrusted_peer(tmp_path, dns, cas):
    """a requires valid certificates; b's is from a CA a does not trust: a's user gets
    remote-server-not-found, nothing is delivered."""
    a = await start_node(tmp_path, dns, A, cas.issue("ca-a", A), cas.cafile("ca-a"))
    b = await start_node(tmp_path, dns, B, cas.issue("ca-b", B), cas.cafile("ca-b"),
                         extra="s2s_secure_auth = false\n")
    try:
        await a.adduser(f"alice@{A}")
        await b.adduser(f"bob@{B}")
        async with logged_in(a, f"alice@{A}") as ca_, logged_in(b, f"bob@{B}") as cb:
            ca_.send_message(mto=f"bob@{B}", mbody="x", mtype="chat")
            err = await ca_.next_error(timeout=20)
            assert err["error"]["condition"] == "remote-server-not-found"
            assert cb.messages.empty()
    finally:
        await a.stop()
        await b.stop()


async def test_insecure_domain_exception(tmp_path, dns, cas):
    """s2s_secure_auth stays on, but b is listed in s2s_insecure_domains: dialback works."""
    a = await start_node(tmp_path, dns, A, cas.issue("ca-a", A), cas.cafile("ca-a"),
                         extra=f's2s_insecure_domains = {{ "{B}" }}\n')
    b = await start_node(tmp_path, dns, B, cas.issue("ca-b", B), cas.cafile("ca-b"),
                         extra=f's2s_insecure_domains = {{ "{A}" }}\n')
    try:
        await exchange(a, b)
        assert auth_methods(a)[("out", B)] == "dialback"
    finally:
        await a.stop()
        await b.stop()


async def test_unreachable_domain_bounces(tmp_path, dns, cas):
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), cas.cafile("one"))
    # nowhere.test: SRV to a port nobody listens on; gone.test: no DNS at all;
    # none.test: SRV target "." (no service)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    dns.srv("_xmpp-server._tcp.nowhere.test", "nowhere.test", dead_port)
    dns.a("nowhere.test")
    dns.srv("_xmpp-server._tcp.none.test", ".", 0)
    try:
        await a.adduser(f"alice@{A}")
        async with logged_in(a, f"alice@{A}") as c:
            for dom in ("nowhere.test", "gone.test", "none.test"):
                c.send_message(mto=f"x@{dom}", mbody="one", mtype="chat", )
                c.send_message(mto=f"y@{dom}", mbody="two", mtype="chat")
                errs = [await c.next_error(timeout=20) for _ in range(2)]
                assert {str(e["from"]) for e in errs} == {f"x@{dom}", f"y@{dom}"}
                assert all(e["error"]["condition"] == "remote-server-not-found" for e in errs)
            # an error stanza is never bounced
            c.send_message(mto="x@nowhere.test", mtype="error")
            await asyncio.sleep(1)
            assert c.errors.empty()
    finally:
        await a.stop()


async def test_spoofed_from_closes_the_stream(pair_external):
    """b's link to a is authenticated for (b.test → a.test) only: a stanza from another
    domain on it is a stream error (invalid-from), and nothing is delivered."""
    a, b = pair_external
    await a.adduser(f"alice@{A}")
    await b.adduser(f"bob@{B}")
    async with logged_in(a, f"alice@{A}") as ca_, logged_in(b, f"bob@{B}") as cb:
        cb.send_message(mto=f"alice@{A}", mbody="legit", mtype="chat")
        assert (await ca_.next_message(timeout=20))["body"] == "legit"
        link = b.s2s.links[(B, A)]
        spoof = ET.Element("{jabber:client}message", {"from": "mallory@evil.test", "to": f"alice@{A}",
                                                      "type": "chat"})
        ET.SubElement(spoof, "{jabber:client}body").text = "spoof"
        sess = link.session
        sess.send(spoof)
        for _ in range(50):
            if sess.closed:
                break
            await asyncio.sleep(0.1)
        assert sess.closed
        with pytest.raises(asyncio.TimeoutError):
            await ca_.next_message(timeout=1)

"""Every bad input gets its RFC 6120 answer, and never affects another connection."""
from __future__ import annotations

import asyncio
import base64

import pytest

from .clients import logged_in
from .rawclient import HEADER, Raw


async def error_of(srv, payload: str | bytes, *, header=True, to="xmppd.test") -> str:
    raw = await Raw.connect(srv.port)
    try:
        if header:
            await raw.open(to)
        raw.send(payload)
        return await raw.read_to_close()
    finally:
        raw.close()


async def test_not_well_formed(xmppd):
    out = await error_of(xmppd, "<message><body>x</bod></message>")
    assert "<not-well-formed" in out and "</stream:stream>" in out


@pytest.mark.parametrize("payload", [
    "<?foo bar?>",
    "<!-- a comment -->",
])
async def test_restricted_xml(xmppd, payload):
    out = await error_of(xmppd, payload)
    assert "<restricted-xml" in out


async def test_doctype_before_stream(xmppd):
    out = await error_of(xmppd, "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>"
                         + HEADER.format(to="xmppd.test")[21:], header=False)
    assert "<restricted-xml" in out


async def test_doctype_inside_stream_is_not_well_formed(xmppd):
    # a DOCTYPE can only stand in the prolog; inside the stream it is a syntax error
    out = await error_of(xmppd, "<!DOCTYPE foo>")
    assert "<not-well-formed" in out or "<restricted-xml" in out


async def test_entity_declaration_refused(xmppd):
    out = await error_of(xmppd, "<?xml version='1.0'?><!DOCTYPE s [<!ENTITY big 'x'>]>", header=False)
    assert "<restricted-xml" in out


async def test_stanza_too_large(xmppd):
    big = "<message><body>" + "x" * 300_000 + "</body></message>"
    out = await error_of(xmppd, big)
    assert "<policy-violation" in out


async def test_wrong_stream_namespace(xmppd):
    out = await error_of(xmppd, HEADER.format(to="xmppd.test").replace("jabber:client", "jabber:wrong"),
                         header=False)
    assert "<invalid-namespace" in out


async def test_unknown_host(xmppd):
    out = await error_of(xmppd, HEADER.format(to="nowhere.test"), header=False)
    assert "<host-unknown" in out
    # the stream header was sent before the error (RFC 6120 §4.9.1.2)
    assert out.index("<stream:stream") < out.index("<stream:error")


async def test_stanza_before_auth(xmppd):
    out = await error_of(xmppd, "<message to='x@xmppd.test'><body>hi</body></message>")
    assert "<not-authorized" in out


async def test_plain_refused_without_tls(xmppd):
    raw = await Raw.connect(xmppd.port)
    try:
        feats = await raw.open()
        assert "<starttls" in feats and "<required" in feats
        assert "PLAIN" not in feats and "mechanisms" not in feats
        cred = base64.b64encode(b"\0alice\0secret").decode()
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>")
        out = await raw.read_until(b"</failure>")
        assert "encryption-required" in out
    finally:
        raw.close()


async def test_bad_connection_does_not_affect_others(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test", "bob@xmppd.test") as (a, b):
        outs = await asyncio.gather(*(error_of(xmppd, "<a><b></a>") for _ in range(5)))
        assert all("not-well-formed" in o for o in outs)
        a.send_message(mto="bob@xmppd.test", mbody="still here", mtype="chat")
        msg = await b.next_message()
        assert msg["body"] == "still here"


async def test_negotiation_timeout(tmp_path, certs):
    from .conftest import start_server
    srv = await start_server(tmp_path, certs, extra="c2s_timeout = 1\n")
    try:
        raw = await Raw.connect(srv.port)
        try:
            await raw.open()
            out = await raw.read_to_close(timeout=5)   # no authentication: closed after 1 s
            assert "<connection-timeout" in out
        finally:
            raw.close()
    finally:
        await srv.server.stop()

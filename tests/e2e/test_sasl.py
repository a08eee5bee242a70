"""SASL on the wire: SCRAM with and without channel binding, PLAIN over TLS,
failures, and the order of mechanisms — driven by scramp's client over a raw stream."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import re

import pytest
from scramp import ScramClient

from .rawclient import Raw

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


async def tls_stream(srv) -> tuple[Raw, str]:
    raw = await Raw.connect(srv.port)
    await raw.open()
    await raw.starttls(srv.cafile)
    feats = await raw.open()
    return raw, feats


def mechanisms(feats: str) -> list[str]:
    """The classic profile's mechanisms (those of SASL2's <authentication/> are its own)."""
    m = re.search(r"<mechanisms[^>]*>(.*?)</mechanisms>", feats)
    return re.findall(r"<mechanism>([^<]+)</mechanism>", m.group(1)) if m else []


def end_point(raw: Raw) -> bytes:
    der = raw.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return hashlib.sha256(der).digest()  # trustme signs with SHA-256


async def scram(raw: Raw, mech: str, user: str, password: str, cb=None) -> str:
    client = ScramClient([mech], user, password, channel_binding=cb)
    first = base64.b64encode(client.get_client_first().encode()).decode()
    raw.send(f"<auth xmlns='{SASL}' mechanism='{mech}'>{first}</auth>")
    out = await raw.read_until(b">", timeout=10)
    if "/>" not in out:
        out += await raw.read_until(b">", timeout=10)
    m = re.search(r"<challenge[^>]*>([^<]*)</challenge>", out)
    if not m:
        return out
    client.set_server_first(base64.b64decode(m.group(1)).decode())
    final = base64.b64encode(client.get_client_final().encode()).decode()
    raw.send(f"<response xmlns='{SASL}'>{final}</response>")
    got = b""
    while not re.search(rb"<success[^>]*/>|</success>|</failure>", got):
        chunk = await asyncio.wait_for(raw.reader.read(4096), 10)
        if not chunk:
            break
        got += chunk
    text = got.decode()
    s = re.search(r"<success[^>]*>([^<]*)</success>", text)
    if s:
        client.set_server_final(base64.b64decode(s.group(1)).decode())  # verifies the server
    return text


async def test_mechanisms_offered_after_tls(xmppd):
    raw, feats = await tls_stream(xmppd)
    try:
        assert mechanisms(feats) == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                     "SCRAM-SHA-1", "PLAIN"]
        assert "tls-server-end-point" in feats  # XEP-0440
    finally:
        raw.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
async def test_scram_success(xmppd, mech):
    await xmppd.adduser("alice@xmppd.test", "pencil")
    raw, _ = await tls_stream(xmppd)
    try:
        cb = ("tls-server-end-point", end_point(raw)) if mech.endswith("-PLUS") else None
        out = await scram(raw, mech, "alice", "pencil", cb)
        assert "<success" in out, out
    finally:
        raw.close()


async def test_scram_plus_with_wrong_binding_fails(xmppd):
    await xmppd.adduser("alice@xmppd.test", "pencil")
    raw, _ = await tls_stream(xmppd)
    try:
        out = await scram(raw, "SCRAM-SHA-256-PLUS", "alice", "pencil", ("tls-server-end-point", b"\0" * 32))
        assert "<not-authorized" in out
    finally:
        raw.close()


async def test_scram_wrong_password(xmppd):
    await xmppd.adduser("alice@xmppd.test", "pencil")
    raw, _ = await tls_stream(xmppd)
    try:
        out = await scram(raw, "SCRAM-SHA-256", "alice", "eraser")
        assert "<not-authorized" in out
        # the stream survives a failure: the client may try again
        out = await scram(raw, "SCRAM-SHA-256", "alice", "pencil")
        assert "<success" in out
    finally:
        raw.close()


async def test_plain_over_tls(xmppd):
    await xmppd.adduser("alice@xmppd.test", "pencil")
    raw, _ = await tls_stream(xmppd)
    try:
        bad = base64.b64encode(b"\0alice\0nope").decode()
        raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{bad}</auth>")
        assert "<not-authorized" in await raw.read_until(b"</failure>")
        good = base64.b64encode(b"\0alice\0pencil").decode()
        raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{good}</auth>")
        assert "<success" in await raw.read_until(b">")
        # a new stream, then bind
        feats = await raw.open()
        assert "urn:ietf:params:xml:ns:xmpp-bind" in feats
        raw.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>raw</resource></bind></iq>")
        out = await raw.read_until(b"</iq>")
        assert "<jid>alice@xmppd.test/raw</jid>" in out
        # whitespace keepalives are fine; an IQ result to the server gets no answer,
        # an unknown IQ gets service-unavailable
        raw.send("   \n ")
        raw.send("<iq type='result' id='r1' to='xmppd.test'/>")
        raw.send("<iq type='get' id='u1' to='xmppd.test'><query xmlns='urn:example:nope'/></iq>")
        out = await raw.read_until(b"</iq>")
        assert "id='u1'" in out and "service-unavailable" in out and "id='r1'" not in out
    finally:
        raw.close()


async def test_unknown_mechanism(xmppd):
    raw, _ = await tls_stream(xmppd)
    try:
        raw.send(f"<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>")
        assert "<invalid-mechanism" in await raw.read_until(b"</failure>")
    finally:
        raw.close()

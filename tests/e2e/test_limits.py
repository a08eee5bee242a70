"""Limits on a real server: connections per address, the read rate, and failed
logins across connections (``limits``, ``c2s_max_auth_failures``)."""
from __future__ import annotations

import asyncio
import base64
import time

from .conftest import start_server
from .rawclient import Raw
from .test_sasl import SASL, tls_stream


async def test_unauthenticated_connections_per_address_are_capped(tmp_path, certs):
    srv = await start_server(tmp_path, certs,
                             'limits = { c2s = { unauthenticated_per_address = 3 } }\n')
    raws = []
    try:
        for _ in range(3):
            r = await Raw.connect(srv.port)
            raws.append(r)
            assert "<starttls" in await r.open()
        extra = await Raw.connect(srv.port)
        raws.append(extra)
        out = await extra.read_to_close()
        assert "<policy-violation" in out and "not logged in" in out
        # one of the first three leaves: there is room again
        raws[0].close()
        await asyncio.sleep(0.2)
        again = await Raw.connect(srv.port)
        raws.append(again)
        assert "<starttls" in await again.open()
    finally:
        for r in raws:
            r.close()
        await srv.server.stop()


async def test_a_flooding_client_is_slowed_down_not_dropped(tmp_path, certs):
    """At 20 kB/s with a one-second burst, 80 kB of pings cannot be answered in
    less than three seconds; all of them are answered, on the same stream."""
    srv = await start_server(tmp_path, certs,
                             'limits = { c2s = { rate = "20kb/s"; burst = "1s" } }\n')
    await srv.adduser("alice@xmppd.test", "pw")
    raw, _ = await tls_stream(srv)
    try:
        plain = base64.b64encode(b"\0alice\0pw").decode()
        raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>")
        assert "<success" in await raw.read_until(b"/>")
        await raw.open()
        raw.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        await raw.read_until(b"</iq>")
        ping = "<iq type='get' id='p{}' to='xmppd.test'><ping xmlns='urn:xmpp:ping'/></iq>"
        count = 1100
        payload = "".join(ping.format(i) for i in range(count))
        assert len(payload) > 80_000
        t0 = time.monotonic()
        raw.send(payload)
        got = await raw.read_until(f"id='p{count - 1}'".encode(), timeout=30)
        elapsed = time.monotonic() - t0
        assert got.count("type='result'") >= count - 1
        assert elapsed >= 2.5, f"80 kB at 20 kB/s (1 s burst) took only {elapsed:.2f}s"
    finally:
        raw.close()
        await srv.server.stop()


async def test_failed_logins_across_connections_ban_the_address(tmp_path, certs):
    srv = await start_server(tmp_path, certs, "c2s_max_auth_failures = 3\n")
    await srv.adduser("alice@xmppd.test", "right")
    bad = base64.b64encode(b"\0alice\0wrong").decode()
    good = base64.b64encode(b"\0alice\0right").decode()
    try:
        delays = []
        for _ in range(3):
            raw, _ = await tls_stream(srv)   # a fresh connection each time
            t0 = time.monotonic()
            raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{bad}</auth>")
            assert "<not-authorized" in await raw.read_until(b"</failure>")
            delays.append(time.monotonic() - t0)
            raw.close()
        assert delays[2] >= 0.5   # the third failure in a row waits 0.5 s
        # now even the right password is refused from this address, for a while
        raw, _ = await tls_stream(srv)
        raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{good}</auth>")
        out = await raw.read_until(b"</failure>", timeout=20)
        assert "<temporary-auth-failure" in out and "too many failed logins" in out
        raw.close()
    finally:
        await srv.server.stop()

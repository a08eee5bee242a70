"""contrib/fail2ban: the real ``fail2ban-regex`` reads the real daemon's log after
real failed logins from several addresses (127.0.0.0/8 is all loopback) and finds
exactly the addresses that failed: not the one that logged in, not one that
aborted its own exchange, not an address written into a user name."""
from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess

import pytest

from tests.e2e.rawclient import Raw

from .conftest import DOMAIN, run_ctl
from .test_daemon import REPO

pytestmark = pytest.mark.external("fail2ban-regex")

FILTER = REPO / "contrib" / "fail2ban" / "filter.d" / "xmppd.conf"
JAIL = REPO / "contrib" / "fail2ban" / "jail.d" / "xmppd.conf"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


async def sasl_from(d, source: str, mechanism: str, first: str, then: str | None = None) -> str:
    """One SASL exchange over direct TLS from ``source``: ``first`` as the initial
    response, ``then`` (raw XML) after the server's first answer; returns the last answer."""
    ctx = ssl.create_default_context(cafile=d.cafile)
    r, w = await asyncio.open_connection("127.0.0.1", d.tls_port, ssl=ctx, server_hostname=DOMAIN,
                                         local_addr=(source, 0))
    raw = Raw(r, w)
    try:
        await raw.open(to=DOMAIN)
        raw.send(f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{b64(first)}</auth>")
        got = await answer(raw)
        if then is not None:
            raw.send(then)
            got = await answer(raw)
        return got
    finally:
        raw.close()


async def answer(raw: Raw) -> str:
    async def go():
        while not any(m in raw.buf for m in (b"</failure>", b"<success", b"</challenge>")):
            chunk = await raw.reader.read(65536)
            assert chunk, raw.buf
            raw.buf += chunk
    await asyncio.wait_for(go(), 20)
    out, raw.buf = raw.buf.decode(), b""
    return out


async def test_the_filter_finds_the_failed_logins(tmp_path, cert_files, start_daemon):
    if not shutil.which("fail2ban-regex"):
        pytest.skip("fail2ban-regex is not installed (apt-get install fail2ban)")
    from .conftest import write_tree
    log = tmp_path / "log" / "xmppd.log"
    cfg = write_tree(tmp_path, cert_files, extra=f'log = {{ info = "{log}"; "*console" }}\n')
    assert run_ctl("--config", str(cfg), "adduser", f"alice@{DOMAIN}", "--password-stdin",
                   input="right\n").returncode == 0
    d = start_daemon(cfg).wait_ready()

    for _ in range(3):      # a wrong password, three times
        assert "not-authorized" in await sasl_from(d, "127.0.0.2", "PLAIN", "\0alice\0wrong")
    # no such account
    assert "not-authorized" in await sasl_from(d, "127.0.0.3", "PLAIN", "\0nobody\0wrong")
    # the right password
    assert "<success" in await sasl_from(d, "127.0.0.4", "PLAIN", "\0alice\0right")
    # a user name that tries to put another address into the log line
    assert "</failure>" in await sasl_from(
        d, "127.0.0.5", "PLAIN", "\0x from 10.9.9.9 (not-authorized)\0wrong")
    # a client giving up its own exchange is no failed login
    got = await sasl_from(d, "127.0.0.6", "SCRAM-SHA-1", "n,,n=alice,r=abcdefghijklmnop",
                          then=f"<abort xmlns='{SASL}'/>")
    assert "<aborted/>" in got, got

    text = log.read_text()
    assert text.count("authentication failed for") == 5, text   # the abort is not one
    assert "authenticated as alice@xmppd.test" in text
    r = subprocess.run(["fail2ban-regex", "-o", "ip", str(log), str(FILTER)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(r.stdout.split()) == ["127.0.0.2"] * 3 + ["127.0.0.3", "127.0.0.5"], r.stdout
    # and the jail names that filter and the daemon's log
    jail = JAIL.read_text()
    assert "filter   = xmppd" in jail and "logpath  = /var/log/xmppd/xmppd.log" in jail

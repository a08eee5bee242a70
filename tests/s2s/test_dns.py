"""The s2s resolver and `check dns` against the local test DNS server."""
from __future__ import annotations

import pytest

from xmppd.cli.dns_check import check
from xmppd.net.dns import NoService, S2SResolver, order_srv, parse_nameserver


def test_parse_nameserver():
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:53") == ("::1", 53)
    assert parse_nameserver("::1") == ("::1", 53)
    with pytest.raises(ValueError):
        parse_nameserver("dns.example:53")


def test_order_srv_priority_first():
    recs = [(10, 0, 1, "c"), (5, 50, 2, "a"), (5, 50, 3, "b"), (20, 0, 4, "d")]
    out = order_srv(recs)
    assert {r[3] for r in out[:2]} == {"a", "b"} and [r[3] for r in out[2:]] == ["c", "d"]


async def test_targets_order_and_fallback(dns):
    dns.srv("_xmpp-server._tcp.s.test", "low.s.test", 5270, priority=10)
    dns.srv("_xmpp-server._tcp.s.test", "high.s.test", 5269, priority=5)
    dns.srv("_xmpps-server._tcp.s.test", "tls.s.test", 5270, priority=5)
    dns.a("high.s.test")
    r = S2SResolver([dns.spec])
    t = await r.targets("s.test")
    assert [(x.host, x.port, x.direct_tls) for x in t] == [
        ("tls.s.test", 5270, True), ("high.s.test", 5269, False), ("low.s.test", 5270, False)]
    assert await r.addresses("high.s.test") == ["127.0.0.1"]
    assert await r.addresses("low.s.test") == []
    # no SRV at all: the domain itself on 5269
    dns.a("plain.test")
    t = await r.targets("plain.test")
    assert [(x.host, x.port, x.srv) for x in t] == [("plain.test", 5269, False)]
    # "." = no service
    dns.srv("_xmpp-server._tcp.none.test", ".", 0)
    with pytest.raises(NoService):
        await r.targets("none.test")


async def test_check_dns(dns):
    dns.srv("_xmpp-client._tcp.good.test", "xmpp.good.test", 5222)
    dns.srv("_xmpp-server._tcp.good.test", "xmpp.good.test", 5269)
    dns.a("xmpp.good.test")
    lines, problems = await check("good.test", None, [dns.spec])
    assert problems == 0, lines
    dns.srv("_xmpp-server._tcp.bad.test", "xmpp.bad.test", 5270)
    lines, problems = await check("bad.test", None, [dns.spec])
    text = "\n".join(lines)
    assert problems == 3
    assert "_xmpp-client._tcp.bad.test: missing" in text
    assert "port 5270" in text or "no A/AAAA" in text


def test_xmppctl_check_dns(dns, tmp_path):
    """The admin's command: exit 0 when DNS is right, 1 with what to fix."""
    import subprocess
    import sys
    cfg = tmp_path / "xmppd.cfg.lua"
    cfg.write_text('VirtualHost "good.test"\nVirtualHost "bad.test"\n')
    dns.srv("_xmpp-client._tcp.good.test", "xmpp.good.test", 5222)
    dns.srv("_xmpp-server._tcp.good.test", "xmpp.good.test", 5269)
    dns.a("xmpp.good.test")

    def ctl(domain):
        return subprocess.run([sys.executable, "-m", "xmppd.cli.ctl", "--config", str(cfg), "check", "dns",
                               domain, "--nameserver", dns.spec], capture_output=True, text=True, timeout=60)
    r = ctl("good.test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "_xmpp-server._tcp.good.test" in r.stdout
    r = ctl("bad.test")
    assert r.returncode == 1
    assert "_xmpp-client._tcp.bad.test: missing" in r.stdout


def test_xmppctl_check_dns_options_anywhere_and_a_silent_nameserver(dns, tmp_path):
    """`check dns --nameserver X DOMAIN` works like `check dns DOMAIN --nameserver X`;
    a name server that never answers is said once, not after each record's timeout."""
    import socket
    import subprocess
    import sys
    cfg = tmp_path / "xmppd.cfg.lua"
    cfg.write_text('VirtualHost "good.test"\n')
    dns.srv("_xmpp-client._tcp.good.test", "xmpp.good.test", 5222)
    dns.srv("_xmpp-server._tcp.good.test", "xmpp.good.test", 5269)
    dns.a("xmpp.good.test")

    def ctl(*args):
        return subprocess.run([sys.executable, "-m", "xmppd.cli.ctl", "--config", str(cfg), "check",
                               *args], capture_output=True, text=True, timeout=60)
    r = ctl("dns", "--nameserver", dns.spec, "good.test")
    assert r.returncode == 0 and "DNS looks right." in r.stdout, r.stdout + r.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:   # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        r = ctl("dns", "--nameserver", f"127.0.0.1:{port}", "good.test")
    assert r.returncode == 1
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("  ")]
    assert lines == [f"  _xmpp-client._tcp.good.test: no answer from 127.0.0.1:{port} within 5 s; "
                     "is it running and reachable?"], r.stdout

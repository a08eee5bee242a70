"""External Service Discovery (XEP-0215): STUN/TURN servers for calls, with coturn-style
time-limited credentials (turn_external) or fixed accounts (external_services)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import shutil
import socket
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
from slixmpp.exceptions import IqError

from xmppd.modules.external_services import prepare, rest_credentials

from .clients import logged_in
from .conftest import start_server

NS = "urn:xmpp:extdisco:2"


async def ask(c, payload: str) -> list[dict]:
    iq = c.make_iq_get(ito="xmppd.test")
    iq.append(ET.fromstring(payload))
    res = await iq.send(timeout=10)
    el = res.xml[0]
    return [dict(s.attrib) for s in el]


@pytest.fixture
async def turn_server(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=(
        '    modules_enabled = { "disco", "turn_external", "external_services" }\n'
        '    turn_external_host = "turn-server.xmppd.test"\n'
        '    turn_external_secret = "s3cr3t"\n'
        '    turn_external_tcp = true\n'
        '    external_services = {\n'
        '        { type = "turn", transport = "udp", host = "relay.example.net", port = 3479,\n'
        '          username = "roland", password = "secret_password" };\n'
        '    }\n'))
    await s.adduser("alice@xmppd.test")
    yield s
    await s.server.stop()


async def test_turn_external_credentials_and_fixed_accounts(turn_server):
    async with logged_in(turn_server, "alice@xmppd.test", plugins=("xep_0030",)) as a:
        info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
        assert NS in info["disco_info"]["features"]
        before = time.time()
        services = await ask(a, f"<services xmlns='{NS}'/>")
        kinds = sorted((s["type"], s["transport"], s["host"]) for s in services)
        assert kinds == [("stun", "tcp", "turn-server.xmppd.test"), ("stun", "udp", "turn-server.xmppd.test"),
                         ("turn", "tcp", "turn-server.xmppd.test"), ("turn", "udp", "relay.example.net"),
                         ("turn", "udp", "turn-server.xmppd.test")]
        for s in services:
            if s["type"] == "stun":
                assert s["port"] == "3478" and "username" not in s and "restricted" not in s
            elif s["host"] == "relay.example.net":
                assert (s["username"], s["password"], s["port"], s["restricted"]) == \
                    ("roland", "secret_password", "3479", "1")
            else:
                # what coturn with use-auth-secret / static-auth-secret=s3cr3t accepts
                expires = int(s["username"])
                assert before + 86400 - 5 <= expires <= time.time() + 86400 + 5
                want = base64.b64encode(hmac.digest(b"s3cr3t", s["username"].encode(), hashlib.sha1)).decode()
                assert s["password"] == want and s["restricted"] == "1"
                stamp = datetime.strptime(s["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                assert int(stamp.timestamp()) == expires
        # only one type
        turns = await ask(a, f"<services xmlns='{NS}' type='stun'/>")
        assert {s["type"] for s in turns} == {"stun"} and len(turns) == 2
        # credentials for one restricted service
        creds = await ask(a, f"<credentials xmlns='{NS}'><service type='turn' host='relay.example.net'/>"
                             f"</credentials>")
        assert [(c["username"], c["password"]) for c in creds] == [("roland", "secret_password")]
        # the older namespace is answered too
        old = await ask(a, "<services xmlns='urn:xmpp:extdisco:1'/>")
        assert len(old) == 5


async def test_no_secret_announces_nothing(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=(
        '    modules_enabled = { "disco", "turn_external" }\n'))
    try:
        await s.adduser("alice@xmppd.test")
        async with logged_in(s, "alice@xmppd.test") as a:
            assert await ask(a, f"<services xmlns='{NS}'/>") == []
    finally:
        await s.server.stop()


def test_rest_credentials_and_prepare():
    user, password, expires = rest_credentials("k", 600, "roland", now=1_700_000_000)
    assert (user, expires) == ("1700000600:roland", 1_700_000_600)
    assert password == base64.b64encode(hmac.digest(b"k", user.encode(), hashlib.sha1)).decode()
    kw = dict(host="xmppd.test", port=None, secret="dflt", ttl=100, now=1_700_000_000)
    assert prepare({"type": "stun"}, **kw) == {"type": "stun", "host": "xmppd.test"}
    assert prepare({"type": "ftp"}, **kw) is None and prepare("turn", **kw) is None
    srv = prepare({"type": "turn", "secret": True, "port": 3478}, **kw)
    assert srv["username"] == "1700000100" and srv["expires"] == "2023-11-14T22:15:00Z"
    assert srv["restricted"] == "1" and srv["port"] == "3478"
    assert prepare({"type": "turn", "restricted": True}, **kw)["restricted"] == "1"


async def test_only_local_client_sessions_are_answered(tmp_path, certs):
    """A request that does not come from a user's own client session (here: a real
    XEP-0114 component asking the host) is refused with forbidden."""
    from .test_component import COMPONENT, GLOBAL, connect_component
    s = await start_server(tmp_path, certs, extra=GLOBAL, host_extra=(
        '    modules_enabled = { "turn_external" }\n'
        '    turn_external_secret = "s3cr3t"\n') + COMPONENT)
    try:
        gw = await connect_component(s)
        try:
            iq = gw.make_iq_get(ito="xmppd.test", ifrom="bot@gw.xmppd.test")
            iq.append(ET.fromstring(f"<services xmlns='{NS}'/>"))
            with pytest.raises(IqError) as info:
                await iq.send(timeout=10)
            # read the XML: slixmpp's ComponentXMPP looks for <error/> in jabber:client,
            # while on a component stream it is (correctly) in jabber:component:accept
            err = info.value.iq.xml.find("{jabber:component:accept}error")
            assert err is not None and err.get("type") == "auth"
            assert err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None
        finally:
            gw.disconnect()
    finally:
        await s.server.stop()


# -- the credentials work on a real coturn (Debian's), with a minimal TURN client ------

STUN_COOKIE = 0x2112A442


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _attrs(msg: bytes) -> dict[int, bytes]:
    out, i = {}, 20
    while i + 4 <= len(msg):
        kind, n = struct.unpack("!HH", msg[i:i + 4])
        out.setdefault(kind, msg[i + 4:i + 4 + n])
        i += 4 + n + (-n % 4)
    return out


def turn_allocate(port: int, username: str | None = None, password: str | None = None,
                  timeout: float = 5) -> tuple[int, dict]:
    """RFC 5766 Allocate over UDP; with credentials, the long-term mechanism (RFC 5389
    §10.2): the first answer is 401 with REALM and NONCE, the second is the verdict.
    Returns (STUN message type, attributes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)

    def request(extra: bytes, key: bytes | None) -> tuple[int, dict]:
        txid = os.urandom(12)
        body = _attr(0x0019, b"\x11\0\0\0") + extra          # REQUESTED-TRANSPORT: UDP
        if key is not None:                                   # MESSAGE-INTEGRITY
            head = struct.pack("!HHI", 0x0003, len(body) + 24, STUN_COOKIE) + txid
            body += _attr(0x0008, hmac.digest(key, head + body, hashlib.sha1))
        sock.sendto(struct.pack("!HHI", 0x0003, len(body), STUN_COOKIE) + txid + body,
                    ("127.0.0.1", port))
        data = sock.recv(2048)
        assert data[8:20] == txid
        return struct.unpack("!H", data[:2])[0], _attrs(data)
    try:
        kind, attrs = request(b"", None)
        if username is None or kind != 0x0113:
            return kind, attrs
        realm, nonce = attrs[0x0014], attrs[0x0015]
        key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
        extra = _attr(0x0006, username.encode()) + _attr(0x0014, realm) + _attr(0x0015, nonce)
        return request(extra, key)
    finally:
        sock.close()


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def coturn(tmp_path):
    exe = shutil.which("turnserver")
    if exe is None:
        pytest.skip("coturn is not installed (apt-get install coturn)")
    port = _udp_port()
    relay = 40000 + port % 20000
    out = open(tmp_path / "turn.log", "wb")
    proc = subprocess.Popen(
        [exe, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
         f"--min-port={relay}", f"--max-port={relay + 20}", "--use-auth-secret",
         "--static-auth-secret=s3cr3t", "--realm=xmppd.test", "--no-tls", "--no-dtls", "--no-cli",
         f"--userdb={tmp_path}/turndb", f"--pidfile={tmp_path}/turn.pid", "--log-file=stdout",
         "--simple-log", "--no-stun-backward-compatibility"],
        stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:   # ready when it answers an unauthenticated Allocate (401)
            try:
                # a short wait: a probe sent before coturn listens is lost, not refused
                if turn_allocate(port, timeout=0.3)[0] == 0x0113:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not start: {(tmp_path / 'turn.log').read_bytes()[-2000:]!r}")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@pytest.mark.external("coturn")
async def test_coturn_accepts_the_credentials(tmp_path, certs, coturn):
    s = await start_server(tmp_path, certs, host_extra=(
        '    modules_enabled = { "turn_external" }\n'
        '    turn_external_host = "127.0.0.1"\n'
        f'    turn_external_port = {coturn}\n'
        '    turn_external_secret = "s3cr3t"\n'))
    try:
        await s.adduser("alice@xmppd.test")
        async with logged_in(s, "alice@xmppd.test") as a:
            [turn] = await ask(a, f"<services xmlns='{NS}' type='turn'/>")
        assert turn["port"] == str(coturn)
        kind, attrs = await asyncio.to_thread(turn_allocate, coturn, turn["username"], turn["password"])
        assert kind == 0x0103, attrs.get(0x0009)            # Allocate success
        assert 0x0016 in attrs                              # with a relayed address
        kind, attrs = await asyncio.to_thread(turn_allocate, coturn, turn["username"], "not-the-password")
        assert kind == 0x0113 and attrs[0x0009][2:4] == b"\x04\x01"   # 401 Unauthorized
    finally:
        await s.server.stop()

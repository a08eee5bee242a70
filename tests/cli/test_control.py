"""``xmppctl`` acting on the running ``xmppd`` through its control socket: xmppd
as a real subprocess, xmppctl in-process (the real program for adduser, which reads
standard input, and for trace), clients are slixmpp."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import time

import trustme
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.clients import TIMEOUT, slix_close, slix_connect

from .conftest import DOMAIN, ctl_async, write_tree

MUC = f"conference.{DOMAIN}"
MUC_USER = "http://jabber.org/protocol/muc#user"


def ctl_in(cfg):
    async def run(*args: str, input: str | None = None):
        return await ctl_async("--config", str(cfg), *args, input=input)
    return run


async def adduser(ctl, name: str) -> str:
    jid = f"{name}@{DOMAIN}"
    r = await ctl("adduser", jid, "--password-stdin", input="pw\n")
    assert r.returncode == 0, r.stderr
    return jid


def sock_of(tmp_path):
    return tmp_path / "var" / "xmppd.sock"


async def wait_for(pred, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_status_c2s_s2s_kick(tmp_path, cfg, start_daemon):
    ctl = ctl_in(cfg)
    sock = sock_of(tmp_path)
    r = await ctl("status")
    assert r.returncode == 1
    assert r.stderr.strip() == f"xmppctl: xmppd is not running (no control socket at {sock})"
    d = start_daemon(cfg).wait_ready()
    await wait_for(sock.exists)
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()

    alice = await adduser(ctl, "alice")
    c = await slix_connect(d, alice, "pw")
    try:
        r = await ctl("status")
        assert r.returncode == 0, r.stderr
        assert f"xmppd 0.1.0 is running (pid {d.proc.pid})" in r.stdout
        assert f"hosts: {DOMAIN}" in r.stdout and "client sessions: 1" in r.stdout
        assert "server connections: 0" in r.stdout
        r = await ctl("c2s")
        assert r.returncode == 0, r.stderr
        jid, ip, tls, sm = r.stdout.strip().split("\t")
        assert (jid, ip.split(":")[0], tls, sm) == (str(c.boundjid), "127.0.0.1", "TLS", "-")
        r = await ctl("c2s", "--json")
        assert json.loads(r.stdout)[0]["jid"] == str(c.boundjid)
        r = await ctl("s2s")
        assert (r.returncode, r.stdout.strip()) == (0, "no server-to-server connections")
        assert json.loads((await ctl("s2s", "--json")).stdout) == []

        # kick: a stream error, the connection closes
        closed = c.disconnected  # (slixmpp makes a new future once it is done)
        r = await ctl("kick", alice, "--reason", "maintenance")
        assert (r.returncode, r.stdout.strip()) == (0, f"disconnected {c.boundjid}"), r.stderr
        await asyncio.wait_for(closed, TIMEOUT)
        assert [(e["condition"], e["text"]) for e in c.stream_errors] == \
            [("policy-violation", "maintenance")]
        r = await ctl("kick", alice)
        assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no session of {alice}")
        r = await ctl("kick", f"bob@{DOMAIN}.invalid")
        assert r.returncode == 1 and "is not a VirtualHost of the running xmppd" in r.stderr
    finally:
        await slix_close(c)

    # a crash leaves the socket file behind: the next start replaces it
    d.proc.send_signal(signal.SIGKILL)
    d.wait()
    assert sock.exists()
    assert (await ctl("status")).returncode == 1
    d2 = start_daemon(cfg).wait_ready()
    await wait_for(lambda: "control socket at" in d2.output())
    assert "removing the stale control socket" in d2.output()
    assert (await ctl("status")).returncode == 0
    # a clean stop removes it
    d2.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(d2.wait) == 0
    assert not sock.exists()


async def test_deluser_on_the_running_server(tmp_path, cfg, start_daemon):
    ctl = ctl_in(cfg)
    alice, bob = await adduser(ctl, "alice"), await adduser(ctl, "bob")
    d = start_daemon(cfg).wait_ready()
    a = await slix_connect(d, alice, "pw")
    b = await slix_connect(d, bob, "pw")
    try:
        await a.get_roster()
        await a.update_roster(bob, name="Bob")
        assert bob in a.client_roster
        pushes: asyncio.Queue = asyncio.Queue()
        a.add_event_handler("roster_update", pushes.put_nowait)
        closed = b.disconnected
        r = await ctl("deluser", bob)
        assert r.returncode == 0, r.stderr
        assert f"deleted {bob}" in r.stdout
        assert "on the running xmppd: 1 session(s) closed" in r.stdout
        # bob's session is closed with a stream error...
        await asyncio.wait_for(closed, TIMEOUT)
        assert [e["condition"] for e in b.stream_errors] == ["not-authorized"]
        # ...and alice's roster forgets him (a push with subscription="remove")
        while True:
            iq = await asyncio.wait_for(pushes.get(), TIMEOUT)
            items = iq["roster"]["items"]
            if bob in items and items[bob]["subscription"] == "remove":
                break
        r = await ctl("deluser", bob)
        assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: user {bob} does not exist")
    finally:
        await slix_close(a, b)
    # not running: the storage, and it says so
    d.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait) == 0
    r = await ctl("deluser", alice)
    assert r.returncode == 0, r.stderr
    assert "xmppd is not running: deleted from the storage" in r.stdout


def _issue(ca: trustme.CA, crt, key) -> None:
    cert = ca.issue_cert(DOMAIN, f"*.{DOMAIN}")
    cert.private_key_pem.write_to_path(str(key))
    cert.cert_chain_pems[0].write_to_path(str(crt))


async def test_reload_certificates_and_config(tmp_path, cert_files, start_daemon):
    certs = tmp_path / "certs"
    certs.mkdir()
    files = {"crt": str(certs / f"{DOMAIN}.crt"), "key": str(certs / f"{DOMAIN}.key")}
    shutil.copy(cert_files["crt"], files["crt"])
    shutil.copy(cert_files["key"], files["key"])
    cfg = write_tree(tmp_path, files)
    ctl = ctl_in(cfg)
    alice = await adduser(ctl, "alice")
    d = start_daemon(cfg).wait_ready()
    c = await slix_connect(d, alice, "pw", send_presence=False)  # trusts the first CA
    await slix_close(c)

    # certbot renews: new files at the same paths (here from another CA)
    renewed = trustme.CA()
    _issue(renewed, files["crt"], files["key"])
    renewed.cert_pem.write_to_path(str(tmp_path / "renewed-ca.pem"))
    r = await ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"certificate for {DOMAIN}: reloaded ({files['crt']}, valid until " in r.stdout
    assert "configuration: unchanged" in r.stdout
    d.cafile = str(tmp_path / "renewed-ca.pem")  # new connections see the new certificate
    c = await slix_connect(d, alice, "pw", send_presence=False)              # STARTTLS
    c2 = await slix_connect(d, alice, "pw", send_presence=False, direct_tls=True)
    await slix_close(c, c2)
    r = await ctl("reload")
    assert f"certificate for {DOMAIN}: unchanged" in r.stdout

    # a broken renewal (key and certificate do not match) keeps the old pair
    other = trustme.CA().issue_cert(DOMAIN)
    other.cert_chain_pems[0].write_to_path(files["crt"])
    # and a configuration change is applied
    cfg.write_text(cfg.read_text().replace('log = {', 'c2s_timeout = 30\nlog = {'))
    r = await ctl("reload")
    assert r.returncode == 1
    assert f"certificate for {DOMAIN}: NOT reloaded, the old one stays: " in r.stdout
    assert f"  option c2s_timeout added ({cfg}:" in r.stdout
    assert "applied: limits applied to new connections" in r.stdout
    c = await slix_connect(d, alice, "pw", send_presence=False)
    await slix_close(c)

    # SIGHUP does the same, into the log
    d.proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: "reload done: " in d.output())
    assert "not reloaded" in d.output()
    assert (await ctl("status")).returncode == 0


async def test_muc_destroy_live_room(tmp_path, cert_files, start_daemon):
    cfg = write_tree(tmp_path, cert_files, extra=f'Component "{MUC}" "muc"\n')
    ctl = ctl_in(cfg)
    alice = await adduser(ctl, "alice")
    d = start_daemon(cfg).wait_ready()
    a = await slix_connect(d, alice, "pw", plugins=("xep_0030", "xep_0045"))
    try:
        destroyed: asyncio.Queue = asyncio.Queue()
        a.register_handler(Callback("destroy", MatchXPath(
            f"{{jabber:client}}presence/{{{MUC_USER}}}x/{{{MUC_USER}}}destroy"), destroyed.put_nowait))
        await a.plugin["xep_0045"].join_muc_wait(f"lobby@{MUC}", "Alice", maxstanzas=0,
                                                 timeout=TIMEOUT)
        r = await ctl("muc", "destroy", f"lobby@{MUC}", "moved to #general")
        assert r.returncode == 0, r.stderr
        assert f"destroyed lobby@{MUC} and its archive (moved to #general)" in r.stdout
        assert "1 occupant(s) told" in r.stdout
        p = await asyncio.wait_for(destroyed.get(), TIMEOUT)
        assert p["type"] == "unavailable"
        reason = p.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}destroy/{{{MUC_USER}}}reason")
        assert reason is not None and reason.text == "moved to #general"
        r = await ctl("muc", "destroy", f"lobby@{MUC}")
        assert (r.returncode, r.stderr.strip()) == (1, f"xmppctl: no room lobby@{MUC}")
    finally:
        await slix_close(a)


async def _create_room(client, room: str, nick: str, **config) -> None:
    """Join (creating the room) and submit its configuration form."""
    muc = client.plugin["xep_0045"]
    await muc.join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)
    await muc.get_room_config(room, timeout=TIMEOUT)
    form = client.plugin["xep_0004"].make_form("submit")
    for var, value in config.items():
        form.add_field(var=var, value=value)
    await muc.set_room_config(room, form, timeout=TIMEOUT)


async def test_muc_list_live_rooms_then_stored_ones(tmp_path, cert_files, start_daemon):
    cfg = write_tree(tmp_path, cert_files, extra=f'Component "{MUC}" "muc"\n')
    ctl = ctl_in(cfg)
    alice, bob = await adduser(ctl, "alice"), await adduser(ctl, "bob")
    d = start_daemon(cfg).wait_ready()
    plugins = ("xep_0004", "xep_0030", "xep_0045")
    a = await slix_connect(d, alice, "pw", plugins=plugins)
    b = await slix_connect(d, bob, "pw", plugins=plugins)
    try:
        r = await ctl("muc", "list", MUC)
        assert (r.returncode, r.stdout) == (0, f"no rooms on {MUC}\n"), r.stderr
        await _create_room(a, f"lobby@{MUC}", "Alice", **{
            "muc#roomconfig_persistentroom": True, "muc#roomconfig_publicroom": False,
            "muc#roomconfig_moderatedroom": True, "muc#roomconfig_passwordprotectedroom": True,
            "muc#roomconfig_roomsecret": "s3cret", "muc#roomconfig_roomname": "The Lobby"})
        await _create_room(b, f"chat@{MUC}", "Bob")          # temporary, public
        await a.plugin["xep_0045"].join_muc_wait(f"chat@{MUC}", "Alice", maxstanzas=0,
                                                 timeout=TIMEOUT)
        r = await ctl("muc", "list", MUC)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 2, r.stdout
        chat, lobby = (line.split("\t") for line in lines)
        assert chat[:4] == [f"chat@{MUC}", "temporary", "2 occupant(s)", "public"]
        assert chat[4].startswith("created 20") and chat[5] == f"owners={bob}"
        assert lobby[:4] == [f"lobby@{MUC}", "persistent", "1 occupant(s)", "hidden,password,moderated"]
        assert lobby[5:] == [f"owners={alice}", "The Lobby"]
        r = await ctl("muc", "list", MUC, "--json")
        rooms = {room["jid"]: room for room in json.loads(r.stdout)}
        assert rooms[f"chat@{MUC}"]["occupants"] == 2 and not rooms[f"chat@{MUC}"]["persistent"]
        assert rooms[f"lobby@{MUC}"]["password"] is True and "s3cret" not in r.stdout
        assert rooms[f"lobby@{MUC}"]["created"] > 0
    finally:
        await slix_close(a, b)
    # not running: the persistent rooms from the storage, and it says so
    d.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait) == 0
    r = await ctl("muc", "list", MUC)
    assert r.returncode == 0, r.stderr
    lobby, note = r.stdout.splitlines()
    assert lobby.split("\t")[:4] == [f"lobby@{MUC}", "persistent", "-", "hidden,password,moderated"]
    assert note == "(xmppd is not running: the persistent rooms in the storage)"


async def test_s2s_lists_a_live_link(tmp_path, ca, start_daemon):
    """Two daemons federating through the test DNS server: A's xmppctl s2s shows the link."""
    from tests.s2s.dnsserver import TestDNS
    from .conftest import free_port
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    dns = TestDNS().start()
    try:
        cfgs, ports = {}, {}
        for dom in ("a.test", "b.test"):
            root = tmp_path / dom
            root.mkdir()
            cert = ca.issue_cert(dom)
            cert.private_key_pem.write_to_path(str(root / "key.pem"))
            cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
            ports[dom] = free_port()
            dns.srv(f"_xmpp-server._tcp.{dom}", dom, ports[dom])
            dns.a(dom, "127.0.0.1")
            cfgs[dom] = root / "xmppd.cfg.lua"
            cfgs[dom].write_text(
                f'interfaces = {{ "127.0.0.1" }}\nc2s_ports = {{ {free_port()} }}\n'
                f's2s_ports = {{ {ports[dom]} }}\ndata_path = "var"\n'
                f'dns_nameservers = {{ "{dns.spec}" }}\nssl = {{ cafile = "{cafile}" }}\n'
                f'modules_enabled = {{ "dialback", "ping", "disco" }}\n'
                f'VirtualHost "{dom}"\n'
                f'    ssl = {{ certificate = "{root}/cert.pem"; key = "{root}/key.pem"; '
                f'cafile = "{cafile}"; }}\n')
        ctl_a = ctl_in(cfgs["a.test"])
        jid = "alice@a.test"
        assert (await ctl_a("adduser", jid, "--password-stdin", input="pw\n")).returncode == 0
        da = start_daemon(cfgs["a.test"]).wait_ready()
        start_daemon(cfgs["b.test"]).wait_ready()
        da.cafile = str(cafile)
        c = await slix_connect(da, jid, "pw", send_presence=False, plugins=("xep_0199",))
        # a trace of the remote domain, started before any stream to it exists
        from .test_trace import Trace
        trace = await Trace.start(cfgs["a.test"], "b.test", "--json")
        try:
            assert trace.header.startswith("tracing b.test (remote domain): no session now")
            await c.plugin["xep_0199"].ping("b.test", timeout=TIMEOUT)
            seen: list = []
            await trace.until(lambda line: line["type"] == "stanza" and line["direction"] == "in"
                              and "type='result'" in line["xml"], seen)
            streams = {(line["kind"], line["session"]) for line in seen if line["type"] == "session"}
            assert streams == {("s2sout", "a.test -> b.test"), ("s2sin", "a.test <- b.test")}
            (out,) = [line for line in seen if line["type"] == "stanza" and line["kind"] == "s2sout"]
            assert out["direction"] == "out" and out["xml"].startswith("<iq ") and "urn:xmpp:ping" in out["xml"]
            # from authentication on: no SASL EXTERNAL either way
            assert not any("xmpp-sasl" in line.get("xml", "") for line in seen), seen
            trace.proc.send_signal(signal.SIGINT)
            rc, _out, err = await trace.finish()
            assert rc == 0 and "trace of b.test ended (interrupted): " in err, err
        finally:
            trace.kill()
        try:
            r = await ctl_a("s2s")
            assert r.returncode == 0, r.stderr
            assert "out\ta.test -> b.test\tsasl-external\tTLS\tidle " in r.stdout, r.stdout
            r = await ctl_a("status")
            assert "server connections: " in r.stdout and "1 outgoing" in r.stdout
        finally:
            await slix_close(c)
    finally:
        dns.stop()


async def test_control_socket_path_too_long_is_logged_not_fatal(tmp_path, caplog):
    """A data_path too deep for a Unix socket must not keep the server down."""
    from xmppd.config import parse_config_text
    from xmppd.app import build_server
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    text = (f'interfaces = {{ "127.0.0.1" }}\nc2s_ports = {{ 0 }}\ns2s_ports = {{ 0 }}\n'
            f'data_path = "{deep}"\nVirtualHost "xmppd.test"\n')
    server = build_server(parse_config_text(text, filename=str(tmp_path / "x.cfg.lua")))
    await server.start()
    try:
        assert server.control is None and server.ports("c2s")
        assert "path too long for a Unix socket" in caplog.text
    finally:
        await server.stop()


async def test_status_shows_the_metrics(tmp_path, cert_files, start_daemon):
    """``xmppctl status`` shows the counters ``/metrics`` serves, read from the same
    registry: after a client's messages and pings, the two agree."""
    import aiohttp
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from .conftest import free_port
    http = free_port()
    cfg = write_tree(tmp_path, cert_files, extra=(
        f'modules_enabled = {{ "roster", "disco", "ping", "http_openmetrics" }}\n'
        f'http_ports = {{ {http} }}\nhttps_ports = {{ }}\n'
        f'Component "{MUC}" "muc"\n'))
    ctl = ctl_in(cfg)
    alice, bob = await adduser(ctl, "alice"), await adduser(ctl, "bob")
    d = start_daemon(cfg).wait_ready()
    await wait_for(sock_of(tmp_path).exists)
    a = await slix_connect(d, alice, "pw")
    b = await slix_connect(d, bob, "pw")
    try:
        for i in range(2):
            a.send_message(mto=b.boundjid, mbody=f"m{i}", mtype="chat")
        await a.plugin["xep_0199"].ping(DOMAIN, timeout=TIMEOUT)
        for _ in range(2):
            await b.next_message()
        r = await ctl("status")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "connections: 2 c2s, 0 c2s_direct_tls, 0 websocket, 0 bosh, 0 component, " \
               "0 s2s_in, 0 s2s_out" in lines
        assert f"bound resources: {DOMAIN} 2" in lines
        assert "remote domains: 0 incoming, 0 outgoing" in lines
        stanzas_in = next(x for x in lines if x.startswith("stanzas in: c2s "))
        storage = next(x for x in lines if x.startswith("storage (operations, mean time): "))
        assert "keyval.get " in storage and " ms" in storage
        process = next(x for x in lines if x.startswith("process: "))
        assert "MiB resident memory" in process and "s CPU" in process
        assert "file descriptors" in process
        # a module's own metric (MUC's rooms), in words
        assert f"Rooms of the MUC service (host {MUC}): 0" in lines

        data = json.loads((await ctl("status", "--json")).stdout)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{http}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
    finally:
        await slix_close(a, b)
    assert data["c2s"] == 2            # what status said before stays
    by_name = {f["name"]: f for f in data["metrics"]}
    received = {s["labels"]["stanza_kind"]: s["value"]
                for s in by_name["prosody_mod_measure_stanza_counts__received"]["samples"]
                if s["labels"]["session_type"] == "c2s"}
    # the readable line says what the JSON says...
    assert stanzas_in == (f"stanzas in: c2s {received['message']} message, "
                                        f"{received['presence']} presence, {received['iq']} iq")
    assert received["message"] == 2 and received["iq"] >= 1 and received["presence"] == 2
    # ... and /metrics, read after it with nothing sent in between, the same
    served = {s.labels["stanza_kind"]: s.value
              for f in text_string_to_metric_families(text)
              if f.name == "prosody_mod_measure_stanza_counts__received"
              for s in f.samples if s.labels["session_type"] == "c2s"}
    assert served == received

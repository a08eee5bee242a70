"""``http_openmetrics``: ``/metrics`` on the HTTP service, read by the Prometheus
client library's own OpenMetrics parser, while real clients (slixmpp) send
messages, presences and IQs; and who may read it (``openmetrics_allow_ips``,
``openmetrics_allow_cidr``, through ``trusted_proxies``)."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from xmppd.app import build_server
from xmppd.config import ConfigError, parse_config_text

from .clients import TIMEOUT, logged_in, round_trip, slix_close, slix_connect
from .conftest import DOMAIN, HTTP, OTHER, make_config, start_server

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
MODULES = 'modules_enabled = { "disco", "ping", "http_openmetrics" }\n'


async def get(srv, path="/metrics", *, headers=None, method="GET"):
    port = srv.server.ports("http")[0]
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"http://127.0.0.1:{port}{path}", headers=headers) as r:
            return r.status, r.headers.get("Content-Type"), await r.text()


async def scrape(srv, **kw) -> dict:
    """``{(sample name, frozenset of labels): value}``, parsed by prometheus_client."""
    status, ctype, body = await get(srv, **kw)
    assert (status, ctype) == (200, CONTENT_TYPE), body
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples[name, frozenset(labels.items())]


def stanzas(samples: dict, direction: str, kind: str, session_type: str = "c2s") -> float:
    name = f"prosody_mod_measure_stanza_counts__{'received' if direction == 'in' else 'sent'}_total"
    return value(samples, name, session_type=session_type, stanza_kind=kind)


@pytest.fixture
async def web(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP + MODULES)
    try:
        yield srv
    finally:
        await srv.server.stop()


async def test_counters_move_with_real_clients(web):
    alice, bob = await web.adduser(f"alice@{DOMAIN}"), await web.adduser(f"bob@{DOMAIN}")
    async with logged_in(web, alice, bob) as (a, b):
        await round_trip(a)
        await round_trip(b)
        before = await scrape(web)
        assert value(before, "xmppd_connections", listener="c2s") == 2
        assert value(before, "xmppd_connections", listener="c2s_direct_tls") == 0
        assert value(before, "xmppd_sessions", host=DOMAIN) == 2
        assert value(before, "xmppd_sessions", host=OTHER) == 0
        assert value(before, "prosody_mod_c2s__connections", host=DOMAIN, type="c2s",
                     ip_family="ipv4") == 2
        assert value(before, "prosody_mod_c2s__connections", host=DOMAIN, type="c2s",
                     ip_family="ipv6") == 0

        for i in range(3):
            a.send_message(mto=b.boundjid, mbody=f"m{i}", mtype="chat")
        for _ in range(2):
            a.send_presence(pto=b.boundjid, pstatus="here")
        for _ in range(4):
            await a.plugin["xep_0199"].ping(DOMAIN, timeout=TIMEOUT)
        assert [(await b.next_message())["body"] for _ in range(3)] == ["m0", "m1", "m2"]
        for _ in range(2):
            p = await asyncio.wait_for(b.presences.get(), TIMEOUT)
            assert p["from"] == a.boundjid and p["status"] == "here"
        after = await scrape(web)

    def delta(direction, kind):
        return stanzas(after, direction, kind) - stanzas(before, direction, kind)
    assert {(d, k): delta(d, k) for d in ("in", "out") for k in ("message", "presence", "iq")} == {
        ("in", "message"): 3, ("out", "message"): 3,        # alice -> server -> bob
        ("in", "presence"): 2, ("out", "presence"): 2,
        ("in", "iq"): 4, ("out", "iq"): 4,                  # pings and their results
    }
    for kind in ("message", "presence", "iq"):
        assert stanzas(after, "in", kind, "s2sin") == 0
        assert stanzas(after, "out", kind, "component") == 0
    # the logins read and wrote the database, and each operation was timed
    gets = value(after, "xmppd_storage_operation_duration_seconds_count", store_type="keyval",
                 operation="get")
    assert gets >= 2
    assert value(after, "xmppd_storage_operation_duration_seconds_bucket", store_type="keyval",
                 operation="get", le="+Inf") == gets
    assert value(after, "xmppd_storage_operation_duration_seconds_sum", store_type="keyval",
                 operation="get") > 0
    # the process
    assert value(after, "process_resident_memory_bytes") > 10 * 1024 * 1024
    assert value(after, "process_cpu_seconds_total") > 0
    assert 0 < value(after, "process_open_fds") <= value(after, "process_max_fds")
    assert value(after, "process_start_time_seconds") == round(web.server.started_at, 3)
    assert value(after, "xmppd_info", version=web.server.version) == 1
    assert value(after, "xmppd_s2s_remote_domains", direction="out") == 0


async def test_connections_by_listener(web):
    alice = await web.adduser(f"alice@{DOMAIN}")
    c = await slix_connect(web, alice, direct_tls=True)
    try:
        m = await scrape(web)
        assert value(m, "xmppd_connections", listener="c2s_direct_tls") == 1
        assert value(m, "xmppd_connections", listener="c2s") == 0
        assert value(m, "xmppd_sessions", host=DOMAIN) == 1
    finally:
        await slix_close(c)
    for _ in range(100):          # the server sees the connection go
        m = await scrape(web)
        if value(m, "xmppd_connections", listener="c2s_direct_tls") == 0:
            break
        await asyncio.sleep(0.05)
    assert value(m, "xmppd_sessions", host=DOMAIN) == 0
    assert value(m, "xmppd_connections", listener="c2s_direct_tls") == 0


async def test_any_host_name_and_methods(web):
    # two VirtualHosts serve HTTP here; /metrics is the server's, whatever the Host
    for host in (DOMAIN, OTHER, "localhost"):
        status, _, body = await get(web, headers={"Host": host})
        assert status == 200 and body.endswith("# EOF\n")
    # only /metrics is global: what no host is named for stays unknown
    status, _, _ = await get(web, "/.well-known/host-meta", headers={"Host": "localhost"})
    assert status == 404
    assert (await get(web, method="POST"))[0] == 405


async def test_allow_lists_and_trusted_proxies(tmp_path, certs):
    # loopback (where the scrape comes from) is not allowed here
    extra = HTTP + MODULES + ('openmetrics_allow_ips = { "192.0.2.1" }\n'
                              'openmetrics_allow_cidr = "198.51.100.0/24"\n')
    srv = await start_server(tmp_path, certs, extra=extra)
    try:
        status, ctype, body = await get(srv)
        assert (status, body) == (403, "Forbidden.\n")
        # 127.0.0.1 is a trusted proxy (the default): its X-Forwarded-For is the client
        for client, expected in (("192.0.2.1", 200), ("198.51.100.77", 200),
                                 ("203.0.113.5", 403), ("192.0.2.2", 403),
                                 ("2001:db8::1", 403)):
            status, _, _ = await get(srv, headers={"X-Forwarded-For": client})
            assert status == expected, client
    finally:
        await srv.server.stop()


async def test_default_allows_loopback_only(web):
    assert (await get(web))[0] == 200
    # a client the (trusted, loopback) proxy says is elsewhere is not loopback
    status, _, _ = await get(web, headers={"X-Forwarded-For": "203.0.113.5"})
    assert status == 403
    status, _, _ = await get(web, headers={"X-Forwarded-For": "::1"})
    assert status == 200


async def test_a_bad_network_is_a_config_error(tmp_path, certs):
    text = make_config(tmp_path, certs, HTTP + MODULES + 'openmetrics_allow_cidr = "192.168.0.0/33"\n')
    path = tmp_path / "xmppd.cfg.lua"
    path.write_text(text)
    s = build_server(parse_config_text(text, filename=str(path), base_dir=str(tmp_path)))
    try:
        with pytest.raises(ConfigError, match=r"xmppd\.cfg\.lua:\d+:\d+: openmetrics_allow_cidr: "
                           r"'192\.168\.0\.0/33' is not a network"):
            await s.start()
    finally:
        await s.stop()  # start() leaves the storage open when a module fails


async def test_websocket_and_component_connections(tmp_path, certs):
    """A WebSocket client is a c2s stream (its stanzas count as c2s) on a listener
    of its own; a component's stanzas count as ``component``."""
    from .test_component import COMPONENT, GLOBAL, connect_component
    from .test_websocket import ws_login
    srv = await start_server(tmp_path, certs, extra=HTTP + GLOBAL + (
        'modules_enabled = { "disco", "ping", "websocket", "http_openmetrics" }\n'),
        host_extra=COMPONENT)
    srv.https = srv.server.ports("https")[0]
    await srv.adduser(f"alice@{DOMAIN}")
    ws = await ws_login(srv, "alice")
    gw = await connect_component(srv)
    try:
        before = await scrape(srv)
        assert {k: value(before, "xmppd_connections", listener=k)
                for k in ("c2s", "websocket", "component", "bosh")} == {
            "c2s": 0, "websocket": 1, "component": 1, "bosh": 0}
        assert value(before, "prosody_mod_c2s__connections", host=DOMAIN, type="c2s",
                     ip_family="ipv4") == 1        # WebSocket included, as Prosody's
        await ws.send(f"<message xmlns='jabber:client' to='bot@gw.{DOMAIN}' type='chat' id='m1'>"
                      "<body>hi</body></message>")
        m = await asyncio.wait_for(gw.messages.get(), TIMEOUT)
        assert m["body"] == "hi" and m["from"] == ws.jid
        gw.send_message(mto=ws.jid, mfrom=f"bot@gw.{DOMAIN}", mbody="hello", mtype="chat")
        await ws.until(lambda e: e.tag == "{jabber:client}message")
        after = await scrape(srv)
        for direction, session_type in (("in", "c2s"), ("out", "component"),
                                        ("in", "component"), ("out", "c2s")):
            assert stanzas(after, direction, "message", session_type) - \
                stanzas(before, direction, "message", session_type) == 1, (direction, session_type)
    finally:
        gw.disconnect()
        await ws.close()
        await srv.server.stop()


async def test_the_global_route_leaves_the_single_serving_host_alone(tmp_path, certs):
    """One host serves WebSocket: a request under a name no host has still goes to
    it, whatever other hosts the global /metrics is on."""
    srv = await start_server(tmp_path, certs, extra=HTTP + MODULES,
                             host_extra='    modules_enabled = { "disco", "websocket" }\n')
    try:
        status, _, body = await get(srv, "/xmpp-websocket", headers={"Host": "localhost"})
        assert (status, body) == (200, "XMPP over WebSocket (RFC 7395) is served here.\n")
        assert (await get(srv, headers={"Host": "localhost"}))[0] == 200
        assert (await get(srv, "/nothing", headers={"Host": "localhost"}))[0] == 404
    finally:
        await srv.server.stop()

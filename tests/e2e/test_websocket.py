"""XMPP over WebSocket (RFC 7395) and the HTTP service under it, against the real
server: an aiohttp WebSocket client speaking the framing, next to slixmpp clients
over TCP."""
from __future__ import annotations

import asyncio
import json
import ssl
import xml.etree.ElementTree as ET

import aiohttp
import pytest

from .clients import slix_close, slix_connect
from .conftest import DOMAIN, HTTP, start_server
from .wsclient import FRAMING, STREAM, WSClient, client_ssl

MODULES = 'modules_enabled = { "disco", "ping", "websocket", "smacks", "carbons" }\n'


@pytest.fixture
async def web(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP, host_extra=MODULES)
    srv.https = srv.server.ports("https")[0]
    srv.http = srv.server.ports("http")[0]
    try:
        yield srv
    finally:
        await srv.server.stop()


def wss(srv, path="/xmpp-websocket"):
    return f"https://127.0.0.1:{srv.https}{path}"


async def ws_login(srv, user="alice", password="secret", **kw) -> WSClient:
    c = await WSClient.connect(wss(srv), DOMAIN, cafile=srv.cafile, **kw)
    try:
        await c.login(user, password)
    except BaseException:
        await c.close()
        raise
    return c


async def test_websocket_client_chats_with_a_tcp_client(web):
    await web.adduser(f"alice@{DOMAIN}")
    await web.adduser(f"bob@{DOMAIN}")
    alice = await ws_login(web)
    bob = await slix_connect(web, f"bob@{DOMAIN}")
    try:
        assert alice.jid == f"alice@{DOMAIN}/web"
        # the stream header is <open/> with the framing namespace, from the host
        assert alice.raw[0].startswith(f"<open xmlns='{FRAMING}'") and f"from='{DOMAIN}'" in alice.raw[0]
        await alice.send("<presence xmlns='jabber:client'/>")
        # TCP -> WebSocket
        bob.send_message(mto=alice.jid, mbody="hello from tcp")
        msg = await alice.until(lambda e: e.tag == "{jabber:client}message")
        assert msg.findtext("{jabber:client}body") == "hello from tcp"
        assert msg.get("from") == str(bob.boundjid)
        # WebSocket -> TCP
        await alice.send(f"<message xmlns='jabber:client' to='bob@{DOMAIN}' type='chat' id='m1'>"
                         "<body>hello from the web</body></message>")
        got = await asyncio.wait_for(bob.messages.get(), 10)
        assert got["body"] == "hello from the web" and got["from"] == alice.jid
        # an IQ answered by the server over the same framing
        await alice.send(f"<iq xmlns='jabber:client' type='get' id='p1' to='{DOMAIN}'>"
                         "<ping xmlns='urn:xmpp:ping'/></iq>")
        pong = await alice.until(lambda e: e.get("id") == "p1")
        assert pong.get("type") == "result"
        # every message was a document of its own, stanzas in jabber:client
        for text in alice.raw:
            el = ET.fromstring(text)
            assert el.tag.startswith(("{jabber:client}", "{%s}" % FRAMING, "{%s}" % STREAM,
                                      "{urn:ietf:params:xml:ns:xmpp-sasl}")), el.tag
        # <close/> is answered with <close/>
        await alice.send(f"<close xmlns='{FRAMING}'/>")
        closing = await alice.recv()
        assert closing.tag == f"{{{FRAMING}}}close"
    finally:
        await alice.close()
        await slix_close(bob)


async def test_wrong_password_and_unknown_host(web):
    await web.adduser(f"alice@{DOMAIN}")
    c = await WSClient.connect(wss(web), DOMAIN, cafile=web.cafile)
    try:
        with pytest.raises(PermissionError, match="not-authorized"):
            await c.login("alice", "wrong")
    finally:
        await c.close()
    c = await WSClient.connect(wss(web), DOMAIN, cafile=web.cafile)
    try:
        await c.send(f"<open xmlns='{FRAMING}' to='nowhere.test' version='1.0'/>")
        assert (await c.recv()).tag == f"{{{FRAMING}}}open"
        err = await c.recv()
        assert err.tag == f"{{{STREAM}}}error"
        assert err.find("{urn:ietf:params:xml:ns:xmpp-streams}host-unknown") is not None
        assert (await c.recv()).tag == f"{{{FRAMING}}}close"
    finally:
        await c.close()


async def test_stream_management_over_websocket(web):
    await web.adduser(f"alice@{DOMAIN}")
    alice = await ws_login(web)
    try:
        await alice.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        enabled = await alice.recv()
        assert enabled.tag == "{urn:xmpp:sm:3}enabled" and enabled.get("resume") == "true"
        await alice.send(f"<iq xmlns='jabber:client' type='get' id='p2' to='{DOMAIN}'>"
                         "<ping xmlns='urn:xmpp:ping'/></iq>")
        await alice.until(lambda e: e.get("id") == "p2")
        await alice.send("<r xmlns='urn:xmpp:sm:3'/>")
        a = await alice.until(lambda e: e.tag == "{urn:xmpp:sm:3}a")
        assert a.get("h") == "1"     # the ping: counted once handled
    finally:
        await alice.close()


async def test_refusals(web):
    ctx = client_ssl(web.cafile)
    async with aiohttp.ClientSession() as http:
        # a browser opening the URL gets a page, not an error
        async with http.get(wss(web), ssl=ctx, server_hostname=DOMAIN,
                            headers={"Host": DOMAIN}) as r:
            assert r.status == 200 and "WebSocket" in await r.text()
        # a WebSocket that does not speak the xmpp subprotocol: 501, as Prosody
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(wss(web), protocols=("chat",), ssl=ctx, server_hostname=DOMAIN,
                                  headers={"Host": DOMAIN})
        assert e.value.status == 501
        # a page from another site may not connect by default
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(wss(web), protocols=("xmpp",), ssl=ctx, server_hostname=DOMAIN,
                                  headers={"Host": DOMAIN, "Origin": "https://evil.example"})
        assert e.value.status == 403
        # ... one from the host's own name may
        ws = await http.ws_connect(wss(web), protocols=("xmpp",), ssl=ctx, server_hostname=DOMAIN,
                                   headers={"Host": DOMAIN, "Origin": f"https://{DOMAIN}"})
        # a binary frame ends the connection (RFC 7395 §3.2: text only)
        await ws.send_bytes(b"<open/>")
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1003
        await ws.close()
        # nothing is served for a name no host has
        async with http.get(wss(web), ssl=ctx, server_hostname=DOMAIN,
                            headers={"Host": "unknown.example"}) as r:
            # the only host serving HTTP answers for names no host claims
            assert r.status == 200
        async with http.get(f"https://127.0.0.1:{web.https}/nothing-here", ssl=ctx,
                            server_hostname=DOMAIN, headers={"Host": DOMAIN}) as r:
            assert r.status == 404


async def test_https_serves_each_hosts_certificate(web):
    ctx = client_ssl(web.cafile)      # verifies the name: xmppd.test's certificate
    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://127.0.0.1:{web.https}/.well-known/host-meta", ssl=ctx,
                            server_hostname=DOMAIN, headers={"Host": DOMAIN}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/xrd+xml")
            xrd = ET.fromstring(await r.text())
        async with http.get(f"https://127.0.0.1:{web.https}/.well-known/host-meta.json", ssl=ctx,
                            server_hostname=DOMAIN, headers={"Host": DOMAIN}) as r:
            links = json.loads(await r.text())["links"]
            assert r.headers["Access-Control-Allow-Origin"] == "*"
    href = f"wss://{DOMAIN}:{web.https}/xmpp-websocket"
    assert links == [{"rel": "urn:xmpp:alt-connections:websocket", "href": href}]
    link = xrd.find("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
    assert link.get("rel") == "urn:xmpp:alt-connections:websocket" and link.get("href") == href


async def test_plain_http_needs_a_proxy_or_consider_websocket_secure(web, tmp_path, certs):
    await web.adduser(f"alice@{DOMAIN}")
    url = f"http://127.0.0.1:{web.http}/xmpp-websocket"
    # plain HTTP, not from a proxy that says https: no way to log in (encryption required)
    c = await WSClient.connect(url, DOMAIN, headers={"X-Forwarded-Proto": "http"})
    try:
        _, features = await c.open()
        assert features.find("{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms") is None
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None  # no STARTTLS in HTTP
    finally:
        await c.close()
    # the proxy in front (a trusted_proxies address) terminated TLS and says so
    c = await WSClient.connect(url, DOMAIN, headers={"X-Forwarded-Proto": "https",
                                                     "X-Forwarded-For": "203.0.113.7"})
    try:
        assert await c.login("alice", "secret") == f"alice@{DOMAIN}/web"
        sess = next(s for s in web.server.c2s_sessions if s.full_jid == c.jid)
        assert sess.address == "203.0.113.7"     # limits and logs see the real client
    finally:
        await c.close()


async def test_consider_websocket_secure(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP + "trusted_proxies = { }\n",
                             host_extra=MODULES + "consider_websocket_secure = true\n")
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        c = await WSClient.connect(f"http://127.0.0.1:{srv.server.ports('http')[0]}/xmpp-websocket",
                                   DOMAIN)
        try:
            assert await c.login("alice", "secret") == f"alice@{DOMAIN}/web"
        finally:
            await c.close()
    finally:
        await srv.server.stop()


async def test_a_dropped_websocket_session_is_resumed(web):
    await web.adduser(f"alice@{DOMAIN}")
    await web.adduser(f"bob@{DOMAIN}")
    alice = await ws_login(web)
    bob = await slix_connect(web, f"bob@{DOMAIN}")
    try:
        await alice.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        enabled = await alice.recv()
        await alice.send("<presence xmlns='jabber:client'/>")
        # the connection drops without a goodbye (a phone changing networks)
        alice.ws._response.connection.transport.abort()
        await alice.http.close()
        for _ in range(100):
            sess = web.server.hosts[DOMAIN].sessions_of("alice").get("web")
            if sess is not None and sess.hibernating:
                break
            await asyncio.sleep(0.05)
        assert sess is not None and sess.hibernating
        bob.send_message(mto=f"alice@{DOMAIN}/web", mbody="while you were away", mtype="chat")
        await asyncio.sleep(0.3)
        # a new WebSocket resumes the session and gets what it missed
        c = await WSClient.connect(wss(web), DOMAIN, cafile=web.cafile)
        try:
            _, features = await c.open()
            import base64
            token = base64.b64encode(b"\0alice\0secret").decode()
            await c.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
            assert (await c.recv()).tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"
            await c.open()
            await c.send(f"<resume xmlns='urn:xmpp:sm:3' previd='{enabled.get('id')}' h='0'/>")
            resumed = await c.recv()
            assert resumed.tag == "{urn:xmpp:sm:3}resumed", ET.tostring(resumed)
            msg = await c.until(lambda e: e.tag == "{jabber:client}message")
            assert msg.findtext("{jabber:client}body") == "while you were away"
        finally:
            await c.close()
    finally:
        await slix_close(bob)


async def test_websocket_redirect_is_see_other_uri(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP, host_extra=MODULES + (
        'websocket_redirect = "wss://chat.example.net/xmpp-websocket"\n'))
    try:
        c = await WSClient.connect(f"https://127.0.0.1:{srv.server.ports('https')[0]}/xmpp-websocket",
                                   DOMAIN, cafile=srv.cafile)
        try:
            await c.send(f"<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>")
            assert (await c.recv()).tag == f"{{{FRAMING}}}open"
            close = await c.recv()
            assert close.tag == f"{{{FRAMING}}}close"
            assert close.get("see-other-uri") == "wss://chat.example.net/xmpp-websocket"
        finally:
            await c.close()
    finally:
        await srv.server.stop()

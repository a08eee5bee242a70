"""XMPP over BOSH (XEP-0124, XEP-0206) against the real server: a plain BOSH client
on aiohttp (requests, rids, holds, restarts) next to slixmpp clients over TCP."""
from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET

import aiohttp
import pytest

from .clients import slix_close, slix_connect
from .conftest import DOMAIN, HTTP, start_server
from .wsclient import client_ssl

NS = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
MODULES = 'modules_enabled = { "disco", "ping", "bosh", "smacks" }\n'


class BoshClient:
    def __init__(self, srv, http: aiohttp.ClientSession):
        self.url = f"https://127.0.0.1:{srv.server.ports('https')[0]}/http-bind"
        self.http = http
        self.ssl = client_ssl(srv.cafile)
        self.rid = 1000
        self.sid = None
        self.jid = None
        self.last_raw = None
        self.inbox: list[ET.Element] = []   # elements received, not yet looked at

    async def post(self, inner: str = "", rid: int | None = None, **attrs) -> ET.Element:
        if rid is None:
            self.rid += 1
            rid = self.rid
        a = {"rid": str(rid), **({"sid": self.sid} if self.sid else {}), **attrs}
        text = (f"<body xmlns='{NS}' xmlns:xmpp='{XBOSH}' "
                + " ".join(f"{k}='{v}'" for k, v in a.items()) + f">{inner}</body>")
        async with self.http.post(self.url, data=text, ssl=self.ssl, server_hostname=DOMAIN,
                                  headers={"Host": DOMAIN, "Content-Type": "text/xml"},
                                  timeout=aiohttp.ClientTimeout(total=30)) as r:
            self.last_raw = await r.text()
            self.status = r.status
            body = ET.fromstring(self.last_raw)
            self.inbox.extend(body)
            return body

    async def until(self, pred, polls: int = 20) -> ET.Element:
        """The first element matching ``pred`` among those received and not yet
        looked at (the responses so far, then those to the next polls)."""
        for _ in range(polls):
            while self.inbox:
                el = self.inbox.pop(0)
                if pred(el):
                    return el
            await self.post()
        raise AssertionError("never came")

    async def ask(self, inner: str, pred) -> ET.Element:
        await self.post(inner)
        return await self.until(pred)

    async def login(self, user="alice", password="secret", wait=5) -> str:
        body = await self.post(to=DOMAIN, wait=str(wait), hold="1", ver="1.6",
                               **{"xmpp:version": "1.0", "xml:lang": "en"})
        assert body.get("sid") and body.get("wait") == str(wait) and body.get("hold") == "1"
        assert body.get("from") == DOMAIN and body.get(f"{{{XBOSH}}}version") == "1.0"
        self.sid = body.get("sid")
        feats = body.find("{http://etherx.jabber.org/streams}features")
        if feats is None:
            feats = (await self.post()).find("{http://etherx.jabber.org/streams}features")
        mechs = [m.text for m in feats.iter(f"{{{SASL}}}mechanism")]
        assert "PLAIN" in mechs, mechs
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        got = await self.post(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        if not len(got):
            got = await self.post()
        if got[0].tag != f"{{{SASL}}}success":
            raise PermissionError(ET.tostring(got).decode())
        body = await self.post(**{"xmpp:restart": "true", "to": DOMAIN})
        if body.find("{http://etherx.jabber.org/streams}features") is None:
            body = await self.post()
        assert body.find(f"{{http://etherx.jabber.org/streams}}features/{{{BIND}}}bind") is not None
        res = await self.ask(f"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='{BIND}'>"
                             "<resource>bosh</resource></bind></iq>", lambda e: e.get("id") == "b1")
        self.jid = res.find(f"{{{BIND}}}bind/{{{BIND}}}jid").text
        self.inbox.clear()
        return self.jid


@pytest.fixture
async def bosh(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP, host_extra=MODULES)
    try:
        yield srv
    finally:
        await srv.server.stop()


async def test_bosh_client_chats_with_a_tcp_client(bosh):
    await bosh.adduser(f"alice@{DOMAIN}")
    await bosh.adduser(f"bob@{DOMAIN}")
    bob = await slix_connect(bosh, f"bob@{DOMAIN}")
    async with aiohttp.ClientSession() as http:
        c = BoshClient(bosh, http)
        try:
            assert await c.login(wait=1) == f"alice@{DOMAIN}/bosh"
            await c.post("<presence xmlns='jabber:client'/>")
            bob.send_message(mto=c.jid, mbody="hello from tcp")
            msg = await c.until(lambda e: e.tag == "{jabber:client}message")
            assert msg.findtext("{jabber:client}body") == "hello from tcp"
            await c.post(f"<message xmlns='jabber:client' to='bob@{DOMAIN}' type='chat'>"
                         "<body>hello from bosh</body></message>")
            got = await asyncio.wait_for(bob.messages.get(), 10)
            assert got["body"] == "hello from bosh" and got["from"] == c.jid
            # terminate: the session ends, the resource goes
            await c.post("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate")
            for _ in range(50):
                if not bosh.server.hosts[DOMAIN].sessions_of("alice"):
                    break
                await asyncio.sleep(0.05)
            assert not bosh.server.hosts[DOMAIN].sessions_of("alice")
            body = await c.post()
            assert body.get("type") == "terminate"
        finally:
            await slix_close(bob)


async def test_a_lost_response_is_given_again_and_rids_keep_order(bosh):
    await bosh.adduser(f"alice@{DOMAIN}")
    async with aiohttp.ClientSession() as http:
        c = BoshClient(bosh, http)
        await c.login(wait=2)
        pong = await c.ask(f"<iq xmlns='jabber:client' type='get' id='p1' to='{DOMAIN}'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>", lambda e: e.get("id") == "p1")
        first = c.last_raw
        # the response to that request was lost: asking with the same rid gives it again
        again = await c.post(rid=c.rid)
        assert c.last_raw == first and again.find("{jabber:client}iq") is not None
        assert pong.get("type") == "result"
        # a request ahead of a missing one waits for it, then both are handled in order
        ahead = asyncio.create_task(c.post(f"<iq xmlns='jabber:client' type='get' id='p3' to='{DOMAIN}'>"
                                           "<ping xmlns='urn:xmpp:ping'/></iq>", rid=c.rid + 2))
        await asyncio.sleep(0.2)
        assert not ahead.done()
        p2 = await c.post(f"<iq xmlns='jabber:client' type='get' id='p2' to='{DOMAIN}'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>", rid=c.rid + 1)
        p3 = await ahead
        c.rid += 2
        seen = [e.get("id") for body in (p2, p3) for e in body if e.get("id")]
        for _ in range(10):
            if "p3" in seen:
                break
            seen += [e.get("id") for e in await c.post() if e.get("id")]
        assert [i for i in seen if i in ("p2", "p3")] == ["p2", "p3"], seen
        # a rid far ahead, or an unknown sid: terminate
        body = await c.post(rid=c.rid + 10)
        assert body.get("type") == "terminate" and body.get("condition") == "item-not-found"
    async with aiohttp.ClientSession() as http:
        c = BoshClient(bosh, http)
        c.sid = "nosuchsid"
        body = await c.post()
        assert c.status == 404 and body.get("condition") == "item-not-found"


async def test_inactivity_loses_the_connection_and_unknown_host(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP,
                             host_extra=MODULES + "bosh_max_inactivity = 1\n")
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        async with aiohttp.ClientSession() as http:
            c = BoshClient(srv, http)
            await c.login(wait=1)
            assert srv.server.hosts[DOMAIN].sessions_of("alice")
            # no request for longer than bosh_max_inactivity: the session goes
            for _ in range(100):
                if not srv.server.hosts[DOMAIN].sessions_of("alice"):
                    break
                await asyncio.sleep(0.1)
            assert not srv.server.hosts[DOMAIN].sessions_of("alice")
            body = await c.post()
            assert body.get("type") == "terminate"
            c2 = BoshClient(srv, http)
            body = await c2.post(to="nowhere.test", wait="5", hold="1", ver="1.6")
            assert body.get("type") == "terminate" and body.get("condition") == "host-unknown"
            # not XML at all
            async with http.post(c2.url, data="<body", ssl=c2.ssl, server_hostname=DOMAIN,
                                 headers={"Host": DOMAIN}) as r:
                assert r.status == 400
    finally:
        await srv.server.stop()


async def test_cors_and_host_meta(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP,
                             host_extra=MODULES + 'cross_domain_bosh = { "https://web.example" }\n')
    try:
        url = f"https://127.0.0.1:{srv.server.ports('https')[0]}"
        async with aiohttp.ClientSession() as http:
            kw = dict(ssl=client_ssl(srv.cafile), server_hostname=DOMAIN)
            async with http.options(url + "/http-bind", headers={
                    "Host": DOMAIN, "Origin": "https://web.example",
                    "Access-Control-Request-Method": "POST"}, **kw) as r:
                assert r.headers["Access-Control-Allow-Origin"] == "https://web.example"
                assert "POST" in r.headers["Access-Control-Allow-Methods"]
            async with http.options(url + "/http-bind", headers={
                    "Host": DOMAIN, "Origin": "https://evil.example",
                    "Access-Control-Request-Method": "POST"}, **kw) as r:
                assert "Access-Control-Allow-Origin" not in r.headers
            async with http.get(url + "/.well-known/host-meta.json", headers={"Host": DOMAIN}, **kw) as r:
                links = (await r.json())["links"]
        assert {"rel": "urn:xmpp:alt-connections:xbosh",
                "href": f"https://{DOMAIN}:{srv.server.ports('https')[0]}/http-bind"} in links
    finally:
        await srv.server.stop()


async def test_a_bosh_session_that_went_quiet_is_resumed(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP,
                             host_extra=MODULES + "bosh_max_inactivity = 1\n")
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        await srv.adduser(f"bob@{DOMAIN}")
        bob = await slix_connect(srv, f"bob@{DOMAIN}")
        async with aiohttp.ClientSession() as http:
            c = BoshClient(srv, http)
            await c.login(wait=1)
            enabled = await c.ask("<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
                                  lambda e: e.tag == "{urn:xmpp:sm:3}enabled")
            await c.post("<presence xmlns='jabber:client'/>")
            # the client goes quiet (a phone asleep): the session hibernates
            for _ in range(60):
                s = srv.server.hosts[DOMAIN].sessions_of("alice").get("bosh")
                if s is not None and s.hibernating:
                    break
                await asyncio.sleep(0.1)
            assert s is not None and s.hibernating
            bob.send_message(mto=f"alice@{DOMAIN}/bosh", mbody="while you slept", mtype="chat")
            await asyncio.sleep(0.3)
            # a new BOSH session resumes it and gets what was missed
            c2 = BoshClient(srv, http)
            body = await c2.post(to=DOMAIN, wait="2", hold="1", ver="1.6", **{"xmpp:version": "1.0"})
            c2.sid = body.get("sid")
            token = base64.b64encode(b"\0alice\0secret").decode()
            got = await c2.ask(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>",
                               lambda e: e.tag == f"{{{SASL}}}success")
            assert got is not None
            await c2.post(**{"xmpp:restart": "true", "to": DOMAIN})
            resumed = await c2.ask(f"<resume xmlns='urn:xmpp:sm:3' previd='{enabled.get('id')}' h='0'/>",
                                   lambda e: e.tag in ("{urn:xmpp:sm:3}resumed", "{urn:xmpp:sm:3}failed"))
            assert resumed.tag == "{urn:xmpp:sm:3}resumed", ET.tostring(resumed)
            msg = await c2.until(lambda e: e.tag == "{jabber:client}message")
            assert msg.findtext("{jabber:client}body") == "while you slept"
        await slix_close(bob)
    finally:
        await srv.server.stop()

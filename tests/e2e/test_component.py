"""External components (XEP-0114) with slixmpp's ComponentXMPP."""
from __future__ import annotations

import asyncio

import pytest
import slixmpp

from .clients import logged_in, slix_close, slix_connect
from .conftest import start_server

GLOBAL = 'component_ports = { 0 }\ncomponent_interfaces = { "127.0.0.1" }\n'
COMPONENT = '\nComponent "gw.xmppd.test"\n    component_secret = "s3cret"\n'


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, extra=GLOBAL, host_extra=COMPONENT)
    try:
        yield s
    finally:
        await s.server.stop()


class Gateway(slixmpp.ComponentXMPP):
    def __init__(self, secret, port):
        super().__init__("gw.xmppd.test", secret, "127.0.0.1", port)
        self.messages: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)


async def connect_component(srv, secret="s3cret"):
    gw = Gateway(secret, srv.server.ports("component")[0])
    started = asyncio.get_running_loop().create_future()
    gw.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    gw.add_event_handler("disconnected", lambda _: started.done() or started.set_exception(ConnectionError()))
    gw.connect()
    await asyncio.wait_for(started, 10)
    return gw


async def test_component_exchanges_messages_with_users(srv):
    await srv.adduser("alice@xmppd.test")
    gw = await connect_component(srv)
    a = await slix_connect(srv, "alice@xmppd.test")
    try:
        a.send_message(mto="bot@gw.xmppd.test", mbody="hello gateway", mtype="chat")
        m = await asyncio.wait_for(gw.messages.get(), 10)
        assert m["body"] == "hello gateway" and m["from"] == a.boundjid
        gw.send_message(mto=a.boundjid, mfrom="bot@gw.xmppd.test", mbody="hello human", mtype="chat")
        got = await a.next_message()
        assert got["body"] == "hello human" and got["from"] == "bot@gw.xmppd.test"
        # the component shows up in the server's disco#items
        items = await a.plugin["xep_0030"].get_items("xmppd.test", timeout=10)
        assert "gw.xmppd.test" in {i[0] for i in items["disco_items"]["items"]}
    finally:
        await slix_close(a)
        gw.disconnect()


async def test_wrong_secret_is_refused(srv):
    gw = Gateway("wrong", srv.server.ports("component")[0])
    errors = []
    gw.add_event_handler("stream_error", errors.append)
    done = gw.disconnected
    gw.connect()
    await asyncio.wait_for(done, 10)
    assert errors and errors[0]["condition"] == "not-authorized"


async def test_component_may_not_spoof_other_domains(srv):
    await srv.adduser("alice@xmppd.test")
    gw = await connect_component(srv)
    async with logged_in(srv, "alice@xmppd.test") as a:
        errors = []
        gw.add_event_handler("stream_error", errors.append)
        done = gw.disconnected
        gw.send_message(mto=a.boundjid, mfrom="bob@xmppd.test", mbody="spoof", mtype="chat")
        await asyncio.wait_for(done, 10)
        assert errors and errors[0]["condition"] == "invalid-from"
        await asyncio.sleep(0.1)
        assert a.messages.empty()


async def test_disconnected_component_bounces(srv):
    await srv.adduser("alice@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test") as a:
        a.send_message(mto="bot@gw.xmppd.test", mbody="anyone?", mtype="chat")
        err = await a.next_error()
        assert err["error"]["condition"] == "service-unavailable"


async def test_a_trace_follows_the_component_after_its_handshake(srv):
    """``xmppctl trace gw.xmppd.test`` (the tracer, in-process): the component's
    stanzas both ways, never its handshake."""
    await srv.adduser("alice@xmppd.test")
    trace = srv.server.tracer.start("gw.xmppd.test", None, "gw.xmppd.test", None)
    lines = trace.lines()
    gw = await connect_component(srv)
    a = await slix_connect(srv, "alice@xmppd.test")
    try:
        a.send_message(mto="bot@gw.xmppd.test", mbody="to the gateway", mtype="chat")
        await asyncio.wait_for(gw.messages.get(), 10)
        gw.send_message(mto=a.boundjid, mfrom="bot@gw.xmppd.test", mbody="from the gateway", mtype="chat")
        await a.next_message()
        seen = []
        while not any("from the gateway" in line.get("xml", "") for line in seen):
            seen.append(await asyncio.wait_for(lines.__anext__(), 10))
        assert seen[0]["type"] == "session" and seen[0]["kind"] == "component"
        stanzas = [(line["direction"], line["xml"]) for line in seen if line["type"] == "stanza"]
        assert [d for d, x in stanzas if "to the gateway" in x] == ["out"]
        assert [d for d, x in stanzas if "from the gateway" in x] == ["in"]
        assert not any("handshake" in x for _d, x in stanzas)
    finally:
        await lines.aclose()
        await slix_close(a)
        gw.disconnect()
    assert not srv.server.tracer.traces

"""Stream management (XEP-0198) with slixmpp's xep_0198 plugin: acks, resumption
after a dropped TCP connection, and what happens when hibernation runs out."""
from __future__ import annotations

import asyncio

import pytest

from .clients import Login, logged_in, slix_close, slix_connect
from .conftest import start_server

SM_PLUGINS = ("xep_0030", "xep_0198")


def host_modules(*extra):
    mods = ", ".join(f'"{m}"' for m in ("disco", "ping", "smacks") + extra)
    return f"    modules_enabled = {{ {mods} }}\n"


@pytest.fixture
async def sm_server(tmp_path, certs):
    srv = await start_server(tmp_path, certs, host_extra=host_modules()
                             + "    smacks_hibernation_time = 2\n")
    try:
        yield srv
    finally:
        await srv.server.stop()


def sm_state(srv, jid):
    user, rest = jid.split("@")
    host, _, res = rest.partition("/")
    return srv.server.hosts[host].sessions_of(user)[res].state["smacks"]


async def wait_for(cond, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def connect_sm(srv, jid):
    c = await slix_connect(srv, jid, plugins=SM_PLUGINS)
    await wait_for(lambda: c.plugin["xep_0198"].sm_id is not None)
    return c


async def test_enable_and_acks(sm_server):
    srv = sm_server
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, Login("alice@xmppd.test/phone", connect=connect_sm),
                         "bob@xmppd.test") as (a, b):
        assert "stream_management" in a.features
        for i in range(5):
            b.send_message(mto="alice@xmppd.test/phone", mbody=f"m{i}", mtype="chat")
        for i in range(5):
            assert (await a.next_message())["body"] == f"m{i}"
        # the server asks for acks and the client's answers empty the queue
        await wait_for(lambda: len(sm_state(srv, "alice@xmppd.test/phone").queue) == 0)
        # and the server counts what the client sent
        await wait_for(lambda: sm_state(srv, "alice@xmppd.test/phone").handled_in >= 1)


async def test_resume_after_dropped_connection_loses_nothing(sm_server):
    srv = sm_server
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, Login("alice@xmppd.test/phone", connect=connect_sm),
                         "bob@xmppd.test") as (a, b):
        b.send_message(mto="alice@xmppd.test", mbody="before", mtype="chat")
        assert (await a.next_message())["body"] == "before"
        # mid-conversation the phone stops reading, a message is in flight, the link dies
        a.transport.pause_reading()
        b.send_message(mto="alice@xmppd.test", mbody="in flight", mtype="chat")
        await wait_for(lambda: len(sm_state(srv, "alice@xmppd.test/phone").queue) >= 1)
        lost = a.disconnected
        a.transport.abort()
        await asyncio.wait_for(lost, 5)
        await wait_for(lambda: sm_state(srv, "alice@xmppd.test/phone") is not None
                       and srv.server.hosts["xmppd.test"].get_session("alice", "phone").hibernating)
        # while hibernating, the session is still there and still receives
        b.send_message(mto="alice@xmppd.test", mbody="while away", mtype="chat")
        await asyncio.sleep(0.1)
        resumed = asyncio.get_running_loop().create_future()
        a.add_event_handler("session_resumed", lambda _: resumed.done() or resumed.set_result(True))
        a.connect("127.0.0.1", srv.port)
        await asyncio.wait_for(resumed, 10)
        got = [(await a.next_message())["body"] for _ in range(2)]
        assert got == ["in flight", "while away"]
        sess = srv.server.hosts["xmppd.test"].get_session("alice", "phone")
        assert sess is not None and not sess.hibernating and sess.transport is not None
        # and the resumed stream works both ways
        a.send_message(mto="bob@xmppd.test", mbody="back", mtype="chat")
        assert (await b.next_message())["body"] == "back"


async def test_unknown_previd_fails_with_item_not_found(sm_server):
    from .rawclient import Raw
    srv = sm_server
    await srv.adduser("alice@xmppd.test", "pw")
    raw = await Raw.connect(srv.port)
    try:
        await raw.open()
        await raw.starttls(srv.cafile)
        await raw.open()
        import base64
        raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                 + base64.b64encode(b"\0alice\0pw").decode() + "</auth>")
        assert "<success" in await raw.read_until(b">")
        feats = await raw.open()
        assert "urn:xmpp:sm:3" in feats
        raw.send("<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>")
        out = await raw.read_until(b"</failed>")
        assert "item-not-found" in out
    finally:
        raw.close()


async def test_hibernation_timeout_bounces_or_stores(sm_server):
    srv = sm_server
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    a = await connect_sm(srv, "alice@xmppd.test/phone")
    b = await slix_connect(srv, "bob@xmppd.test")
    try:
        a.transport.pause_reading()
        b.send_message(mto="alice@xmppd.test", mbody="never read", mtype="chat")
        await wait_for(lambda: len(sm_state(srv, "alice@xmppd.test/phone").queue) >= 1)
        a.transport.abort()
        # after smacks_hibernation_time (2 s) the session ends; with no offline
        # storage loaded, the unacknowledged chat message bounces to its sender
        err = await b.next_error(timeout=10)
        assert err["error"]["condition"] == "service-unavailable"
        assert srv.server.hosts["xmppd.test"].get_session("alice", "phone") is None
    finally:
        await slix_close(b)
        a.disconnect(wait=0)


async def test_hibernation_timeout_stores_offline_and_nothing_is_lost(tmp_path, certs):
    """With offline storage loaded, what the phone never acknowledged is kept
    and delivered at its next login — nothing is lost."""
    srv = await start_server(tmp_path, certs, host_extra=host_modules("offline")
                             + "    smacks_hibernation_time = 1\n")
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        a = await connect_sm(srv, "alice@xmppd.test/phone")
        async with logged_in(srv, "bob@xmppd.test") as b:
            b.send_message(mto="alice@xmppd.test", mbody="seen", mtype="chat")
            assert (await a.next_message())["body"] == "seen"
            a.transport.pause_reading()
            b.send_message(mto="alice@xmppd.test", mbody="in flight", mtype="chat")
            await wait_for(lambda: len(sm_state(srv, "alice@xmppd.test/phone").queue) >= 1)
            a.transport.abort()
            await wait_for(lambda: srv.server.hosts["xmppd.test"].get_session("alice", "phone")
                           is not None and srv.server.hosts["xmppd.test"].get_session("alice", "phone").hibernating)
            b.send_message(mto="alice@xmppd.test", mbody="while hibernating", mtype="chat")
            # the hibernation ends after 1 s: the session is gone, the messages are stored
            await wait_for(lambda: srv.server.hosts["xmppd.test"].get_session("alice", "phone") is None)
            await asyncio.sleep(0.2)
            assert b.errors.empty()
            a.disconnect(wait=0)
            async with logged_in(srv, "alice@xmppd.test/phone2") as again:
                got = [(await again.next_message())["body"] for _ in range(2)]
                assert got == ["in flight", "while hibernating"]
    finally:
        await srv.server.stop()


async def test_a_trace_of_the_resource_follows_it_across_resumption(sm_server):
    """``xmppctl trace alice@xmppd.test/phone`` (the tracer, in-process): the old
    connection closes, the new one that resumes the resource is followed."""
    srv = sm_server
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    trace = srv.server.tracer.start("alice@xmppd.test/phone", "alice", "xmppd.test", "phone")
    lines = trace.lines()
    seen: list = []

    async def until(pred):
        while not any(pred(line) for line in seen):
            seen.append(await asyncio.wait_for(lines.__anext__(), 10))

    try:
        async with logged_in(srv, Login("alice@xmppd.test/phone", connect=connect_sm),
                             "bob@xmppd.test") as (a, b):
            b.send_message(mto="alice@xmppd.test/phone", mbody="before", mtype="chat")
            assert (await a.next_message())["body"] == "before"
            await until(lambda line: "before" in line.get("xml", ""))
            first = next(line["id"] for line in seen if line["type"] == "session")
            lost = a.disconnected
            a.transport.abort()
            await asyncio.wait_for(lost, 5)
            await until(lambda line: line["type"] == "closed")
            resumed = asyncio.get_running_loop().create_future()
            a.add_event_handler("session_resumed", lambda _: resumed.done() or resumed.set_result(True))
            a.connect("127.0.0.1", srv.port)
            await asyncio.wait_for(resumed, 10)
            a.send_message(mto="bob@xmppd.test", mbody="back", mtype="chat")
            assert (await b.next_message())["body"] == "back"
            await until(lambda line: line["type"] == "stanza" and "back" in line["xml"])
            (back,) = [line for line in seen if "back" in line.get("xml", "")]
            assert back["direction"] == "in" and back["id"] != first
            assert [line["id"] for line in seen if line["type"] == "session"] == [first, back["id"]]
            assert not any("xmpp-sasl" in line.get("xml", "") for line in seen)
    finally:
        await lines.aclose()
    assert not srv.server.tracer.traces

"""Links between two xmppd: bidirectional streams (XEP-0288, module ``s2s_bidi``)
carry both directions on one TCP connection; a link whose stream drops sends the
stanzas it had not written over a new connection, and bounces them if that fails."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.e2e.clients import logged_in

from .conftest import start_node

A, B = "a.test", "b.test"
BIDI = ("dialback", "ping", "disco", "s2s_bidi")


def streams(node):
    return [(s["direction"], s["local"], s["remote"], s["bidi"]) for s in node.s2s.describe()]


async def talk(a, b, n=5):
    """alice@a ⇄ bob@b: messages both ways, in order; IQs both ways."""
    await a.adduser(f"alice@{A}")
    await b.adduser(f"bob@{B}")
    async with logged_in(a, f"alice@{A}") as ca, logged_in(b, f"bob@{B}") as cb:
        for i in range(n):
            ca.send_message(mto=f"bob@{B}", mbody=f"a{i}", mtype="chat")
        assert [(await cb.next_message(timeout=20))["body"] for _ in range(n)] == [f"a{i}" for i in range(n)]
        for i in range(n):
            cb.send_message(mto=ca.boundjid, mbody=f"b{i}", mtype="chat")
        assert [(await ca.next_message(timeout=20))["body"] for _ in range(n)] == [f"b{i}" for i in range(n)]
        await cb.plugin["xep_0199"].ping(A, timeout=10)
        await ca.plugin["xep_0199"].ping(cb.boundjid, timeout=10)


async def test_bidi_one_connection_both_ways(tmp_path, dns, cas):
    ca = cas.cafile("one")
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), ca, modules=BIDI)
    b = await start_node(tmp_path, dns, B, cas.issue("one", B), ca, modules=BIDI)
    try:
        await talk(a, b)
        # a connected first; b answered over the same stream: one connection in all
        assert streams(a) == [("out", A, B, True)]
        assert streams(b) == [("in", B, A, True)]
        out = a.s2s.links[(A, B)].session
        assert out.counters["in"] > 0 and out.counters["out"] > 0
        assert b.s2s.links[(B, A)].session.direction == "in"
    finally:
        await a.stop()
        await b.stop()


async def test_bidi_dialback(tmp_path, dns, cas):
    """Dialback-only: the receiving server verifies the key over its own stream to
    the authoritative server (never over the stream being authenticated), so there
    may be a second connection; both negotiate bidi and everything flows."""
    extra = "s2s_secure_auth = false\n"
    a = await start_node(tmp_path, dns, A, cas.issue("ca-a", A), cas.cafile("ca-a"), extra=extra, modules=BIDI)
    b = await start_node(tmp_path, dns, B, cas.issue("ca-b", B), cas.cafile("ca-b"), extra=extra, modules=BIDI)
    try:
        await talk(a, b)
        assert ("out", A, B, True) in streams(a)
        assert all(s["auth"] == "dialback" and s["bidi"] for s in a.s2s.describe())
    finally:
        await a.stop()
        await b.stop()


async def test_bidi_only_when_both_want_it(tmp_path, dns, cas):
    ca = cas.cafile("one")
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), ca, modules=BIDI)
    b = await start_node(tmp_path, dns, B, cas.issue("one", B), ca)
    try:
        await talk(a, b, n=2)
        assert sorted(streams(a)) == [("in", A, B, False), ("out", A, B, False)]
    finally:
        await a.stop()
        await b.stop()


@pytest.fixture
async def pair(tmp_path, dns, cas):
    ca = cas.cafile("one")
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), ca)
    b = await start_node(tmp_path, dns, B, cas.issue("one", B), ca)
    await a.adduser(f"alice@{A}")
    await b.adduser(f"bob@{B}")
    try:
        async with logged_in(a, f"alice@{A}") as ca_, logged_in(b, f"bob@{B}") as cb:
            yield a, b, ca_, cb
    finally:
        await a.stop()
        await b.stop()


def chat(frm, to, body):
    m = ET.Element("{jabber:client}message", {"from": str(frm), "to": str(to), "type": "chat"})
    ET.SubElement(m, "{jabber:client}body").text = body
    return m


async def test_dropped_link_resends_unwritten(pair):
    """The stream under an established link dies with stanzas handed to it but not
    yet written (and more arrive while it closes): a new connection delivers them
    all, in order."""
    a, b, ca, cb = pair
    ca.send_message(mto=cb.boundjid, mbody="first", mtype="chat")
    assert (await cb.next_message(timeout=20))["body"] == "first"
    link = a.s2s.links[(A, B)]
    old = link.session
    route = a.server.router.route
    for i in range(3):
        await route(chat(ca.boundjid, cb.boundjid, f"m{i}"))
    old.transport.abort()          # gone before the write: nothing reached the socket
    for i in range(3, 5):
        await route(chat(ca.boundjid, cb.boundjid, f"m{i}"))
    assert [(await cb.next_message(timeout=20))["body"] for _ in range(5)] == [f"m{i}" for i in range(5)]
    assert link.session is not None and link.session is not old and link.reconnects == 1
    assert ca.errors.empty()


async def test_dropped_link_bounces_when_reconnect_fails(pair):
    a, b, ca, cb = pair
    ca.send_message(mto=cb.boundjid, mbody="first", mtype="chat")
    assert (await cb.next_message(timeout=20))["body"] == "first"
    for srv in b.server.listeners["s2s"]:   # b stops accepting connections
        srv.close()
    old = a.s2s.links[(A, B)].session
    await a.server.router.route(chat(ca.boundjid, cb.boundjid, "lost"))
    old.transport.abort()
    err = await ca.next_error(timeout=20)
    assert err["error"]["condition"] == "remote-server-not-found" and str(err["from"]) == str(cb.boundjid)
    await asyncio.sleep(0.2)
    assert cb.messages.empty()

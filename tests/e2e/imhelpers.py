"""Shared by the roster, subscription and presence tests: a server with the roster
module on both hosts, slixmpp clients that record roster pushes and presence, and
an aioxmpp connection factory."""
from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmppd.core import roster as rm

from .clients import TIMEOUT, slix_close, slix_connect
from .conftest import start_server

MODULES = 'modules_enabled = { "disco", "ping", "version", "time", "roster" }\n'


@pytest.fixture
async def im(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=MODULES)
    clients: list = []
    srv.clients = clients
    try:
        yield srv
    finally:
        await slix_close(*clients)
        await srv.server.stop()


async def connect(srv, jid, *, roster=True, send_presence=True, manual=True, **kw):
    """A slixmpp client; ``roster`` fetches the roster (so it gets pushes),
    ``manual`` turns slixmpp's automatic subscription answers off."""
    c = await slix_connect(srv, jid, send_presence=False, **kw)
    srv.clients.append(c)
    c.pushes = asyncio.Queue()
    c.register_handler(Callback("test pushes", StanzaPath("iq@type=set/roster"),
                                lambda iq: c.pushes.put_nowait(iq)))
    if manual:
        c.roster.auto_authorize = None
        c.roster.auto_subscribe = False
        c.client_roster.auto_authorize = None
        c.client_roster.auto_subscribe = False
    if roster:
        await c.get_roster()
    if send_presence:
        c.send_presence()
        await presence_from(c, c.boundjid)
    return c


async def next_push(c, timeout=TIMEOUT):
    iq = await asyncio.wait_for(c.pushes.get(), timeout)
    items = iq["roster"]["items"]
    assert len(items) == 1
    (jid, item), = items.items()
    item = dict(item)
    raw = iq.xml.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
    item["approved"] = raw.get("approved")
    return str(jid), item, iq["roster"]["ver"]


def subscribe(c, to, ptype="subscribe", nick=None):
    """Send a subscription stanza, with a XEP-0172 nickname if given."""
    p = c.make_presence(pto=to, ptype=ptype)
    if nick is not None:
        ET.SubElement(p.xml, "{http://jabber.org/protocol/nick}nick").text = nick
    p.send()


async def presence_from(c, jid, ptype=None, timeout=TIMEOUT):
    """The first presence received from ``jid`` (a bare JID matches any of its
    resources), optionally of type ``ptype``; others are kept for later calls."""
    jid = str(jid)
    stash = c.__dict__.setdefault("stash", [])

    def match(p):
        frm = str(p["from"])
        if frm == jid or ("/" not in jid and p["from"].bare == jid):
            return ptype is None or p["type"] == ptype
        return False
    for i, p in enumerate(stash):
        if match(p):
            del stash[i]
            return p
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        p = await asyncio.wait_for(c.presences.get(), max(0.01, deadline - loop.time()))
        if match(p):
            return p
        stash.append(p)


async def no_presence(c, jid=None, ptype=None, wait=0.3):
    """Nothing from ``jid`` (of type ``ptype``) arrives within ``wait`` seconds."""
    with contextlib.suppress(asyncio.TimeoutError):
        p = await presence_from(c, jid, ptype, timeout=wait) if jid else \
            await asyncio.wait_for(c.presences.get(), wait)
        raise AssertionError(f"unexpected presence {p}")


async def no_push(c, wait=0.3):
    with contextlib.suppress(asyncio.TimeoutError):
        iq = await asyncio.wait_for(c.pushes.get(), wait)
        raise AssertionError(f"unexpected push {iq}")


def drain(c):
    c.__dict__.get("stash", []).clear()
    while not c.presences.empty():
        c.presences.get_nowait()
    while not c.pushes.empty():
        c.pushes.get_nowait()


async def item_of(srv, jid, contact):
    user, host = jid.split("@")
    return await srv.server.hosts[host].roster.get_record(user, contact)


async def state_of(srv, jid, contact):
    return rm.state_of(await item_of(srv, jid, contact))


async def wait_state(srv, jid, contact, state, timeout=TIMEOUT):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        cur = await state_of(srv, jid, contact)
        if cur == state:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{jid}'s state for {contact} is {cur!r}, not {state!r}")
        await asyncio.sleep(0.02)


def aioxmpp_client(srv, jid, password="secret"):
    aioxmpp = pytest.importorskip("aioxmpp")
    import aioxmpp.connector
    import aioxmpp.security_layer
    import OpenSSL.SSL

    def ctx_factory():
        ctx = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(srv.cafile)
        ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, lambda *a: a[-1])
        return ctx

    async def _pw():
        return password

    layer = aioxmpp.security_layer.SecurityLayer(
        ctx_factory, aioxmpp.security_layer._NullVerifier, True,
        (aioxmpp.security_layer.PasswordSASLProvider(lambda j, n: _pw()),),
    )
    return aioxmpp.Client(
        aioxmpp.JID.fromstr(jid), layer,
        override_peer=[("127.0.0.1", srv.port, aioxmpp.connector.STARTTLSConnector())],
    )

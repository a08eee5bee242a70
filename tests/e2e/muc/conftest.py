"""Fixtures for the MUC component: the shared test server plus
``Component "conference.xmppd.test" "muc"``, and helpers around slixmpp's
xep_0045 plugin."""
from __future__ import annotations

import asyncio
import contextlib
import textwrap

import pytest

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath


from ..clients import TIMEOUT, logged_in
from ..conftest import start_server

MUC = "conference.xmppd.test"
PLUGINS = ("xep_0030", "xep_0045", "xep_0004", "xep_0199", "xep_0203", "xep_0249", "xep_0359")


async def start_muc(tmp_path, certs, muc_options: str = "", extra: str = ""):
    host_extra = f'\nComponent "{MUC}" "muc"\n' + textwrap.indent(textwrap.dedent(muc_options), "    ")
    srv = await start_server(tmp_path, certs, extra=extra, host_extra=host_extra)
    srv.muc = srv.server.hosts[MUC].provided("muc")
    await srv.muc.ready.wait()
    return srv


@pytest.fixture
async def muc_server(tmp_path, certs):
    srv = await start_muc(tmp_path, certs)
    try:
        yield srv
    finally:
        await srv.server.stop()


@pytest.fixture
async def users(muc_server):
    """Connected slixmpp clients for alice, bob and carol (with xep_0045)."""
    logins = contextlib.AsyncExitStack()

    async def connect(name, **kw):
        jid = f"{name}@xmppd.test"
        if not await muc_server.server.accounts.exists("xmppd.test", name):
            await muc_server.adduser(jid)
        c = await logins.enter_async_context(logged_in(muc_server, jid, plugins=PLUGINS, **kw))
        # slixmpp's MUC plugin hides occupant presences from the generic
        # "presence" event after the first one: listen to its own event
        c.muc_presences = asyncio.Queue()
        c.add_event_handler("groupchat_presence", c.muc_presences.put_nowait)
        # and its "message" event only sees messages with a body: this sees all
        c.all_messages = asyncio.Queue()
        c.register_handler(Callback("all messages", MatchXPath("{jabber:client}message"),
                                    c.all_messages.put_nowait))
        c.all_presences = asyncio.Queue()
        c.register_handler(Callback("all presences", MatchXPath("{jabber:client}presence"),
                                    c.all_presences.put_nowait))
        return c
    async with logins:
        yield connect


async def create_room(client, room: str, nick: str, **config):
    """Join (creating the room), then submit the configuration form with
    ``config`` ({"muc#roomconfig_...": value}); returns the join result."""
    result = await client.plugin["xep_0045"].join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)
    form = await client.plugin["xep_0045"].get_room_config(room, timeout=TIMEOUT)
    new = client.plugin["xep_0004"].make_form("submit")
    for var, value in config.items():
        new.add_field(var=var, value=value)
    await client.plugin["xep_0045"].set_room_config(room, new, timeout=TIMEOUT)
    return result, form


async def join(client, room: str, nick: str, **kw):
    kw.setdefault("timeout", TIMEOUT)
    return await client.plugin["xep_0045"].join_muc_wait(room, nick, **kw)


async def next_matching(queue: asyncio.Queue, pred, timeout=TIMEOUT):
    """The next item of ``queue`` for which ``pred`` is true (others are dropped)."""
    async def loop():
        while True:
            item = await queue.get()
            if pred(item):
                return item
    return await asyncio.wait_for(loop(), timeout)


def codes(stanza) -> set[int]:
    return set(stanza["muc"]["status_codes"])


def groupchat(room, body=None):
    def pred(m):
        return m["type"] == "groupchat" and m["from"].bare == room and (body is None or m["body"] == body)
    return pred


async def raw_iq(client, to: str, payload, type_: str = "get"):
    """Send an IQ with a stdlib ElementTree payload; returns the reply's XML."""
    iq = client.make_iq_set(ito=to) if type_ == "set" else client.make_iq_get(ito=to)
    iq.xml.append(payload)
    reply = await iq.send(timeout=TIMEOUT)
    return reply.xml

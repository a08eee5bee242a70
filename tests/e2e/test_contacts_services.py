"""The account services where being a contact matters (RFC 6121 subscriptions
from the roster module): blocking a contact (XEP-0191) and a contact's last
activity (XEP-0012)."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from .conftest import start_server
from .imhelpers import connect, no_presence, presence_from
from .test_subscriptions import make_both

A, B, C = "alice@xmppd.test", "bob@other.test", "carol@xmppd.test"   # as make_both expects
PLUGINS = ("xep_0030", "xep_0191", "xep_0012")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, extra='modules_enabled = { "disco", "roster", '
                                                  '"blocklist", "lastactivity" }\n')
    s.clients = []
    try:
        for u in (A, B, C):
            await s.adduser(u)
        yield s
    finally:
        from .clients import slix_close
        await slix_close(*s.clients)
        await s.server.stop()


async def test_blocking_a_contact_hides_presence_both_ways_until_unblocked(srv):
    a = await connect(srv, A, plugins=PLUGINS)
    b = await connect(srv, B, plugins=PLUGINS)
    await make_both(srv, a, b)
    await a.plugin["xep_0191"].block(B, timeout=10)
    # the blocked contact sees alice go unavailable
    p = await presence_from(b, A, "unavailable")
    assert p["from"].bare == A
    # and nothing of bob's reaches alice any more, nor alice's reaches bob
    b.send_presence(pstatus="are you there?")
    await no_presence(a, B)
    a.send_presence(pstatus="busy")
    await no_presence(b, A)
    # unblocking brings the presence back
    await a.plugin["xep_0191"].unblock(B, timeout=10)
    p = await presence_from(b, A)
    assert p["type"] in ("available", "")
    p = await presence_from(a, B)
    assert p["type"] in ("available", "")


async def test_last_activity_of_a_contact_and_not_of_a_stranger(srv):
    a = await connect(srv, A, plugins=PLUGINS)
    b = await connect(srv, B, plugins=PLUGINS)
    c = await connect(srv, C, plugins=PLUGINS)
    await make_both(srv, a, b)
    b.send_presence(ptype="unavailable", pstatus="gone fishing")
    await presence_from(a, B, "unavailable")
    await asyncio.sleep(1.1)
    last = await a.plugin["xep_0012"].get_last_activity(B, timeout=10)
    assert last["last_activity"]["seconds"] >= 1
    assert last["last_activity"]["status"] == "gone fishing"
    with pytest.raises(IqError) as exc:
        await c.plugin["xep_0012"].get_last_activity(B, timeout=10)
    assert exc.value.iq["error"]["condition"] in ("forbidden", "subscription-required")

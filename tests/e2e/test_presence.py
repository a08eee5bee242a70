"""Presence (RFC 6121 §4): broadcast, probes, own resources, unavailable on logout
and on connection loss, directed presence, priority, presence errors."""
from __future__ import annotations

import asyncio

import pytest

from xmppd.core import events as ev
from xmppd.core import roster as rm

from .clients import slix_close
from .imhelpers import aioxmpp_client, connect, drain, im, no_presence, presence_from, wait_state  # noqa: F401
from .test_subscriptions import make_both

A = "alice@xmppd.test"
B = "bob@other.test"
C = "carol@xmppd.test"


async def friends(im):
    for j in (A, B, C):
        await im.adduser(j)
    a = await connect(im, A)
    b = await connect(im, B)
    await make_both(im, a, b)
    return a, b


async def close(im, c):
    await slix_close(c)
    im.clients.remove(c)


async def test_broadcast_probes_and_own_resources(im):
    a, b = await friends(im)
    await close(im, a)
    await presence_from(b, a.boundjid, "unavailable")     # logout (stream close)

    a1 = await connect(im, A + "/one", send_presence=False)
    a1.send_presence(pstatus="hello")
    await presence_from(a1, a1.boundjid)                  # reflected to itself
    p = await presence_from(b, a1.boundjid)               # broadcast to a subscriber
    assert p["status"] == "hello"
    p = await presence_from(a1, b.boundjid)               # the probe was answered
    assert p["type"] == "available"

    a2 = await connect(im, A + "/two", send_presence=False)
    a2.send_presence(pshow="away")
    await presence_from(a1, a2.boundjid)                  # own other resource
    p = await presence_from(a2, a1.boundjid)              # and the other way round
    assert p["status"] == "hello"
    await presence_from(a2, b.boundjid)
    # an update (not initial): no probe, broadcast again
    a2.send_presence(pshow="dnd")
    p = await presence_from(b, a2.boundjid)
    while p["show"] != "dnd":
        p = await presence_from(b, a2.boundjid)
    await no_presence(a2, B)

    a2.send_presence(ptype="unavailable")
    await presence_from(b, a2.boundjid, "unavailable")
    await presence_from(a1, a2.boundjid, "unavailable")


async def test_probe_answers(im):
    a, b = await friends(im)
    await close(im, b)
    await presence_from(a, b.boundjid, "unavailable")
    # a subscribed contact with nobody online: unavailable from the bare JID
    probe = a.make_presence(pto=B, ptype="probe")
    probe.send()
    await presence_from(a, B, "unavailable")
    # Carol is not subscribed: she sees nothing of Alice
    carol = await connect(im, C)
    carol.make_presence(pto=A, ptype="probe").send()
    await no_presence(carol, A)
    await close(im, carol)
    # Dave's server wrongly thinks he is subscribed to Alice: his login probe is
    # answered with unsubscribed, which puts his roster right (§4.3.2)
    await im.adduser("dave@xmppd.test")
    host = im.server.hosts["xmppd.test"]
    await host.roster.update("dave", A, lambda item: rm.set_state(rm.new_item(), rm.TO))
    dave = await connect(im, "dave@xmppd.test")
    await presence_from(dave, A, "unsubscribed")
    await wait_state(im, "dave@xmppd.test", A, rm.NONE)
    await no_presence(dave, a.boundjid)


async def test_unavailable_on_connection_loss(im):
    a, b = await friends(im)
    carol = await connect(im, C)
    a.send_presence(pto=C, pstatus="directed")           # directed presence
    p = await presence_from(carol, a.boundjid)
    assert p["status"] == "directed"
    drain(b)
    a.transport.abort()                                  # no </stream>, no unavailable
    await presence_from(b, a.boundjid, "unavailable")
    await presence_from(carol, a.boundjid, "unavailable")
    assert not im.server.hosts["xmppd.test"].sessions_of("alice")


async def test_directed_presence_undone_on_unavailable(im):
    for j in (A, C):
        await im.adduser(j)
    a = await connect(im, A)
    carol = await connect(im, C)
    a.send_presence(pto=C)
    await presence_from(carol, a.boundjid)
    a.send_presence(pto=C + "/nowhere")                  # tracked, delivered to nobody
    a.send_presence(ptype="unavailable")
    p = await presence_from(carol, a.boundjid, "unavailable")
    assert str(p["to"]).startswith(C)
    await no_presence(carol, a.boundjid)
    # sending unavailable to the contact directly stops the tracking
    a.send_presence()
    a.send_presence(pto=C)
    await presence_from(carol, a.boundjid)
    a.send_presence(pto=C, ptype="unavailable")
    await presence_from(carol, a.boundjid, "unavailable")
    a.send_presence(ptype="unavailable")
    await no_presence(carol, a.boundjid)


async def test_priority_and_resource_available(im):
    await im.adduser(A)
    await im.adduser(C)
    seen = []
    im.server.hosts["xmppd.test"].events.hook(
        "resource-available", lambda s: seen.append((s.resource, s.priority, s.available)))
    hi = await connect(im, A + "/hi", send_presence=False)
    hi.send_presence(ppriority=5)
    await presence_from(hi, hi.boundjid)
    lo = await connect(im, A + "/lo", send_presence=False)
    lo.send_presence(ppriority=-1)
    await presence_from(lo, lo.boundjid)
    lo.send_presence(ppriority=-2)                        # an update: no second event
    await presence_from(lo, lo.boundjid)
    assert seen == [("hi", 5, True), ("lo", -1, True)]
    sessions = im.server.hosts["xmppd.test"].sessions_of("alice")
    assert sessions["lo"].priority == -2
    carol = await connect(im, C)
    carol.send_message(mto=A, mbody="to the bare JID", mtype="chat")
    m = await hi.next_message()
    assert m["body"] == "to the bare JID"
    with pytest.raises(asyncio.TimeoutError):
        await lo.next_message(timeout=0.3)
    # out-of-range priorities are clamped (as Prosody does)
    hi.send_presence(ppriority=500)
    await presence_from(hi, hi.boundjid)
    assert sessions["hi"].priority == 127


async def test_presence_errors(im):
    await im.adduser(A)
    await im.adduser(C)
    a = await connect(im, A)
    carol = await connect(im, C)
    err = carol.make_presence(pto=a.boundjid, ptype="error")
    err["error"]["condition"] = "not-acceptable"
    err.send()
    p = await presence_from(a, carol.boundjid, "error")
    assert p["error"]["condition"] == "not-acceptable"
    err = carol.make_presence(pto=A, ptype="error")
    err["error"]["condition"] = "not-acceptable"
    err.send()
    await no_presence(a, C, "error")


async def test_presence_to_remote_domain_bounces_without_s2s(im):
    await im.adduser(A)
    a = await connect(im, A)
    a.send_presence(pto="someone@remote.example")
    p = await presence_from(a, "someone@remote.example", "error")
    assert p["error"]["condition"] == "remote-server-not-found"


async def test_aioxmpp_presence_client(im):
    aioxmpp = pytest.importorskip("aioxmpp")
    a, b = await friends(im)
    await close(im, a)
    client = aioxmpp_client(im, A)
    presence = client.summon(aioxmpp.PresenceClient)
    server = client.summon(aioxmpp.PresenceServer)
    bob = aioxmpp.JID.fromstr(B)
    loop = asyncio.get_running_loop()
    up, down = loop.create_future(), loop.create_future()

    def on_available(full, st):
        if full.bare() == bob and not up.done():
            up.set_result(st)

    def on_unavailable(full, st):
        if full.bare() == bob and not down.done():
            down.set_result(st)
    presence.on_available.connect(on_available)
    presence.on_unavailable.connect(on_unavailable)
    async with client.connected():
        server.set_presence(aioxmpp.PresenceState(True, aioxmpp.PresenceShow.CHAT), "here")
        await asyncio.wait_for(up, 10)                    # the probe's answer
        p = await presence_from(b, A, "chat")
        assert p["status"] == "here"
        await close(im, b)
        await asyncio.wait_for(down, 10)
        assert presence.get_most_available_stanza(bob) is None
    await wait_state(im, A, B, rm.BOTH)

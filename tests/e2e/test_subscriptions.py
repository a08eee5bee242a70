"""Presence subscriptions (RFC 6121 §3) between real clients: the handshake both
ways, cancellation, pre-approval, requests waiting for an offline contact, roster
removal and account deletion. Alice is on xmppd.test, Bob on other.test."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from xmppd.core import roster as rm

from .clients import slix_close
from .imhelpers import (aioxmpp_client, connect, drain, im, item_of, next_push, no_presence,  # noqa: F401
                        no_push, presence_from, state_of, subscribe, wait_state)

A = "alice@xmppd.test"
B = "bob@other.test"
NICK = "{http://jabber.org/protocol/nick}nick"


async def make_both(im, a, b):
    a.send_presence_subscription(B)
    await presence_from(b, A, "subscribe")
    b.send_presence_subscription(A, ptype="subscribed")
    await presence_from(a, B, "subscribed")
    b.send_presence_subscription(A)
    await presence_from(a, B, "subscribe")
    a.send_presence_subscription(B, ptype="subscribed")
    await presence_from(b, A, "subscribed")
    await wait_state(im, A, B, rm.BOTH)
    await wait_state(im, B, A, rm.BOTH)
    await asyncio.sleep(0.1)
    drain(a)
    drain(b)


async def test_handshake_both_ways(im):
    await im.adduser(A)
    await im.adduser(B)
    a = await connect(im, A)
    b = await connect(im, B)

    subscribe(a, B, nick="Alice")
    jid, item, _ = await next_push(a)
    assert jid == B and item["subscription"] == "none" and item["ask"] == "subscribe"
    p = await presence_from(b, A, "subscribe")
    assert str(p["from"]) == A            # stamped with the bare JID (§3.1.2)
    assert p.xml.find(NICK).text == "Alice"
    assert await state_of(im, A, B) == rm.NONE_OUT
    assert await state_of(im, B, A) == rm.NONE_IN
    await no_push(b)                      # a request is not a roster item

    b.send_presence_subscription(A, ptype="subscribed")
    jid, item, _ = await next_push(b)
    assert jid == A and item["subscription"] == "from"
    p = await presence_from(a, B, "subscribed")
    assert str(p["from"]) == B
    jid, item, _ = await next_push(a)
    assert item["subscription"] == "to" and not item["ask"]
    # §3.1.5: the new subscriber gets the contact's current presence
    p = await presence_from(a, b.boundjid)
    assert p["type"] == "available"

    b.send_presence_subscription(A)
    _, item, _ = await next_push(b)
    assert item["subscription"] == "from" and item["ask"] == "subscribe"
    await presence_from(a, B, "subscribe")
    assert await state_of(im, A, B) == rm.TO_IN
    assert await state_of(im, B, A) == rm.FROM_OUT
    a.send_presence_subscription(B, ptype="subscribed")
    await presence_from(b, A, "subscribed")
    await presence_from(b, a.boundjid)
    _, item, _ = await next_push(a)
    assert item["subscription"] == "both"
    _, item, _ = await next_push(b)
    assert item["subscription"] == "both"

    # presence flows both ways now
    a.send_presence(pshow="away", pstatus="out")
    p = await presence_from(b, a.boundjid)
    assert p["show"] == "away" and p["status"] == "out"
    b.send_presence(pshow="dnd")
    p = await presence_from(a, b.boundjid)
    assert p["show"] == "dnd"
    # asking again when already subscribed: Alice's server answers for her, and
    # Bob's server, already in "Both", drops the answer (Appendix A.3.3)
    b.send_presence_subscription(A)
    await no_presence(a, B, "subscribe")
    await no_presence(b, A, "subscribed")


async def test_unsubscribe_and_unsubscribed(im):
    await im.adduser(A)
    await im.adduser(B)
    a = await connect(im, A)
    b = await connect(im, B)
    await make_both(im, a, b)

    # Alice stops receiving Bob's presence (§3.3)
    a.send_presence_subscription(B, ptype="unsubscribe")
    _, item, _ = await next_push(a)
    assert item["subscription"] == "from"
    await presence_from(b, A, "unsubscribe")
    _, item, _ = await next_push(b)
    assert item["subscription"] == "to"
    p = await presence_from(a, b.boundjid, "unavailable")   # §3.3.3
    b.send_presence(pshow="chat")
    await no_presence(a, B)

    # Alice takes back Bob's subscription to her (§3.2)
    a.send_presence_subscription(B, ptype="unsubscribed")
    await presence_from(b, a.boundjid, "unavailable")      # sent before the cancellation
    await presence_from(b, A, "unsubscribed")
    _, item, _ = await next_push(a)
    assert item["subscription"] == "none"
    _, item, _ = await next_push(b)
    assert item["subscription"] == "none"
    a.send_presence(pshow="xa")
    await no_presence(b, A)
    assert await state_of(im, A, B) == rm.NONE
    assert await state_of(im, B, A) == rm.NONE


async def test_denied_request(im):
    await im.adduser(A)
    await im.adduser(B)
    a = await connect(im, A)
    b = await connect(im, B)
    a.send_presence_subscription(B)
    await presence_from(b, A, "subscribe")
    b.send_presence_subscription(A, ptype="unsubscribed")
    await presence_from(a, B, "unsubscribed")
    _, item, _ = await next_push(a)     # first push: the ask
    _, item, _ = await next_push(a)
    assert item["subscription"] == "none" and not item["ask"]
    assert await item_of(im, B, A) is None   # a stranger's request leaves no trace
    await no_push(b)


async def test_preapproval(im):
    await im.adduser(A)
    await im.adduser(B)
    a = await connect(im, A)
    b = await connect(im, B)
    assert "preapproval" in b.features
    b.send_presence_subscription(A, ptype="subscribed")
    jid, item, _ = await next_push(b)
    assert jid == A and item["subscription"] == "none"
    assert item["approved"] == "true"
    await no_presence(a, B, "subscribed")     # not routed (§3.4)

    a.send_presence_subscription(B)
    await presence_from(a, B, "subscribed")   # approved by Bob's server
    await presence_from(a, b.boundjid)
    await no_presence(b, A, "subscribe")
    assert await state_of(im, A, B) == rm.TO
    assert await state_of(im, B, A) == rm.FROM
    _, item, _ = await next_push(b)
    assert item["subscription"] == "from" and item["approved"] is None

    # a pre-approval can be taken back without anything reaching the contact
    b.send_presence_subscription("carol@xmppd.test", ptype="subscribed")
    _, item, _ = await next_push(b)
    assert item["approved"] == "true"
    b.send_presence_subscription("carol@xmppd.test", ptype="unsubscribed")
    _, item, _ = await next_push(b)
    assert item["approved"] is None


async def test_request_to_offline_user_waits_for_login(im):
    await im.adduser(A)
    await im.adduser(B)
    a = await connect(im, A)
    subscribe(a, B, nick="Alice L.")
    await next_push(a)
    await wait_state(im, B, A, rm.NONE_IN)
    for _ in range(2):   # delivered at every login until answered
        b = await connect(im, B)
        p = await presence_from(b, A, "subscribe")
        assert p.xml.find(NICK).text == "Alice L."
        await slix_close(b)
        im.clients.remove(b)
    b = await connect(im, B)
    await presence_from(b, A, "subscribe")
    b.send_presence_subscription(A, ptype="subscribed")
    await presence_from(a, B, "subscribed")
    await slix_close(b)
    im.clients.remove(b)
    b = await connect(im, B)
    await no_presence(b, A, "subscribe")


async def test_remove_contact_cancels_both_directions(im):
    await im.adduser(A)
    await im.adduser(B)
    a = await connect(im, A)
    b = await connect(im, B)
    await make_both(im, a, b)
    # a bare roster remove (slixmpp's del_roster_item sends unsubscribe and
    # unsubscribed itself first): the server does the rest (§2.5.3)
    iq = a.make_iq_set()
    iq.append(ET.fromstring(f"<query xmlns='jabber:iq:roster'><item jid='{B}' subscription='remove'/></query>"))
    await iq.send()
    jid, item, _ = await next_push(a)
    assert jid == B and item["subscription"] == "remove"
    await presence_from(b, a.boundjid, "unavailable")
    await presence_from(b, A, "unsubscribed")
    await presence_from(b, A, "unsubscribe")
    await wait_state(im, B, A, rm.NONE)
    assert await item_of(im, A, B) is None
    a.send_presence(pshow="away")
    await no_presence(b, A)


async def test_subscribe_to_unknown_account(im):
    await im.adduser(A)
    a = await connect(im, A)
    a.send_presence_subscription("nobody@other.test")
    await presence_from(a, "nobody@other.test", "unsubscribed")
    await wait_state(im, A, "nobody@other.test", rm.NONE)


async def test_account_deletion_removes_user_from_rosters(im):
    await im.adduser(A)
    await im.adduser(B)
    await im.adduser("carol@xmppd.test")
    a = await connect(im, A)
    b = await connect(im, B)
    carol = await connect(im, "carol@xmppd.test")
    await make_both(im, a, b)
    await carol.update_roster(A, name="Alice")   # no subscription at all
    await next_push(carol)
    await im.server.accounts.delete("xmppd.test", "alice")
    jid, item, _ = await next_push(b)
    assert jid == A and item["subscription"] == "remove"
    await presence_from(b, a.boundjid, "unavailable")
    jid, item, _ = await next_push(carol)
    assert jid == A and item["subscription"] == "remove"
    assert await item_of(im, B, A) is None
    assert await item_of(im, "carol@xmppd.test", A) is None
    assert await im.server.hosts["xmppd.test"].roster.get_roster("alice") == {}


async def test_aioxmpp_subscription_handshake(im):
    aioxmpp = pytest.importorskip("aioxmpp")
    await im.adduser(A)
    await im.adduser(B)
    b = await connect(im, B)
    client = aioxmpp_client(im, A)
    roster = client.summon(aioxmpp.RosterClient)
    presence = client.summon(aioxmpp.PresenceClient)
    server = client.summon(aioxmpp.PresenceServer)
    bob = aioxmpp.JID.fromstr(B)
    loop = asyncio.get_running_loop()
    requested = loop.create_future()
    available = loop.create_future()

    # (an aioxmpp handler that returns a true value is disconnected: return None)
    def on_subscribe(st):
        if not requested.done():
            requested.set_result(st)

    def on_available(full, st):
        if full.bare() == bob and not available.done():
            available.set_result(full)
    roster.on_subscribe.connect(on_subscribe)
    presence.on_available.connect(on_available)
    async with client.connected():
        server.set_presence(aioxmpp.PresenceState(True))
        roster.subscribe(bob)
        await presence_from(b, A, "subscribe")
        b.send_presence_subscription(A, ptype="subscribed")
        assert str(await asyncio.wait_for(available, 10)) == str(b.boundjid)
        b.send_presence_subscription(A)
        st = await asyncio.wait_for(requested, 10)
        assert str(st.from_) == B
        roster.approve(bob)
        await presence_from(b, A, "subscribed")
        await wait_state(im, A, B, rm.BOTH)
        for _ in range(100):
            if roster.items.get(bob) and roster.items[bob].subscription == "both":
                break
            await asyncio.sleep(0.05)
        assert roster.items[bob].subscription == "both"
        server.set_presence(aioxmpp.PresenceState(True, aioxmpp.PresenceShow.AWAY), {None: "brb"})
        p = await presence_from(b, A)
        while p["show"] != "away":
            p = await presence_from(b, A)
        assert p["status"] == "brb"
    # the aioxmpp session went away: Bob sees it
    await presence_from(b, A, "unavailable")

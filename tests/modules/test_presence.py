"""Presence (RFC 6121 §4) and subscriptions (§3): broadcast to subscribers and own
resources, probes at login and their answers, unavailable on the way out,
directed presence, and the subscription handshake."""
from tests.harness import Harness
from xmppd.moduleapi import roster as rs
from xmppd.xmpp import ns

C = "{" + ns.CLIENT + "}"


async def subscribed(h, user: str, contact: str, state: str) -> None:
    """Put ``contact`` on ``user``'s roster in subscription ``state``."""
    def change(item):
        return rs.set_state(item or rs.new_item(), state)
    await h.host().roster.update(user, contact, change)


async def mutual(h, a: str, b: str) -> None:
    for user in (a, b):
        if not await h.server.accounts.exists("example.com", user):
            await h.adduser(f"{user}@example.com")
    await subscribed(h, a, f"{b}@example.com", rs.BOTH)
    await subscribed(h, b, f"{a}@example.com", rs.BOTH)


def presences(client, frm: str | None = None) -> list:
    return [(p.get("from"), p.get("type")) for p in client.received
            if p.tag == C + "presence" and (frm is None or p.get("from", "").startswith(frm))]


async def test_broadcast_to_subscribers_and_probe_answers_at_login():
    async with Harness() as h:
        await h.adduser("alice@example.com")
        await h.adduser("bob@example.com")
        await mutual(h, "alice", "bob")
        bob = await h.client("bob@example.com/pc", available=True)
        alice = await h.client("alice@example.com/phone")
        await alice.online("<presence><show>away</show></presence>")
        # bob sees alice come online (with what she sent), alice gets bob's presence
        got = await bob.next("presence", match=lambda p: p.get("from") == "alice@example.com/phone")
        assert got.findtext(C + "show") == "away" and got.get("to") == "bob@example.com"
        back = await alice.next("presence", match=lambda p: p.get("from") == "bob@example.com/pc")
        assert back.get("type") is None and back.find(f"{{{ns.DELAY}}}delay") is not None
        # a stranger sees nothing
        carol = await h.client("carol@example.com/x", available=True)
        await alice.send_stanza("<presence><show>dnd</show></presence>")
        assert presences(carol, "alice@") == []
        got = await bob.next("presence", match=lambda p: p.get("from") == "alice@example.com/phone")
        assert got.findtext(C + "show") == "dnd"
        # unavailable when the connection goes
        await alice.disconnect()
        gone = await bob.next("presence", match=lambda p: p.get("from") == "alice@example.com/phone")
        assert gone.get("type") == "unavailable"


async def test_probe_of_an_offline_contact_gets_unavailable_from_the_bare_jid():
    async with Harness() as h:
        await h.adduser("alice@example.com")
        await subscribed(h, "bob", "alice@example.com", rs.TO)
        await subscribed(h, "alice", "bob@example.com", rs.FROM)
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.server_tasks()
        assert presences(bob, "alice@") == [("alice@example.com", "unavailable")]


async def test_own_resources_see_each_other():
    async with Harness() as h:
        phone = await h.client("alice@example.com/phone", available=True)
        laptop = await h.client("alice@example.com/laptop", available=True)
        # the laptop got the phone's presence at login, the phone the laptop's
        assert ("alice@example.com/phone", None) in presences(laptop)
        assert ("alice@example.com/laptop", None) in presences(phone)


async def test_directed_presence_is_undone_by_unavailable():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<presence to='bob@example.com/pc'/>")
        assert presences(bob, "alice@") == [("alice@example.com/phone", None)]
        assert alice.directed == {"bob@example.com/pc"}
        await alice.send_stanza("<presence type='unavailable'/>")
        assert presences(bob, "alice@")[-1] == ("alice@example.com/phone", "unavailable")
        assert alice.directed == set()


async def test_subscription_handshake():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        alice.interested = bob.interested = True      # as after a roster get
        await alice.send_stanza("<presence to='bob@example.com' type='subscribe'/>")
        request = await bob.next("presence", match=lambda p: p.get("type") == "subscribe")
        assert request.get("from") == "alice@example.com"        # stamped with the bare JID
        roster = h.host().roster
        assert rs.state_of(await roster.get_record("alice", "bob@example.com")) == rs.NONE_OUT
        await bob.send_stanza("<presence to='alice@example.com' type='subscribed'/>")
        ok = await alice.next("presence", match=lambda p: p.get("type") == "subscribed")
        assert ok.get("from") == "bob@example.com"
        # the new subscriber gets bob's current presence
        await alice.next("presence", match=lambda p: p.get("from") == "bob@example.com/pc" and p.get("type") is None)
        assert rs.state_of(await roster.get_record("alice", "bob@example.com")) == rs.TO
        assert rs.state_of(await roster.get_record("bob", "alice@example.com")) == rs.FROM
        # from now on bob's presence reaches alice
        await bob.send_stanza("<presence><status>here</status></presence>")
        got = await alice.next("presence", match=lambda p: p.findtext(C + "status") == "here")
        assert got.get("from") == "bob@example.com/pc"


async def test_presence_to_the_server_and_bad_broadcasts():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await alice.send_stanza("<presence to='example.com' type='probe'/>")
        got = await alice.next("presence", match=lambda p: p.get("from") == "example.com")
        assert got.get("type") is None
        await alice.send_stanza("<presence type='subscribe' id='p1'/>")
        err = await alice.next("presence", match=lambda p: p.get("type") == "error")
        assert err.get("id") == "p1"
        assert err.find(f"{C}error/{{{ns.STANZAS_ERR}}}bad-request") is not None


async def test_removing_a_contact_cancels_both_ways():
    async with Harness() as h:
        await mutual(h, "alice", "bob")
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        bob.received.clear()
        await h.host().roster.remove("alice", "bob@example.com")
        await alice.server_tasks()
        assert presences(bob, "alice@") == [("alice@example.com/phone", "unavailable")]
        roster = h.host().roster
        assert rs.state_of(await roster.get_record("bob", "alice@example.com")) == rs.NONE

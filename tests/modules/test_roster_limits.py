"""max_roster_items holds on every path that adds a contact (a roster set, a
subscription request, an approval, a pre-approval), and what a stranger may leave
waiting is bounded in number and size."""
from tests.harness import Harness
from xmppd.core import roster as rs

ERR = "{jabber:client}error"
NOT_ALLOWED = "{urn:ietf:params:xml:ns:xmpp-stanzas}not-allowed"
MODS = ("roster",)


async def listed(h, user):
    return sorted(await h.host().roster.get_roster(user))


async def test_outgoing_subscriptions_stop_at_the_roster_limit():
    async with Harness(modules=MODS, host_extra="max_roster_items = 3\n") as h:
        alice = await h.client("alice@example.com/phone", available=True)
        for i in range(3):
            await alice.send_stanza(f"<presence to='c{i}@elsewhere.example' type='subscribe'/>")
        assert len(await listed(h, "alice")) == 3
        await alice.send_stanza("<presence to='c3@elsewhere.example' type='subscribe' id='four'/>")
        err = await alice.next("presence", match=lambda e: e.get("id") == "four")
        assert err.get("type") == "error" and err.find(f"{ERR}/{NOT_ALLOWED}") is not None
        assert len(await listed(h, "alice")) == 3
        assert "c3@elsewhere.example" not in await listed(h, "alice")


async def test_approving_a_stranger_or_pre_approving_stops_at_the_limit():
    async with Harness(modules=MODS, host_extra="max_roster_items = 1\n") as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await alice.send_stanza("<presence to='bob@elsewhere.example' type='subscribe'/>")
        # a stranger's request is not a roster item: it may wait
        await h.route("<presence from='carol@example.org' to='alice@example.com' type='subscribe'/>")
        rec = await h.host().roster.get_record("alice", "carol@example.org")
        assert rec is not None and rs.state_of(rec) == rs.NONE_IN
        # approving it would put a second contact on the roster
        await alice.send_stanza("<presence to='carol@example.org' type='subscribed' id='ok'/>")
        err = await alice.next("presence", match=lambda e: e.get("id") == "ok")
        assert err.find(f"{ERR}/{NOT_ALLOWED}") is not None
        # and so would a pre-approval
        await alice.send_stanza("<presence to='dave@example.org' type='subscribed' id='pre'/>")
        err = await alice.next("presence", match=lambda e: e.get("id") == "pre")
        assert err.find(f"{ERR}/{NOT_ALLOWED}") is not None
        assert await listed(h, "alice") == ["bob@elsewhere.example"]


async def test_strangers_requests_are_capped_in_number():
    async with Harness(modules=MODS, host_extra="max_subscription_requests = 2\n") as h:
        await h.adduser("alice@example.com")
        for who in ("s1", "s2", "s3"):
            await h.route(f"<presence from='{who}@spam.example' to='alice@example.com' type='subscribe'/>")
        waiting = await h.host().roster.pending_requests("alice")
        assert sorted(waiting) == ["s1@spam.example", "s2@spam.example"]
        # a contact already known may still ask again
        await h.route("<presence from='s1@spam.example' to='alice@example.com' type='subscribe'/>")
        assert len(await h.host().roster.pending_requests("alice")) == 2


async def test_a_huge_request_is_stored_cut_to_its_status_and_nick():
    async with Harness(modules=MODS) as h:
        await h.adduser("alice@example.com")
        status = "x" * 200_000
        await h.route("<presence from='bob@example.org' to='alice@example.com' type='subscribe'>"
                      f"<status>{status}</status><nick xmlns='http://jabber.org/protocol/nick'>Bob</nick>"
                      "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>")
        rec = await h.host().roster.get_record("alice", "bob@example.org")
        assert len(rec["request"]) < 1500
        req = (await h.host().roster.pending_requests("alice"))["bob@example.org"]
        assert req.findtext("{http://jabber.org/protocol/nick}nick") == "Bob"
        assert 0 < len(req.findtext("{jabber:client}status")) <= 1024
        # the client that logs in later sees the request, with its nick
        alice = await h.client("alice@example.com/phone", available=True)
        got = await alice.next("presence", match=lambda e: e.get("type") == "subscribe")
        assert got.get("from") == "bob@example.org"

"""Last Activity (XEP-0012): the server's uptime; an account's last logout (and
its status text) for itself and for contacts subscribed to its presence only."""
import time

from tests.harness import Harness
from xmppd.moduleapi import roster as rs
from xmppd.xmpp import ns

LAST = f"<query xmlns='{ns.LAST}'/>"
Q = ns.q(ns.LAST, "query")


def error_of(reply):
    assert reply.get("type") == "error", reply.attrib
    err = reply.find(ns.q(ns.CLIENT, "error"))
    return next(c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR))


async def subscribe(h, user, contact, state):
    await h.host().roster.update(user, contact, lambda item: rs.set_state(item or rs.new_item(), state))


async def test_server_uptime():
    async with Harness(modules=("lastactivity",)) as h:
        h.server.started_at -= 42
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", LAST, to="example.com")
        assert 42 <= int(reply.find(Q).get("seconds")) <= 45


async def test_the_last_logout_and_its_status():
    async with Harness(modules=("lastactivity",)) as h:
        laptop = await h.client("alice@example.com/laptop")
        assert error_of(await laptop.iq("get", LAST)) == "item-not-found"  # never logged out
        alice = await h.client("alice@example.com/phone", available=True)
        reply = await laptop.iq("get", LAST, to="alice@example.com")
        assert reply.find(Q).get("seconds") == "0" and reply.find(Q).text is None   # online
        await alice.send_stanza("<presence type='unavailable'><status>gone fishing</status></presence>")
        await alice.server_tasks()
        # its last available resource went away: offline now, with that status text
        rec = await _stored(h)
        assert rec["s"] == "gone fishing" and abs(rec["t"] - time.time()) < 5
        await _store(h).set("alice", {"t": time.time() - 300, "s": "gone fishing"})
        reply = await laptop.iq("get", LAST)
        assert 300 <= int(reply.find(Q).get("seconds")) <= 302
        assert reply.find(Q).text == "gone fishing"


def _store(h):
    return h.server.storage.keyval("example.com", "lastactivity")


async def _stored(h):
    return await _store(h).get("alice")


async def test_the_last_resource_closing_records_the_logout():
    async with Harness(modules=("lastactivity",)) as h:
        phone = await h.client("alice@example.com/phone")
        laptop = await h.client("alice@example.com/laptop")
        await phone.disconnect()
        assert await _stored(h) is None            # another resource is still there
        await laptop.disconnect()
        rec = await _stored(h)
        assert rec is not None and rec["s"] is None


async def test_only_the_account_and_subscribed_contacts_may_ask():
    async with Harness(modules=("lastactivity",)) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc")
        carol = await h.client("carol@example.com/pc")
        dave = await h.client("dave@example.com/pc")
        await subscribe(h, "alice", "bob@example.com", rs.FROM)     # bob sees alice
        await subscribe(h, "alice", "carol@example.com", rs.TO)     # alice sees carol, not back
        await subscribe(h, "alice", "dave@example.com", rs.BOTH)
        for who in (bob, dave):
            reply = await who.iq("get", LAST, to="alice@example.com")
            assert reply.get("type") == "result" and reply.find(Q).get("seconds") == "0"
        assert error_of(await carol.iq("get", LAST, to="alice@example.com")) == "forbidden"
        stranger = await h.client("eve@example.com/x")
        assert error_of(await stranger.iq("get", LAST, to="alice@example.com")) == "forbidden"
        await alice.disconnect()
        reply = await bob.iq("get", LAST, to="alice@example.com")
        assert reply.get("type") == "result" and reply.find(Q).get("seconds") == "0"

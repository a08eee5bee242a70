"""Blocking command (XEP-0191): the list and its pushes, the effects both ways,
presence on block, the own-account check, and a local sender's list seen from
another host."""
from tests.harness import Harness
from xmppd.modules.blocklist import Blocklists, matches
from xmppd.xmpp import ns

C = "{" + ns.CLIENT + "}"
B = "{" + ns.BLOCKING + "}"
MODS = ("blocklist",)


def block(*jids: str, action: str = "block") -> str:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return f"<{action} xmlns='{ns.BLOCKING}'>{items}</{action}>"


def condition(stanza) -> str:
    err = next(x for x in stanza if x.tag.rpartition("}")[2] == "error")
    return next(x.tag.rpartition("}")[2] for x in err if x.tag.startswith("{" + ns.STANZAS_ERR))


async def the_list(client) -> list:
    reply = await client.iq("get", f"<blocklist xmlns='{ns.BLOCKING}'/>")
    assert reply.get("type") == "result"
    return [i.get("jid") for i in reply.find(B + "blocklist")]


async def test_list_edits_and_pushes_to_who_asked():
    async with Harness(modules=MODS) as h:
        one = await h.client("alice@example.com/one")
        two = await h.client("alice@example.com/two")
        assert await the_list(two) == []                      # 'two' now gets pushes
        reply = await one.iq("set", block("bob@example.com", "Example.NET", "carol@example.com/x"))
        assert reply.get("type") == "result"
        push = await two.next("iq", match=lambda e: e.get("type") == "set")
        assert [i.get("jid") for i in push.find(B + "block")] == [
            "bob@example.com", "example.net", "carol@example.com/x"]
        assert [e for e in one.received if e.get("type") == "set"] == []
        assert await the_list(one) == ["bob@example.com", "carol@example.com/x", "example.net"]

        await one.iq("set", block("example.net", action="unblock"))
        push = await two.next("iq", match=lambda e: e.get("type") == "set")
        assert [i.get("jid") for i in push.find(B + "unblock")] == ["example.net"]
        await one.iq("set", block(action="unblock"))            # everything
        push = await two.next("iq", match=lambda e: e.get("type") == "set")
        assert len(push.find(B + "unblock")) == 0
        assert await the_list(one) == []


async def test_bad_requests():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/one")
        reply = await alice.iq("set", block())
        assert condition(reply) == "bad-request"
        reply = await alice.iq("set", f"<block xmlns='{ns.BLOCKING}'><item/></block>")
        assert condition(reply) == "jid-malformed"
        reply = await alice.iq("set", block("@bad@"))
        assert condition(reply) == "jid-malformed"


async def test_only_the_account_itself():
    async with Harness(modules=MODS) as h:
        await h.client("alice@example.com/one")
        bob = await h.client("bob@example.com/pc")
        for t, payload in (("get", f"<blocklist xmlns='{ns.BLOCKING}'/>"), ("set", block("x.example"))):
            reply = await bob.iq(t, payload, to="alice@example.com")
            assert reply.get("type") == "error" and condition(reply) == "service-unavailable"


async def test_effects_both_ways():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/one", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.iq("set", block("bob@example.com"))
        # inbound: bob's chat and IQ bounce, his headline and presence are dropped
        await bob.send_stanza("<message to='alice@example.com' type='chat' id='m1'><body>hi</body></message>")
        err = await bob.next("message")
        assert err.get("id") == "m1" and condition(err) == "service-unavailable"
        await bob.send_stanza("<message to='alice@example.com/one' type='headline'><body>x</body></message>")
        await bob.send_stanza("<presence to='alice@example.com/one'/>")
        reply = await bob.iq("get", f"<ping xmlns='{ns.PING}'/>", to="alice@example.com/one")
        assert condition(reply) == "service-unavailable"
        assert [e for e in alice.received if e.get("from", "").startswith("bob@")] == []
        # outbound: alice's message and IQ are refused as blocked, her presence dropped
        await alice.send_stanza("<message to='bob@example.com' type='chat' id='o1'><body>hi</body></message>")
        err = await alice.next("message")
        assert err.get("id") == "o1" and condition(err) == "not-acceptable"
        assert err.find(f"{C}error/{{{ns.BLOCKING_ERRORS}}}blocked") is not None
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>", to="bob@example.com/pc")
        assert condition(reply) == "not-acceptable"
        await alice.send_stanza("<presence to='bob@example.com/pc'/>")
        assert [e for e in bob.received if e.get("from", "").startswith("alice@")] == []

        await alice.iq("set", block("bob@example.com", action="unblock"))
        await bob.send_stanza("<message to='alice@example.com' type='chat'><body>now?</body></message>")
        assert (await alice.next("message")).findtext(C + "body") == "now?"


async def test_blocking_sends_unavailable_to_who_had_directed_presence():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/one", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<presence to='bob@example.com/pc'/>")
        assert (await bob.next("presence")).get("type") is None
        await alice.iq("set", block("bob@example.com/pc"))
        gone = await bob.next("presence")
        assert gone.get("type") == "unavailable" and gone.get("from") == "alice@example.com/one"
        assert "bob@example.com/pc" not in alice.directed


async def test_a_local_senders_list_is_seen_from_another_host():
    async with Harness(modules=MODS, hosts=("example.com", "example.net")) as h:
        alice = await h.client("alice@example.com/one")
        carol = await h.client("carol@example.net/pc", available=True)
        await alice.iq("set", block("carol@example.net"))
        provided = h.host("example.com").provided("blocklist")
        assert isinstance(provided, Blocklists) and provided is not h.host("example.net").provided("blocklist")
        # presence the server sends on alice's behalf (not from her client) to carol's host
        await h.route("<presence from='alice@example.com' to='carol@example.net/pc'/>")
        assert [e for e in carol.received if e.get("from", "").startswith("alice@")] == []
        await h.route("<presence from='dave@example.com' to='carol@example.net/pc'/>")
        assert [e.get("from") for e in carol.received] == ["dave@example.com"]
        # unavailable always passes
        await h.route("<presence type='unavailable' from='alice@example.com' to='carol@example.net/pc'/>")
        assert [e.get("from") for e in carol.received][-1] == "alice@example.com"


async def test_user_deleted_forgets_the_list():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/one")
        await alice.iq("set", block("bob@example.com"))
        lists = h.host().provided("blocklist")
        assert await lists.of("alice") == {"bob@example.com"}
        await alice.disconnect()
        await h.server.accounts.delete("example.com", "alice")
        assert await lists.of("alice") == frozenset()


def test_matching():
    blocked = frozenset({"bob@example.com", "example.net", "carol@example.com/x", "example.org/r"})
    assert matches(blocked, "bob@example.com/any")
    assert matches(blocked, "anyone@example.net/r") and matches(blocked, "example.net")
    assert matches(blocked, "carol@example.com/x") and not matches(blocked, "carol@example.com/y")
    assert matches(blocked, "example.org/r") and not matches(blocked, "example.org/other")
    assert not matches(blocked, "") and not matches(frozenset(), "bob@example.com")
    assert not matches(blocked, "@@bad")

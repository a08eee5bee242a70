"""Message carbons (XEP-0280): the eligibility rules, received and sent copies to
the other resources that enabled them, <private/>, and who may toggle them."""
from tests.harness import Harness, parse
from xmppd.modules.carbons import eligible
from xmppd.xmpp import ns

C = "{" + ns.CLIENT + "}"
CARBONS = "{" + ns.CARBONS + "}"
FORWARDED = "{" + ns.FORWARD + "}forwarded"


def carbon_of(msg):
    """(direction, inner message) of a carbon copy, None for another message."""
    for direction in ("sent", "received"):
        wrapper = msg.find(CARBONS + direction)
        if wrapper is not None:
            return direction, wrapper.find(FORWARDED).find(C + "message")
    return None


def carbons(client):
    return [carbon_of(m) for m in client.received if m.tag == C + "message" and carbon_of(m)]


async def alices(h):
    """Three resources of alice (a and b enable carbons, c does not) and bob."""
    a = await h.client("alice@example.com/a", available=False)
    await a.online("<presence><priority>5</priority></presence>")
    b = await h.client("alice@example.com/b")
    await b.online("<presence><priority>1</priority></presence>")
    c = await h.client("alice@example.com/c")
    await c.online("<presence><priority>1</priority></presence>")
    bob = await h.client("bob@example.com/x", available=True)
    for who in (a, b):
        assert (await who.iq("set", f"<enable xmlns='{ns.CARBONS}'/>")).get("type") == "result"
    for who in (a, b, c, bob):
        who.received.clear()
    return a, b, c, bob


def error_condition(reply):
    err = next(x for x in reply if x.tag.rpartition("}")[2] == "error")
    return [x.tag.rpartition("}")[2] for x in err if x.tag.startswith("{" + ns.STANZAS_ERR)][0]


async def test_received_copies_go_to_the_other_enabled_resources():
    async with Harness(modules=("carbons",)) as h:
        a, b, c, bob = await alices(h)
        await bob.send_stanza("<message to='alice@example.com/c' type='chat' id='m1'><body>to c</body></message>")
        assert (await c.next("message")).findtext(C + "body") == "to c"
        assert carbons(c) == []
        for who in (a, b):
            (direction, inner), = carbons(who)
            assert direction == "received"
            assert inner.get("id") == "m1" and inner.get("from") == "bob@example.com/x"
            outer = who.received[0]
            assert outer.get("from") == "alice@example.com" and outer.get("to") == who.full_jid


async def test_a_message_to_the_bare_jid_is_copied_to_those_that_did_not_get_it():
    async with Harness(modules=("carbons",)) as h:
        a, b, c, bob = await alices(h)
        await bob.send_stanza("<message to='alice@example.com' type='chat'><body>hi</body></message>")
        assert (await a.next("message")).findtext(C + "body") == "hi"     # the highest priority
        assert carbons(a) == [] and carbons(c) == []
        assert [d for d, _ in carbons(b)] == ["received"]


async def test_sent_copies_go_to_the_senders_other_enabled_resources():
    async with Harness(modules=("carbons",)) as h:
        a, b, c, bob = await alices(h)
        await c.send_stanza("<message to='bob@example.com' type='chat'><body>from c</body></message>")
        assert (await bob.next("message")).findtext(C + "body") == "from c"
        for who in (a, b):
            (direction, inner), = carbons(who)
            assert direction == "sent"
            assert inner.get("from") == "alice@example.com/c" and inner.get("to") == "bob@example.com"
        assert c.received == []
        # a message between two of alice's resources: the target gets the message and
        # no copy; the third sees both sides
        a.received.clear()
        b.received.clear()
        await c.send_stanza("<message to='alice@example.com/b' type='chat'><body>note</body></message>")
        assert carbons(b) == [] and [d for d, _ in carbons(a)] == ["sent", "received"]


async def test_private_and_no_copy_are_never_copied():
    async with Harness(modules=("carbons",)) as h:
        a, b, c, bob = await alices(h)
        await bob.send_stanza("<message to='alice@example.com/c' type='chat'><body>secret</body>"
                              f"<private xmlns='{ns.CARBONS}'/></message>")
        got = await c.next("message")
        assert got.find(CARBONS + "private") is None          # removed from what is delivered
        await bob.send_stanza("<message to='alice@example.com/c' type='chat'><body>x</body>"
                              f"<no-copy xmlns='{ns.HINTS}'/></message>")
        await c.next("message")
        await c.send_stanza("<message to='bob@example.com' type='chat'><body>mine</body>"
                            f"<private xmlns='{ns.CARBONS}'/></message>")
        assert carbons(a) == [] and carbons(b) == []


async def test_disable_stops_copies():
    async with Harness(modules=("carbons",)) as h:
        a, b, c, bob = await alices(h)
        # the server's JID works too, and disabling twice is fine
        for _ in range(2):
            reply = await b.iq("set", f"<disable xmlns='{ns.CARBONS}'/>", to="example.com")
            assert reply.get("type") == "result"
        await bob.send_stanza("<message to='alice@example.com/c' type='chat'><body>x</body></message>")
        assert carbons(b) == [] and [d for d, _ in carbons(a)] == ["received"]
        assert (await b.iq("set", f"<enable xmlns='{ns.CARBONS}'/>", to="example.com")).get("type") == "result"
        await bob.send_stanza("<message to='alice@example.com/c' type='chat'><body>y</body></message>")
        assert [d for d, _ in carbons(b)] == ["received"]


async def test_only_the_account_itself_toggles_its_carbons():
    async with Harness(modules=("carbons",)) as h:
        alice = await h.client("alice@example.com/a")
        bob = await h.client("bob@example.com/x")
        reply = await bob.iq("set", f"<enable xmlns='{ns.CARBONS}'/>", to="alice@example.com")
        assert reply.get("type") == "error" and error_condition(reply) == "not-allowed"
        assert not alice.state.get("carbons")
        # from another server, to this server's JID: not one of our clients
        out = []
        h.server.events.hook("route/remote", lambda sev: out.append(sev.stanza) or True)
        await h.route(f"<iq type='set' id='r1' from='mallory@remote.example/x' to='example.com'>"
                      f"<enable xmlns='{ns.CARBONS}'/></iq>")
        assert [(r.get("id"), r.get("type"), error_condition(r)) for r in out] == [("r1", "error", "not-allowed")]


def test_eligibility_rules():
    def ok(xml, inbound=True, to_full=False):
        return eligible(parse(xml), inbound=inbound, user_bare="alice@example.com", to_full=to_full)

    assert ok("<message type='chat'/>")
    assert ok("<message><body>x</body></message>") and ok("<message type='normal'><body>x</body></message>")
    assert not ok("<message type='normal'/>")
    for payload in (ns.CHATSTATES, ns.RECEIPTS, ns.MARKERS, ns.JINGLE_MESSAGE, ns.JINGLE_MESSAGE_0):
        assert ok(f"<message><x xmlns='{payload}'/></message>"), payload
    assert not ok("<message><x xmlns='urn:example:other'/></message>")
    assert not ok("<message type='groupchat'><body>x</body></message>")
    assert not ok(f"<message type='groupchat'><active xmlns='{ns.CHATSTATES}'/></message>")
    assert not ok(f"<message type='headline'><stanza-id xmlns='{ns.SID}' by='alice@example.com' id='1'/></message>")
    assert not ok("<message type='headline'><body>x</body></message>")
    assert not ok(f"<message type='chat'><private xmlns='{ns.CARBONS}'/></message>")
    assert not ok(f"<message type='chat'><no-copy xmlns='{ns.HINTS}'/></message>")
    muc_pm = f"<message type='chat'><body>x</body><x xmlns='{ns.MUC_USER}'/></message>"
    assert not ok(muc_pm, to_full=True)
    assert ok(muc_pm, to_full=False) and ok(muc_pm, inbound=False, to_full=True)
    assert ok("<message type='error' from='bob@example.net'/>")
    assert not ok("<message type='error' from='bob@example.net/x'/>")
    assert not ok("<message type='error' from='bob@example.net'/>", inbound=False)
    assert ok(f"<message><stanza-id xmlns='{ns.SID}' by='alice@example.com' id='1'/></message>")
    assert not ok(f"<message><stanza-id xmlns='{ns.SID}' by='room@muc.example.com' id='1'/></message>")

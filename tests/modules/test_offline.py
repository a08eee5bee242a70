"""Offline messages (XEP-0160): stored while nobody can take them, delivered in
order with a delay stamp at the next available presence, then deleted; what is
not stored, and the quota."""
from tests.harness import Harness, parse
from xmppd.modules.offline import storable
from xmppd.xmpp import ns

C = "{" + ns.CLIENT + "}"
MODS = ("offline",)


def chat(to: str, body: str, type_: str = "chat", extra: str = "") -> str:
    return f"<message to='{to}' type='{type_}'><body>{body}</body>{extra}</message>"


def bodies(client) -> list:
    return [m.findtext(C + "body") for m in client.received if m.tag == C + "message"]


def errors(client) -> list:
    out = []
    for m in client.received:
        if m.get("type") == "error":
            err = next(x for x in m if x.tag.rpartition("}")[2] == "error")
            out.append(next(x.tag.rpartition("}")[2] for x in err))
    return out


async def test_stored_then_delivered_in_order_with_delay_and_deleted():
    async with Harness(modules=MODS) as h:
        await h.adduser("bob@example.com")
        alice = await h.client("alice@example.com/phone", available=True)
        for i in range(3):
            await alice.send_stanza(chat("bob@example.com", f"msg {i}"))
        await alice.send_stanza(chat("bob@example.com", "normal one", "normal"))
        await alice.send_stanza(chat("bob@example.com/gone", "to a gone resource"))
        assert errors(alice) == []
        assert "msgoffline" in h.host().features

        bob = await h.client("bob@example.com/pc")
        assert bodies(bob) == []                      # not before presence
        await bob.online()
        await bob.server_tasks()
        assert bodies(bob) == ["msg 0", "msg 1", "msg 2", "normal one", "to a gone resource"]
        for m in bob.received:
            if m.tag == C + "message":
                assert m.get("from") == "alice@example.com/phone"
                delay = m.find(f"{{{ns.DELAY}}}delay")
                assert delay.get("from") == "example.com" and delay.get("stamp").endswith("Z")

        again = await h.client("bob@example.com/laptop", available=True)
        await again.server_tasks()
        assert bodies(again) == []


async def test_what_is_not_stored():
    async with Harness(modules=MODS) as h:
        await h.adduser("bob@example.com")
        alice = await h.client("alice@example.com/phone", available=True)
        # a chat state alone: dropped silently
        await alice.send_stanza(f"<message to='bob@example.com' type='chat'><composing xmlns='{ns.CHATSTATES}'/></message>")
        assert errors(alice) == []
        # the no-store hint: refused
        await alice.send_stanza(chat("bob@example.com", "ephemeral", extra=f"<no-store xmlns='{ns.HINTS}'/>"))
        assert errors(alice) == ["service-unavailable"]
        # headlines and groupchat never reach the store
        await alice.send_stanza(chat("bob@example.com", "news", "headline"))
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.server_tasks()
        assert bodies(bob) == []


async def test_quota():
    async with Harness(modules=MODS, host_extra="offline_max_messages = 2\n") as h:
        await h.adduser("bob@example.com")
        alice = await h.client("alice@example.com/phone", available=True)
        for i in range(3):
            await alice.send_stanza(chat("bob@example.com", f"msg {i}"))
        assert errors(alice) == ["service-unavailable"]
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.server_tasks()
        assert bodies(bob) == ["msg 0", "msg 1"]


async def test_a_negative_priority_waits_until_it_is_raised():
    async with Harness(modules=MODS) as h:
        await h.adduser("bob@example.com")
        alice = await h.client("alice@example.com/phone", available=True)
        await alice.send_stanza(chat("bob@example.com", "later"))
        bob = await h.client("bob@example.com/pc")
        await bob.online("<presence><priority>-1</priority></presence>")
        await bob.server_tasks()
        assert bodies(bob) == []
        await alice.send_stanza(chat("bob@example.com", "still later"))
        await bob.send_stanza("<presence><priority>1</priority></presence>")
        await bob.server_tasks()
        assert bodies(bob) == ["later", "still later"]


def test_storable():
    assert storable(parse("<message type='chat'><body>x</body></message>")) is True
    assert storable(parse("<message><body>x</body></message>")) is True
    assert storable(parse("<message type='headline'><body>x</body></message>")) is False
    assert storable(parse("<message type='groupchat'><body>x</body></message>")) is False
    assert storable(parse(f"<message><body>x</body><no-store xmlns='{ns.HINTS}'/></message>")) is False
    assert storable(parse(f"<message><gone xmlns='{ns.CHATSTATES}'/></message>")) is None
    assert storable(parse(f"<message><body>x</body><gone xmlns='{ns.CHATSTATES}'/></message>")) is True

"""Message delivery to local accounts (RFC 6121 §8.5): to the bare JID by priority,
to a full JID or, when that resource is gone, by type; unknown accounts; the
offline event."""
import inspect

from tests.harness import Harness
from xmppd.modules import message
from xmppd.xmpp import ns

C = "{" + ns.CLIENT + "}"


def msg(to: str, type_: str = "chat", body: str = "hi") -> str:
    return f"<message to='{to}' type='{type_}' id='{type_}-{body}'><body>{body}</body></message>"


def bodies(client) -> list:
    return [m.findtext(C + "body") for m in client.received
            if m.tag == C + "message" and m.get("type") != "error"]


def errors(client) -> list:
    return [(m.get("id"), next(c.tag.rpartition("}")[2] for c in m.find(C + "error")))
            for m in client.received if m.get("type") == "error"]


async def online(h, jid: str, priority: int):
    c = await h.client(jid)
    await c.online(f"<presence><priority>{priority}</priority></presence>")
    c.received.clear()
    return c


async def test_to_the_bare_jid_the_highest_non_negative_priorities():
    async with Harness() as h:
        a = await online(h, "alice@example.com/a", 5)
        b = await online(h, "alice@example.com/b", 5)
        c = await online(h, "alice@example.com/c", 1)
        d = await online(h, "alice@example.com/d", -1)
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza(msg("alice@example.com"))
        assert bodies(a) == ["hi"] and bodies(b) == ["hi"] and bodies(c) == [] and bodies(d) == []
        # headlines go to every available resource with a non-negative priority
        await bob.send_stanza(msg("alice@example.com", "headline", "news"))
        assert bodies(c) == ["news"] and bodies(d) == []
        # groupchat to a bare JID is refused, errors are dropped
        await bob.send_stanza(msg("alice@example.com", "groupchat", "gc"))
        await bob.send_stanza(msg("alice@example.com", "error", "err"))
        assert errors(bob) == [("groupchat-gc", "service-unavailable")]
        assert bodies(a) == ["hi", "news"]


async def test_nobody_to_take_it_and_unknown_accounts():
    async with Harness() as h:
        await h.adduser("alice@example.com")
        await online(h, "alice@example.com/shy", -1)
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza(msg("alice@example.com", "chat", "nobody"))
        await bob.send_stanza(msg("alice@example.com", "headline", "dropped"))
        await bob.send_stanza(msg("nobody@example.com", "normal", "unknown"))
        await bob.send_stanza(msg("nobody@example.com", "headline", "unknown"))
        assert errors(bob) == [("chat-nobody", "service-unavailable"), ("normal-unknown", "service-unavailable")]


async def test_a_module_may_take_what_nobody_can_receive():
    async with Harness() as h:
        await h.adduser("alice@example.com")
        taken = []
        h.host().events.hook("message/offline", lambda sev: taken.append(sev.stanza.get("id")) or True)
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza(msg("alice@example.com", "chat", "kept"))
        assert taken == ["chat-kept"] and errors(bob) == []


async def test_to_a_full_jid():
    async with Harness() as h:
        a = await online(h, "alice@example.com/a", 0)
        b = await online(h, "alice@example.com/b", 0)
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza(msg("alice@example.com/b", "normal", "just b"))
        assert bodies(a) == [] and bodies(b) == ["just b"]
        # a resource that is gone: chat goes to the bare JID, normal is refused,
        # headline and error are dropped
        await bob.send_stanza(msg("alice@example.com/gone", "chat", "rerouted"))
        assert bodies(a) == ["rerouted"] and bodies(b) == ["just b", "rerouted"]
        for t in ("normal", "groupchat", "headline", "error"):
            await bob.send_stanza(msg("alice@example.com/gone", t, "lost"))
        assert errors(bob) == [("normal-lost", "service-unavailable"), ("groupchat-lost", "service-unavailable")]
        assert bodies(a) == ["rerouted"]


def test_the_full_jid_path_is_a_plain_function():
    assert not inspect.iscoroutinefunction(message.to_full)
    assert inspect.iscoroutinefunction(message.to_bare)

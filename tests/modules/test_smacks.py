"""Stream management (XEP-0198): enable, acks both ways, what ``xmppctl c2s`` shows,
hibernation, resumption and what an ended session never acknowledged."""
import asyncio
import collections

import pytest

from tests.harness import Client, Harness, parse
from xmppd.core.control import describe_c2s
from xmppd.modules import message, smacks
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StreamError

SM = "{" + ns.SM + "}"
MODS = ("smacks",)


def chat(to: str, body: str) -> str:
    return f"<message to='{to}' type='chat'><body>{body}</body></message>"


async def enable(c: Client, resume: bool = False):
    await c.send_stanza(f"<enable xmlns='{ns.SM}'" + (" resume='true'/>" if resume else "/>"))
    return await c.next(SM + "enabled")


async def test_enable_once_with_or_without_resumption():
    async with Harness(modules=MODS, host_extra="smacks_hibernation_time = 90\n") as h:
        alice = await h.client("alice@example.com/phone")
        features = [f(alice) for f in h.host().stream_features["bound"]]
        assert any(el is not None and el.tag == SM + "sm" for el in features)
        enabled = await enable(alice, resume=True)
        assert enabled.get("resume") == "true" and enabled.get("max") == "90" and enabled.get("id")
        # a second <enable/> is refused
        await alice.send_stanza(f"<enable xmlns='{ns.SM}'/>")
        failed = await alice.next(SM + "failed")
        assert failed.find(f"{{{ns.STANZAS_ERR}}}unexpected-request") is not None

        bob = await h.client("bob@example.com/pc")
        enabled = await enable(bob)
        assert enabled.get("id") is None and enabled.get("resume") is None and enabled.get("max") is None


async def test_r_before_enable_fails():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/phone")
        await alice.send_stanza(f"<r xmlns='{ns.SM}'/>")
        assert (await alice.next(SM + "failed")).find(f"{{{ns.STANZAS_ERR}}}unexpected-request") is not None


async def test_acks_both_ways():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await enable(alice)
        for i in range(3):
            await bob.send_stanza(chat("alice@example.com/phone", f"m{i}"))
        got = [(await alice.next("message")).findtext(f"{{{ns.CLIENT}}}body") for _ in range(3)]
        assert got == ["m0", "m1", "m2"]
        # the server asks once for an ack of what it sent
        await alice.next(SM + "r")
        sm = h.host().get_session("alice", "phone").state["smacks"]
        assert len(sm.queue) == 3
        await alice.send_stanza(f"<a xmlns='{ns.SM}' h='2'/>")
        assert len(sm.queue) == 1
        # ... and asks again while something is still unacknowledged
        await alice.next(SM + "r")
        await alice.send_stanza(f"<a xmlns='{ns.SM}' h='3'/>")
        assert len(sm.queue) == 0
        # what the client sent is counted (the stream management elements are not)
        await alice.send_stanza(chat("bob@example.com/pc", "one"))
        await alice.send_stanza(chat("bob@example.com/pc", "two"))
        await alice.send_stanza(f"<r xmlns='{ns.SM}'/>")
        assert (await alice.next(SM + "a")).get("h") == "2"


async def test_an_ack_of_more_than_was_sent_is_a_stream_error():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/phone")
        await enable(alice)
        with pytest.raises(StreamError) as exc:
            await alice.send_stanza(f"<a xmlns='{ns.SM}' h='5'/>")
        assert exc.value.condition == "undefined-condition"
        with pytest.raises(StreamError) as exc:
            await alice.send_stanza(f"<a xmlns='{ns.SM}' h='x'/>")
        assert exc.value.condition == "bad-format"


async def test_describe_for_xmppctl_c2s():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        assert describe_c2s(alice)["sm"] is None
        await enable(alice, resume=True)
        assert describe_c2s(alice)["sm"] == {"resumable": True, "hibernating": False, "unacked": 0}
        await bob.send_stanza(chat("alice@example.com/phone", "hello"))
        assert describe_c2s(alice)["sm"] == {"resumable": True, "hibernating": False, "unacked": 1}
        # the connection drops: the session hibernates, still described
        alice.connection_lost(ConnectionResetError())
        d = describe_c2s(alice)
        assert d["hibernating"] is True
        assert d["sm"] == {"resumable": True, "hibernating": True, "unacked": 1}


async def test_without_the_module_sessions_have_no_sm():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone")
        assert "sm" not in describe_c2s(alice)


async def test_resume_gets_what_was_not_acknowledged():
    async with Harness(modules=MODS) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        previd = (await enable(alice, resume=True)).get("id")
        await bob.send_stanza(chat("alice@example.com/phone", "seen"))
        await alice.send_stanza(f"<a xmlns='{ns.SM}' h='1'/>")
        await bob.send_stanza(chat("alice@example.com/phone", "in flight"))
        alice.connection_lost(ConnectionResetError())
        await bob.send_stanza(chat("alice@example.com/phone", "while away"))
        assert h.host().get_session("alice", "phone").hibernating

        # a new connection of the same account, authenticated, not bound
        again = Client(h.server, h.host(), "alice", "phone")
        again.resource = again.full_jid = None
        await again.send_stanza(f"<resume xmlns='{ns.SM}' previd='nope' h='0'/>")
        assert (await again.next(SM + "failed")).find(f"{{{ns.STANZAS_ERR}}}item-not-found") is not None
        await again.send_stanza(f"<resume xmlns='{ns.SM}' previd='{previd}' h='1'/>")
        resumed = await again.next(SM + "resumed")
        assert resumed.get("previd") == previd and resumed.get("h") == "0"
        got = [(await again.next("message")).findtext(f"{{{ns.CLIENT}}}body") for _ in range(2)]
        assert got == ["in flight", "while away"]
        assert h.host().get_session("alice", "phone") is again and not again.hibernating
        assert describe_c2s(again)["sm"]["resumable"] is True
        # the resumed session goes on counting and queueing
        await bob.send_stanza(chat("alice@example.com/phone", "after"))
        assert describe_c2s(again)["sm"]["unacked"] == 3


async def test_hibernation_over_delivers_unacknowledged_messages_again():
    async with Harness(modules=MODS, host_extra="smacks_hibernation_time = 0\n") as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await enable(alice, resume=True)
        await bob.send_stanza(chat("alice@example.com/phone", "never acknowledged"))
        await bob.send_stanza("<message to='alice@example.com/phone' type='headline'><body>news</body></message>")
        laptop = await h.client("alice@example.com/laptop", available=True)
        alice.connection_lost(ConnectionResetError())
        msg = await laptop.next("message")
        assert msg.findtext(f"{{{ns.CLIENT}}}body") == "never acknowledged"
        assert msg.get("to") == "alice@example.com" and msg.get("from") == "bob@example.com/pc"
        assert msg.find(f"{{{ns.DELAY}}}delay").get("from") == "example.com"
        await laptop.server_tasks()
        assert h.host().get_session("alice", "phone") is None
        assert not [e for e in laptop.received if e.tag.endswith("message")]   # not the headline


def test_redelivery_rules():
    el = parse
    m = el("<message from='b@x/r' to='a@y/r' type='chat'><body>x</body></message>")
    out = message.redelivery(m, "a@y", "y", 0)
    assert out.get("to") == "a@y" and out.find(f"{{{ns.DELAY}}}delay").get("stamp") == "1970-01-01T00:00:00Z"
    assert m.get("to") == "a@y/r" and m.find(f"{{{ns.DELAY}}}delay") is None   # the original is untouched
    for t in ("error", "groupchat", "headline"):
        assert message.redelivery(el(f"<message type='{t}'><body>x</body></message>"), "a@y", "y", 0) is None
    for child in (f"<received xmlns='{ns.CARBONS}'/>", "<result xmlns='urn:xmpp:mam:2'/>"):
        assert message.redelivery(el(f"<message>{child}</message>"), "a@y", "y", 0) is None
    delayed = el(f"<message><body>x</body><delay xmlns='{ns.DELAY}' stamp='2020-01-01T00:00:00Z'/></message>")
    assert len(message.redelivery(delayed, "a@y", "y", 0).findall(f"{{{ns.DELAY}}}delay")) == 1


def test_acknowledge_wraps_around():
    sm = smacks.SMState(False, 10)
    sm.acked_out = smacks.MOD32 - 1
    sm.queue = collections.deque(["a", "b", "c"])
    assert not sm.acknowledge(3)           # that would be four stanzas
    assert sm.acknowledge(1) and list(sm.queue) == ["c"] and sm.acked_out == 1
    assert sm.sent == 2


async def test_too_many_unacknowledged_closes_the_stream():
    async with Harness(modules=MODS, host_extra="smacks_max_queue_size = 2\n") as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await enable(alice)
        for i in range(3):
            await bob.send_stanza(chat("alice@example.com/phone", f"m{i}"))
        await asyncio.sleep(0)
        assert [e.condition for e in alice.stream_errors] == ["resource-constraint"]
        assert alice.closing

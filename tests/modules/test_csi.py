"""Client state indication (XEP-0352): an inactive client's presence updates and
chat states are held, the latest per contact, and flushed in order before
anything important and when it becomes active again."""
import xml.etree.ElementTree as ET

from tests.harness import Harness, parse
from xmppd.modules import csi
from xmppd.xmpp import ns

INACTIVE = f"<inactive xmlns='{ns.CSI}'/>"
ACTIVE = f"<active xmlns='{ns.CSI}'/>"
COMPOSING = ("<message to='alice@example.com/phone' type='chat'>"
             f"<composing xmlns='{ns.CHATSTATES}'/></message>")


def status(to: str, text: str) -> str:
    return f"<presence to='{to}'><status>{text}</status></presence>"


def summary(elements) -> list:
    out = []
    for el in elements:
        kind = el.tag.rpartition("}")[2]
        if kind == "presence":
            out.append(("presence", el.get("from"), el.findtext(f"{{{ns.CLIENT}}}status")))
        elif el.find(f"{{{ns.CLIENT}}}body") is not None:
            out.append(("body", el.get("from"), el.findtext(f"{{{ns.CLIENT}}}body")))
        else:
            out.append(("chatstate", el.get("from"), el[0].tag.rpartition("}")[2]))
    return out


async def test_feature_advertised():
    async with Harness(modules=("csi",)) as h:
        alice = await h.client("alice@example.com/phone")
        features = [f(alice) for f in h.host().stream_features["bound"]]
        assert any(el is not None and el.tag == f"{{{ns.CSI}}}csi" for el in features)


async def test_held_while_inactive_then_flushed_in_order_before_a_message():
    async with Harness(modules=("csi",)) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        carol = await h.client("carol@example.com/pc", available=True)
        await alice.send_stanza(INACTIVE)
        await bob.send_stanza(status("alice@example.com/phone", "one"))
        await carol.send_stanza(status("alice@example.com/phone", "carol's"))
        await bob.send_stanza(COMPOSING)
        await bob.send_stanza(status("alice@example.com/phone", "two"))
        assert alice.received == []
        await bob.send_stanza("<message to='alice@example.com/phone' type='chat'><body>wake up</body></message>")
        assert summary(alice.received) == [
            ("presence", "carol@example.com/pc", "carol's"),
            ("chatstate", "bob@example.com/pc", "composing"),
            ("presence", "bob@example.com/pc", "two"),       # only the latest, moved to the end
            ("body", "bob@example.com/pc", "wake up"),
        ]


async def test_active_flushes_and_stops_holding():
    async with Harness(modules=("csi",)) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza(INACTIVE)
        await alice.send_stanza(INACTIVE)      # twice is once
        await bob.send_stanza(status("alice@example.com/phone", "held"))
        assert alice.received == []
        assert len(alice.send_filters) == 1
        await alice.send_stanza(ACTIVE)
        assert summary(alice.received) == [("presence", "bob@example.com/pc", "held")]
        assert alice.send_filters == []
        alice.received.clear()
        await bob.send_stanza(status("alice@example.com/phone", "live"))
        assert summary(alice.received) == [("presence", "bob@example.com/pc", "live")]


async def test_important_stanzas_pass_at_once():
    async with Harness(modules=("csi",)) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza(INACTIVE)
        await bob.send_stanza("<presence to='alice@example.com' type='subscribe'/>")
        assert [e.get("type") for e in alice.received] == ["subscribe"]


async def test_the_limit_flushes_everything():
    async with Harness(modules=("csi",), host_extra="csi_max_held = 2\n") as h:
        alice = await h.client("alice@example.com/phone", available=True)
        others = [await h.client(f"u{i}@example.com/pc", available=True) for i in range(3)]
        await alice.send_stanza(INACTIVE)
        await others[0].send_stanza(status("alice@example.com/phone", "0"))
        await others[1].send_stanza(status("alice@example.com/phone", "1"))
        assert alice.received == []
        await others[2].send_stanza(status("alice@example.com/phone", "2"))
        assert [s for _, _, s in summary(alice.received)] == ["0", "1", "2"]


def test_what_is_unimportant():
    key = csi.unimportant_key
    assert key(parse("<presence from='b@x/r'/>")) == ("presence", "b@x/r")
    assert key(parse("<presence from='b@x/r' type='unavailable'/>")) == ("presence", "b@x/r")
    assert key(parse("<presence from='b@x' type='subscribe'/>")) is None
    assert key(parse(f"<message from='b@x/r'><active xmlns='{ns.CHATSTATES}'/></message>")) == ("chatstate", "b@x/r")
    assert key(parse(f"<message><active xmlns='{ns.CHATSTATES}'/><body>x</body></message>")) is None
    assert key(parse(f"<message type='error'><active xmlns='{ns.CHATSTATES}'/></message>")) is None
    assert key(parse(f"<message><received xmlns='{ns.CARBONS}'/><active xmlns='{ns.CHATSTATES}'/></message>")) is None
    assert key(parse("<iq type='get' id='1'/>")) is None
    assert key(ET.Element("{jabber:client}message")) is None

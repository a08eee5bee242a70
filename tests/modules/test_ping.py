"""XMPP Ping (XEP-0199): the server answers a ping to it with an empty result."""
from tests.harness import Harness
from xmppd.xmpp import ns


async def test_the_server_answers_a_ping():
    async with Harness(modules=("ping",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>", to="example.com")
        assert reply.get("type") == "result" and reply.get("from") == "example.com"
        assert len(reply) == 0
        assert ns.PING in h.host().features


async def test_without_the_module_no_answer():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>", to="example.com")
        assert reply.get("type") == "error"


async def test_a_ping_with_no_to_or_to_the_own_bare_jid_is_answered():
    """RFC 6120 §10.3.3, as Prosody: the server answers for the account; the reply
    has no 'from' (no 'to' in the ping) or the bare JID (§8.1.2.1)."""
    async with Harness(modules=("ping",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>")
        assert reply.get("type") == "result" and reply.get("from") is None
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>", to="alice@example.com")
        assert reply.get("type") == "result" and reply.get("from") == "alice@example.com"
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>", to="bob@example.com")
        assert reply.get("type") == "result" and reply.get("from") == "bob@example.com"

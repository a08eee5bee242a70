"""The socket-free harness itself: a client's IQ reaches a module and the answer
comes back serialized and parsed, as a client would read it."""
from tests.harness import Harness


async def test_ping_and_a_message_between_two_clients():
    async with Harness(modules=("ping",)) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        reply = await alice.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to="example.com")
        assert reply.get("type") == "result" and reply.get("from") == "example.com"
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>hi</body></message>")
        msg = await bob.next("message")
        assert msg.get("from") == "alice@example.com/phone"
        assert msg.findtext("{jabber:client}body") == "hi"


async def test_an_unknown_iq_is_service_unavailable():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", "<query xmlns='urn:example:nothing'/>", to="example.com")
        assert reply.get("type") == "error"
        assert reply.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable") is not None

"""RFC 6120 §8.1.2.1 and §10.3: a stanza with no 'to' is handled on behalf of the
sender's account, and what the server sends back on the account's behalf has no
'from' (or the bare JID). Strict clients drop anything else as spoofed."""
from tests.harness import Harness

ERR = "{jabber:client}error"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


async def test_error_to_an_iq_without_to_has_no_from():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", "<query xmlns='urn:example:unknown'/>")
        assert reply.get("type") == "error"
        assert reply.find(f"{ERR}/{STANZAS}service-unavailable") is not None
        assert reply.get("from") is None
        assert reply.get("to") == "alice@example.com/phone"


async def test_error_to_an_iq_to_the_domain_comes_from_the_domain():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", "<query xmlns='urn:example:unknown'/>", to="example.com")
        assert reply.get("type") == "error" and reply.get("from") == "example.com"


async def test_malformed_iq_without_to_gets_an_error_without_from():
    async with Harness() as h:
        alice = await h.client("alice@example.com/phone")
        await alice.send_stanza("<iq type='get' id='two'><a xmlns='urn:x'/><b xmlns='urn:x'/></iq>")
        reply = await alice.next("iq", match=lambda e: e.get("id") == "two")
        assert reply.get("type") == "error" and reply.get("from") is None
        assert reply.find(f"{ERR}/{STANZAS}bad-request") is not None

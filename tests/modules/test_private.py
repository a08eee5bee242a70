"""Private XML storage (XEP-0049): store, read back, delete; only the account
itself; the namespaces, sizes and empty queries it refuses."""
from tests.harness import Harness
from xmppd.xmpp import ns

Q = ns.q(ns.PRIVATE, "query")


def error_of(reply):
    assert reply.get("type") == "error", reply.attrib
    err = reply.find(ns.q(ns.CLIENT, "error"))
    return next(c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR))


def query(inner: str = "") -> str:
    return f"<query xmlns='{ns.PRIVATE}'>{inner}</query>"


NOTE = "<note xmlns='urn:example:notes'><item id='1'>milk</item></note>"


async def test_store_read_back_and_delete():
    async with Harness(modules=("private",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", query("<note xmlns='urn:example:notes'/>"))
        stored = reply.find(Q)[0]
        assert stored.tag == "{urn:example:notes}note" and len(stored) == 0

        assert (await alice.iq("set", query(NOTE))).get("type") == "result"
        # another client of the same account reads it, to the bare JID too
        other = await h.client("alice@example.com/laptop")
        reply = await other.iq("get", query("<note xmlns='urn:example:notes'/>"
                                            "<other xmlns='urn:example:other'/>"),
                               to="alice@example.com")
        got = reply.find(Q)
        assert [c.tag for c in got] == ["{urn:example:notes}note", "{urn:example:other}other"]
        assert got[0].find("{urn:example:notes}item").text == "milk"
        assert len(got[1]) == 0

        assert (await alice.iq("set", query("<note xmlns='urn:example:notes'/>"))).get("type") == "result"
        reply = await alice.iq("get", query("<note xmlns='urn:example:notes'/>"))
        assert len(reply.find(Q)[0]) == 0


async def test_another_accounts_storage_is_forbidden():
    async with Harness(modules=("private",)) as h:
        alice = await h.client("alice@example.com/phone")
        bob = await h.client("bob@example.com/pc")
        assert (await alice.iq("set", query(NOTE))).get("type") == "result"
        for type_, payload in (("get", "<note xmlns='urn:example:notes'/>"), ("set", NOTE)):
            reply = await bob.iq(type_, query(payload), to="alice@example.com")
            assert error_of(reply) == "forbidden"
        reply = await alice.iq("get", query("<note xmlns='urn:example:notes'/>"))
        assert reply.find(Q)[0].find("{urn:example:notes}item").text == "milk"


async def test_what_is_not_acceptable():
    async with Harness(modules=("private",), host_extra="    private_max_size = 100\n") as h:
        alice = await h.client("alice@example.com/phone")
        assert error_of(await alice.iq("get", query())) == "not-acceptable"
        assert error_of(await alice.iq("set", query())) == "not-acceptable"
        for xmlns in (ns.CLIENT, ns.SERVER, ns.PRIVATE):
            reply = await alice.iq("set", query(f"<x xmlns='{xmlns}'><y/></x>"))
            assert error_of(reply) == "not-acceptable", xmlns
        big = f"<note xmlns='urn:example:notes'>{'x' * 200}</note>"
        assert error_of(await alice.iq("set", query(big))) == "not-acceptable"
        small = "<note xmlns='urn:example:notes'>short</note>"
        assert (await alice.iq("set", query(small))).get("type") == "result"

"""Service Discovery (XEP-0030): the server's info and items, an account's info
and the items other modules fold into it."""
from tests.harness import Harness
from xmppd.xmpp import disco, ns

INFO = f"<query xmlns='{ns.DISCO_INFO}'/>"
ITEMS = f"<query xmlns='{ns.DISCO_ITEMS}'/>"


def error_of(reply):
    assert reply.get("type") == "error", reply.attrib
    err = reply.find(ns.q(ns.CLIENT, "error"))
    return next(c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR))


def features(query):
    return [f.get("var") for f in query.findall(ns.q(ns.DISCO_INFO, "feature"))]


def identities(query):
    return [(i.get("category"), i.get("type"), i.get("name"))
            for i in query.findall(ns.q(ns.DISCO_INFO, "identity"))]


async def test_host_info_lists_what_the_modules_registered():
    async with Harness(modules=("disco", "ping", "version", "server_contact_info"),
                       extra='server_name = "Falcot"\n'
                             'contact_info = { abuse = "mailto:abuse@example.com" }\n') as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", INFO, to="example.com")
        assert reply.get("type") == "result"
        q = reply.find(ns.q(ns.DISCO_INFO, "query"))
        assert identities(q) == [("server", "im", "Falcot")]
        feats = features(q)
        assert feats == sorted(set(feats))
        for var in (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, ns.VERSION):
            assert var in feats
        forms = q.findall(ns.q(ns.DATA, "x"))
        assert len(forms) == 1
        values = {f.get("var"): [v.text for v in f.findall(ns.q(ns.DATA, "value"))]
                  for f in forms[0].findall(ns.q(ns.DATA, "field"))}
        assert values == {"FORM_TYPE": [ns.SERVERINFO], "abuse-addresses": ["mailto:abuse@example.com"]}


async def test_a_feature_registered_later_is_in_the_next_answer():
    async with Harness(modules=("disco",)) as h:
        alice = await h.client("alice@example.com/phone")
        first = features((await alice.iq("get", INFO, to="example.com"))[0])
        assert ns.PING not in first
        h.host().load_module("ping")
        again = features((await alice.iq("get", INFO, to="example.com"))[0])
        assert ns.PING in again
        h.host().unload_module("ping")
        assert ns.PING not in features((await alice.iq("get", INFO, to="example.com"))[0])


async def test_host_info_and_items_of_a_node_are_item_not_found():
    async with Harness(modules=("disco",)) as h:
        alice = await h.client("alice@example.com/phone")
        for payload in (INFO, ITEMS):
            node = payload.replace("/>", " node='x'/>")
            assert error_of(await alice.iq("get", node, to="example.com")) == "item-not-found"


async def test_host_items_are_components_then_configured_items():
    async with Harness(modules=("disco",),
                       extra='disco_items = { { "news.example.org", "News" }, { "proxy.example.net" } }\n',
                       components='Component "gw.example.com"\n    component_secret = "s"\n'
                                  'Component "gw.example.org"\n    component_secret = "s"\n') as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", ITEMS, to="example.com")
        items = [(i.get("jid"), i.get("name"))
                 for i in reply.find(ns.q(ns.DISCO_ITEMS, "query"))]
        assert items == [("gw.example.com", None), ("news.example.org", "News"),
                         ("proxy.example.net", None)]


async def test_account_info_to_an_existing_account_only():
    async with Harness(modules=("disco", "private")) as h:
        alice = await h.client("alice@example.com/phone")
        await h.adduser("bob@example.com")
        reply = await alice.iq("get", INFO, to="bob@example.com")
        assert reply.get("type") == "result" and reply.get("from") == "bob@example.com"
        q = reply.find(ns.q(ns.DISCO_INFO, "query"))
        assert identities(q) == [("account", "registered", None)]
        assert features(q) == sorted([ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PRIVATE])
        assert q.find(ns.q(ns.DATA, "x")) is None
        assert error_of(await alice.iq("get", INFO, to="nobody@example.com")) == "service-unavailable"
        node = INFO.replace("/>", " node='x'/>")
        assert error_of(await alice.iq("get", node, to="bob@example.com")) == "item-not-found"


async def test_account_items_are_folded_from_the_modules():
    async with Harness(modules=("disco",)) as h:
        alice = await h.client("alice@example.com/phone")
        await h.adduser("bob@example.com")
        reply = await alice.iq("get", ITEMS, to="bob@example.com")
        assert reply.get("type") == "result"
        assert len(reply.find(ns.q(ns.DISCO_ITEMS, "query"))) == 0

        def add_items(items, event):
            return items + [disco.item(f"{event.user}@example.com", node="urn:example:n", name="N")]
        h.host().events.hook("disco-account-items", add_items)
        reply = await alice.iq("get", ITEMS, to="bob@example.com")
        got = [i.attrib for i in reply.find(ns.q(ns.DISCO_ITEMS, "query"))]
        assert got == [{"jid": "bob@example.com", "node": "urn:example:n", "name": "N"}]
        assert error_of(await alice.iq("get", ITEMS, to="nobody@example.com")) == "service-unavailable"


async def test_modules_add_disco_items_as_items():
    """A module lists a service in the server's disco#items with a "disco-item" item
    (Prosody's module:add_item("disco", ...)); it goes when the module unloads."""
    async with Harness(modules=("disco",)) as h:
        host = h.host()
        api = host.modules["disco"]
        api.add_item("disco-item", ("proxy.example.com", None, "File transfer proxy"))
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<query xmlns='{ns.DISCO_ITEMS}'/>", to="example.com")
        items = reply.findall(f"{{{ns.DISCO_ITEMS}}}query/{{{ns.DISCO_ITEMS}}}item")
        assert [(i.get("jid"), i.get("name")) for i in items] == [("proxy.example.com", "File transfer proxy")]
        host.unload_module("disco")
        assert host.items("disco-item") == []

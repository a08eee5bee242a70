"""PEP (XEP-0163) through the harness: publish and retract with notifications to
a contact whose caps ask for them (+notify), access models, publish-options
preconditions, the node configuration form, delete and purge notifications, the
last item when a contact comes online, disco of the account's nodes."""
import xml.etree.ElementTree as ET

from xmppd.moduleapi import roster as rs
from xmppd.modules.pep import caps as capsmod
from xmppd.xmpp import ns
import pytest

from tests.harness import Harness

MOOD = "http://jabber.org/protocol/mood"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
MODULES = ("disco", "roster", "pep")
EVENT = ns.q(ns.PUBSUB_EVENT, "event")


def error_of(reply):
    """(stanza error condition, pubsub#errors condition or None)."""
    assert reply.get("type") == "error", ET.tostring(reply)
    err = reply.find(ns.q(ns.CLIENT, "error"))
    cond = [c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR)][0]
    app = [c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.PUBSUB_ERRORS)]
    return cond, (app[0] if app else None)


def pubsub(inner: str, xmlns: str = ns.PUBSUB) -> str:
    return f"<pubsub xmlns='{xmlns}'>{inner}</pubsub>"


def mood(value: str) -> str:
    return f"<mood xmlns='{MOOD}'><{value}/></mood>"


def publish(node: str, item_id: str, payload: str, options: dict | None = None) -> str:
    po = ""
    if options:
        fields = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in options.items())
        po = (f"<publish-options><x xmlns='{ns.DATA}' type='submit'>"
              f"<field var='FORM_TYPE' type='hidden'><value>{ns.PUBSUB_PUBLISH_OPTIONS}</value></field>"
              f"{fields}</x></publish-options>")
    return pubsub(f"<publish node='{node}'><item id='{item_id}'>{payload}</item></publish>{po}")


async def mutual(h, a: str, b: str, groups=()) -> None:
    """``a`` and ``b`` (localparts) subscribed to each other's presence."""
    def both(item):
        item = rs.set_state(item or rs.new_item(), rs.BOTH)
        item["groups"] = list(groups)
        return item
    await h.host().roster.update(a, f"{b}@example.com", both)
    await h.host().roster.update(b, f"{a}@example.com", both)


def caps_query(nodes) -> ET.Element:
    q = ET.Element(ns.q(ns.DISCO_INFO, "query"))
    ET.SubElement(q, ns.q(ns.DISCO_INFO, "identity"), {"category": "client", "type": "pc"})
    for n in nodes:
        ET.SubElement(q, ns.q(ns.DISCO_INFO, "feature"), {"var": n + "+notify"})
    return q


def caps_presence(nodes, to: str | None = None) -> str:
    ver = capsmod.compute_ver(caps_query(nodes))
    to_attr = f" to='{to}'" if to else ""
    return (f"<presence{to_attr}><c xmlns='{ns.CAPS}' hash='sha-1' node='urn:example:client' "
            f"ver='{ver}'/></presence>")


async def answer_caps(client, nodes) -> None:
    """Answer the server's disco#info request about the client's caps."""
    iq = await client.next("iq", match=lambda e: (e.get("id") or "").startswith("caps-"))
    assert iq.get("from") == "example.com" and iq.get("type") == "get"
    q = caps_query(nodes)
    q.set("node", iq[0].get("node"))
    reply = ET.Element(ns.q(ns.CLIENT, "iq"), {"type": "result", "id": iq.get("id"),
                                               "to": iq.get("from")})
    reply.append(q)
    await client.send_stanza(reply)
    await client.server_tasks()


async def contact_with_caps(h, nodes=(MOOD,), user="bob"):
    """A client of ``user`` online with caps asking for ``nodes`` (caps answered)."""
    c = await h.client(f"{user}@example.com/pc")
    await c.send_stanza(caps_presence(nodes))
    await answer_caps(c, nodes)
    c.received.clear()
    return c


async def event_of(client, *, from_=ALICE):
    msg = await client.next("message", match=lambda e: e.find(EVENT) is not None)
    assert msg.get("type") == "headline" and msg.get("from") == from_
    return msg.find(EVENT)


async def no_event(client) -> None:
    await client.server_tasks()
    assert [m for m in client.received if m.find(EVENT) is not None] == []


async def test_the_module_provides_its_service():
    async with Harness(modules=MODULES) as h:
        pep = h.host().provided("pep")
        assert pep is not None and pep.jid("alice") == ALICE


async def test_publish_notifies_a_contact_with_notify_caps_and_retract_too():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        await mutual(h, "alice", "bob")
        bob = await contact_with_caps(h)
        reply = await alice.iq("set", publish(MOOD, "current", mood("happy")))
        pub = reply.find(f"{ns.q(ns.PUBSUB, 'pubsub')}/{ns.q(ns.PUBSUB, 'publish')}")
        assert pub.get("node") == MOOD and pub[0].get("id") == "current"

        ev = await event_of(bob)
        item = ev.find(f"{ns.q(ns.PUBSUB_EVENT, 'items')}/{ns.q(ns.PUBSUB_EVENT, 'item')}")
        assert item.get("id") == "current" and item.find(f"{{{MOOD}}}mood/{{{MOOD}}}happy") is not None
        own = await event_of(alice)          # the owner's resource hears of it too
        assert own.find(f".//{{{MOOD}}}happy") is not None

        assert (await alice.iq("set", pubsub(f"<retract node='{MOOD}'><item id='current'/></retract>"))
                ).get("type") == "result"
        ev = await event_of(bob)
        assert ev.find(f"{ns.q(ns.PUBSUB_EVENT, 'items')}/{ns.q(ns.PUBSUB_EVENT, 'retract')}"
                       ).get("id") == "current"
        got = await bob.iq("get", pubsub(f"<items node='{MOOD}'/>"), to=ALICE)
        assert len(got.find(f".//{ns.q(ns.PUBSUB, 'items')}")) == 0


async def test_no_notification_without_notify_caps_or_without_access():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        await mutual(h, "alice", "bob")
        bob = await contact_with_caps(h, nodes=("urn:example:other",))
        # carol asks for moods, but alice's moods are for her contacts (presence model)
        carol = await h.client(CAROL + "/pc")
        await carol.send_stanza(caps_presence([MOOD], to=ALICE))
        # carol is not alice's contact: her directed presence makes no disco#info
        # query (Prosody's behaviour: only a contact's broadcast presence counts)
        with pytest.raises(TimeoutError):
            await carol.next("iq", timeout=0.3)
        await alice.iq("set", publish(MOOD, "1", mood("happy")))
        await no_event(bob)
        await no_event(carol)


async def test_access_models():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone")
        bob = await h.client(BOB + "/pc")
        carol = await h.client(CAROL + "/pc")
        await mutual(h, "alice", "bob", groups=("friends",))
        await alice.iq("set", publish(MOOD, "1", mood("happy")))                # presence
        await alice.iq("set", publish("urn:open", "1", "<x xmlns='urn:open'/>",
                                      {"pubsub#access_model": "open"}))
        await alice.iq("set", publish("urn:roster", "1", "<x xmlns='urn:roster'/>",
                                      {"pubsub#access_model": "roster",
                                       "pubsub#roster_groups_allowed": "friends"}))
        await alice.iq("set", publish("urn:wl", "1", "<x xmlns='urn:wl'/>",
                                      {"pubsub#access_model": "whitelist"}))

        async def items(client, node):
            return await client.iq("get", pubsub(f"<items node='{node}'/>"), to=ALICE)

        for node in (MOOD, "urn:open", "urn:roster"):
            assert (await items(bob, node)).get("type") == "result"
        assert error_of(await items(bob, "urn:wl")) == ("not-allowed", "closed-node")
        assert error_of(await items(carol, MOOD)) == ("not-authorized", "presence-subscription-required")
        assert (await items(carol, "urn:open")).get("type") == "result"
        assert error_of(await items(carol, "urn:roster")) == ("not-authorized", "not-in-roster-group")
        assert error_of(await items(carol, "nope")) == ("item-not-found", None)
        # the owner makes carol a member of the whitelist node
        owner = pubsub("<affiliations node='urn:wl'><affiliation jid='carol@example.com' "
                       "affiliation='member'/></affiliations>", ns.PUBSUB_OWNER)
        assert (await alice.iq("set", owner)).get("type") == "result"
        assert (await items(carol, "urn:wl")).get("type") == "result"
        # disco#items lists what the asker may see
        reply = await carol.iq("get", f"<query xmlns='{ns.DISCO_ITEMS}'/>", to=ALICE)
        nodes = {i.get("node") for i in reply.find(ns.q(ns.DISCO_ITEMS, "query"))}
        assert nodes == {"urn:open", "urn:wl"}
        # an account that does not exist has no PEP service
        reply = await bob.iq("get", pubsub(f"<items node='{MOOD}'/>"), to="nobody@example.com")
        assert error_of(reply) == ("service-unavailable", None)


async def test_publish_options_are_preconditions_on_an_existing_node():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone")
        ok = await alice.iq("set", publish("urn:n", "1", "<x xmlns='urn:n'/>",
                                           {"pubsub#access_model": "open"}))
        assert ok.get("type") == "result"
        reply = await alice.iq("set", publish("urn:n", "2", "<x xmlns='urn:n'/>",
                                              {"pubsub#access_model": "whitelist"}))
        assert error_of(reply) == ("conflict", "precondition-not-met")
        reply = await alice.iq("set", publish("urn:n", "2", "<x xmlns='urn:n'/>",
                                              {"pubsub#access_model": "bogus"}))
        assert error_of(reply) == ("conflict", "precondition-not-met")
        same = await alice.iq("set", publish("urn:n", "2", "<x xmlns='urn:n'/>",
                                             {"pubsub#access_model": "open"}))
        assert same.get("type") == "result"


async def test_the_node_configuration_form():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone")
        await alice.iq("set", publish("urn:n", "1", "<x xmlns='urn:n'/>"))
        submit = (f"<configure node='urn:n'><x xmlns='{ns.DATA}' type='submit'>"
                  "<field var='pubsub#title'><value>Notes</value></field>"
                  "<field var='pubsub#max_items'><value>max</value></field></x></configure>")
        assert (await alice.iq("set", pubsub(submit, ns.PUBSUB_OWNER))).get("type") == "result"
        reply = await alice.iq("get", pubsub("<configure node='urn:n'/>", ns.PUBSUB_OWNER))
        x = reply.find(f".//{ns.q(ns.DATA, 'x')}")
        assert x.get("type") == "form"
        fields = {f.get("var"): f for f in x.findall(ns.q(ns.DATA, "field"))}

        def values(var):
            return [v.text or "" for v in fields[var].findall(ns.q(ns.DATA, "value"))]

        assert values("FORM_TYPE") == [ns.PUBSUB_NODE_CONFIG] and fields["FORM_TYPE"].get("type") == "hidden"
        assert values("pubsub#title") == ["Notes"]
        assert values("pubsub#max_items") == ["max"]
        assert fields["pubsub#access_model"].get("type") == "list-single"
        assert values("pubsub#access_model") == ["presence"]
        options = [o.findtext(ns.q(ns.DATA, "value"))
                   for o in fields["pubsub#access_model"].findall(ns.q(ns.DATA, "option"))]
        assert options == ["open", "presence", "roster", "whitelist", "authorize"]
        assert fields["pubsub#persist_items"].get("type") == "boolean"
        assert values("pubsub#persist_items") == ["1"] and values("pubsub#notify_config") == ["0"]
        assert values("pubsub#roster_groups_allowed") == []
        # a bad value is refused; another account may not configure
        bad = submit.replace("<value>max</value>", "<value>0</value>")
        assert error_of(await alice.iq("set", pubsub(bad, ns.PUBSUB_OWNER))) == ("not-acceptable", None)
        bob = await h.client(BOB + "/pc")
        reply = await bob.iq("get", pubsub("<configure node='urn:n'/>", ns.PUBSUB_OWNER), to=ALICE)
        assert error_of(reply) == ("forbidden", None)
        # an action no pubsub service implements
        reply = await alice.iq("set", pubsub("<frobnicate node='urn:n'/>", ns.PUBSUB_OWNER))
        assert error_of(reply) == ("feature-not-implemented", "unsupported")


async def test_purge_and_delete_are_notified():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        await mutual(h, "alice", "bob")
        bob = await contact_with_caps(h)
        await alice.iq("set", publish(MOOD, "1", mood("happy")))
        await event_of(bob)
        assert (await alice.iq("set", pubsub(f"<purge node='{MOOD}'/>", ns.PUBSUB_OWNER))
                ).get("type") == "result"
        ev = await event_of(bob)
        assert ev.find(ns.q(ns.PUBSUB_EVENT, "purge")).get("node") == MOOD
        assert (await alice.iq("set", pubsub(f"<delete node='{MOOD}'/>", ns.PUBSUB_OWNER))
                ).get("type") == "result"
        ev = await event_of(bob)
        assert ev.find(ns.q(ns.PUBSUB_EVENT, "delete")).get("node") == MOOD
        reply = await alice.iq("set", pubsub(f"<delete node='{MOOD}'/>", ns.PUBSUB_OWNER))
        assert error_of(reply) == ("item-not-found", None)


async def test_the_last_item_when_a_contact_comes_online():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone", available=True)
        await mutual(h, "alice", "bob")
        await alice.iq("set", publish(MOOD, "1", mood("happy")))
        await alice.iq("set", publish(MOOD, "2", mood("sad")))
        bob = await h.client(BOB + "/pc")
        await bob.send_stanza(caps_presence([MOOD]))
        await answer_caps(bob, [MOOD])
        msg = await bob.next("message", match=lambda e: e.find(EVENT) is not None)
        assert msg.get("from") == ALICE
        item = msg.find(f".//{ns.q(ns.PUBSUB_EVENT, 'item')}")
        assert item.get("id") == "2" and item.find(f".//{{{MOOD}}}sad") is not None
        assert msg.find(ns.q(ns.DELAY, "delay")).get("from") == ALICE
        # once only; and again after going away and coming back (caps now known)
        await no_event(bob)
        await bob.send_stanza("<presence type='unavailable'/>")
        await bob.server_tasks()
        await bob.send_stanza(caps_presence([MOOD]))
        await bob.server_tasks()
        await event_of(bob)


async def test_subscribe_and_node_disco():
    async with Harness(modules=MODULES) as h:
        alice = await h.client(ALICE + "/phone")
        carol = await h.client(CAROL + "/pc")
        await alice.iq("set", publish("urn:open", "1", "<x xmlns='urn:open'/>",
                                      {"pubsub#access_model": "open"}))
        reply = await carol.iq("set", pubsub("<subscribe node='urn:open' jid='carol@example.com/pc'/>"),
                               to=ALICE)
        sub = reply.find(f".//{ns.q(ns.PUBSUB, 'subscription')}")
        assert sub.get("subscription") == "subscribed"
        await event_of(carol)                            # the last item at once
        await alice.iq("set", publish("urn:open", "2", "<x xmlns='urn:open'/>"))
        ev = await event_of(carol)                       # a subscriber, without caps
        assert ev.find(f".//{ns.q(ns.PUBSUB_EVENT, 'item')}").get("id") == "2"
        info = await carol.iq("get", f"<query xmlns='{ns.DISCO_INFO}' node='urn:open'/>", to=ALICE)
        q = info.find(ns.q(ns.DISCO_INFO, "query"))
        assert q.get("node") == "urn:open"
        assert q.find(ns.q(ns.DISCO_INFO, "identity")).attrib == {"category": "pubsub", "type": "leaf"}
        assert [f.get("var") for f in q.findall(ns.q(ns.DISCO_INFO, "feature"))] == [ns.PUBSUB]



async def test_caps_of_a_contacts_broadcast_are_asked_for_once():
    """A contact's broadcast presence with unknown caps: one disco#info query, and
    not again for the same hash when it does not answer."""
    async with Harness(modules=MODULES) as h:
        await h.client(ALICE + "/phone", available=True)
        await mutual(h, "alice", "bob")
        bob = await h.client(BOB + "/pc")
        await bob.send_stanza(caps_presence([MOOD]))
        q = await bob.next("iq", match=lambda e: e.find(ns.q(ns.DISCO_INFO, "query")) is not None)
        await bob.send_stanza(f"<iq type='error' id='{q.get('id')}' to='{q.get('from')}'>"
                              "<error type='cancel'><service-unavailable "
                              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        bob2 = await h.client(BOB + "/laptop")
        await bob2.send_stanza(caps_presence([MOOD]))
        with pytest.raises(TimeoutError):
            await bob2.next("iq", timeout=0.3)

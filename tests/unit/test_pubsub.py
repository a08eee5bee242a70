"""The sans-I/O PubSub core (xmppd.xmpp.pubsub), as PEP uses it."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppd.modules.pep import caps as capsmod
from xmppd.xmpp.pubsub import (
    Node, PubSubError, PubSubService, Requester, parse_options,
)

OWNER = Requester("juliet@capulet.lit", is_owner=True, subscription="both")
FRIEND = Requester("romeo@montague.lit", subscription="both")
FOLLOWER = Requester("nurse@capulet.lit", subscription="to")
STRANGER = Requester("tybalt@capulet.lit")


def svc(**kw) -> PubSubService:
    return PubSubService("juliet@capulet.lit", **kw)


def test_publish_auto_creates_with_defaults():
    s = svc()
    res = s.publish(OWNER, "http://jabber.org/protocol/tune", "1", "<tune/>")
    assert res.created and res.item.id == "1" and res.evicted == []
    node = s.nodes["http://jabber.org/protocol/tune"]
    assert node.access_model == "presence" and node.config["pubsub#max_items"] == 1
    # max_items=1: the next item replaces it
    res = s.publish(OWNER, "http://jabber.org/protocol/tune", None, "<tune>2</tune>")
    assert not res.created and res.evicted == ["1"] and len(res.item.id) == 32
    assert [i.xml for i in s.get_items(OWNER, "http://jabber.org/protocol/tune")] == ["<tune>2</tune>"]


def test_only_owner_creates_and_publishes():
    s = svc()
    with pytest.raises(PubSubError) as e:
        s.publish(FRIEND, "n", "1", "<x/>")
    assert e.value.condition == "forbidden"
    s.publish(OWNER, "n", "1", "<x/>")
    with pytest.raises(PubSubError) as e:
        s.publish(FRIEND, "n", "2", "<x/>")
    assert e.value.condition == "forbidden"


def test_publish_options_become_config_then_preconditions():
    s = svc()
    opts = parse_options({"FORM_TYPE": ["http://jabber.org/protocol/pubsub#publish-options"],
                          "pubsub#access_model": ["open"], "pubsub#max_items": ["max"],
                          "pubsub#persist_items": ["true"]}, 256)
    assert opts == {"pubsub#access_model": "open", "pubsub#max_items": "max",
                    "pubsub#persist_items": True}
    s.publish(OWNER, "devices", "current", "<list/>", opts)
    assert s.nodes["devices"].access_model == "open"
    s.publish(OWNER, "devices", "current", "<list/>", opts)   # same: fine
    with pytest.raises(PubSubError) as e:
        s.publish(OWNER, "devices", "current", "<list/>", {"pubsub#access_model": "presence"})
    assert (e.value.condition, e.value.pubsub) == ("conflict", "precondition-not-met")
    # nothing was published by the refused request
    assert len(s.nodes["devices"].items) == 1


def test_parse_options_rejects_bad_values():
    for fields in ({"pubsub#access_model": ["everyone"]}, {"pubsub#max_items": ["0"]},
                   {"pubsub#max_items": ["1000"]}, {"pubsub#persist_items": ["maybe"]},
                   {"pubsub#unknown": ["1"]}, {"pubsub#access_model": ["authorize"]}):
        with pytest.raises(PubSubError) as e:
            parse_options(fields, 256)
        assert e.value.condition == "not-acceptable"


def test_max_items_max_uses_limit_and_order():
    s = svc(max_items_limit=3)
    s.publish(OWNER, "b", "a", "<a/>", {"pubsub#max_items": "max"})
    for i in "bcd":
        s.publish(OWNER, "b", i, f"<{i}/>")
    assert [i.id for i in s.get_items(OWNER, "b")] == ["b", "c", "d"]
    s.publish(OWNER, "b", "b", "<b2/>")        # republish moves it to the newest
    assert [i.id for i in s.get_items(OWNER, "b")] == ["c", "d", "b"]
    assert [i.id for i in s.get_items(OWNER, "b", max_items=2)] == ["d", "b"]
    assert [i.id for i in s.get_items(OWNER, "b", ids=["c"])] == ["c"]
    with pytest.raises(PubSubError) as e:
        s.get_items(OWNER, "b", ids=["zz"])
    assert e.value.condition == "item-not-found"


@pytest.mark.parametrize("model,who,expect", [
    ("presence", FRIEND, None),
    ("presence", Requester("x@y", subscription="from"), None),
    ("presence", FOLLOWER, ("not-authorized", "presence-subscription-required")),
    ("presence", STRANGER, ("not-authorized", "presence-subscription-required")),
    ("open", STRANGER, None),
    ("whitelist", FRIEND, ("not-allowed", "closed-node")),
    ("whitelist", OWNER, None),
    ("roster", Requester("r@m", subscription="both", groups=frozenset({"Friends"})), None),
    ("roster", Requester("r@m", subscription="both", groups=frozenset({"Work"})),
     ("not-authorized", "not-in-roster-group")),
])
def test_access_models(model, who, expect):
    s = svc()
    s.publish(OWNER, "n", "1", "<x/>", {"pubsub#access_model": model,
                                        "pubsub#roster_groups_allowed": ["Friends"]})
    if expect is None:
        assert [i.id for i in s.get_items(who, "n")] == ["1"]
        assert s.may_access(s.nodes["n"], who)
    else:
        with pytest.raises(PubSubError) as e:
            s.get_items(who, "n")
        assert (e.value.condition, e.value.pubsub) == expect
        assert not s.may_access(s.nodes["n"], who)


def test_whitelist_affiliations():
    s = svc()
    s.publish(OWNER, "n", "1", "<x/>", {"pubsub#access_model": "whitelist"})
    with pytest.raises(PubSubError):
        s.get_items(FRIEND, "n")
    s.set_affiliations(OWNER, "n", {FRIEND.bare: "member"})
    assert s.get_items(FRIEND, "n")
    with pytest.raises(PubSubError) as e:
        s.set_affiliations(FRIEND, "n", {STRANGER.bare: "member"})
    assert e.value.condition == "forbidden"
    s.set_affiliations(OWNER, "n", {FRIEND.bare: "outcast"})
    with pytest.raises(PubSubError) as e:
        s.get_items(FRIEND, "n")
    assert e.value.condition == "forbidden"
    s.set_affiliations(OWNER, "n", {FRIEND.bare: "none"})
    assert FRIEND.bare not in s.nodes["n"].affiliations


def test_retract_delete_configure():
    s = svc()
    s.publish(OWNER, "n", "1", "<x/>", {"pubsub#max_items": 10})
    s.publish(OWNER, "n", "2", "<y/>")
    with pytest.raises(PubSubError) as e:
        s.retract(FRIEND, "n", "1")
    assert e.value.condition == "forbidden"
    s.retract(OWNER, "n", "1")
    with pytest.raises(PubSubError) as e:
        s.retract(OWNER, "n", "1")
    assert e.value.condition == "item-not-found"
    with pytest.raises(PubSubError) as e:
        s.retract(OWNER, "n", None)
    assert e.value.pubsub == "item-required"
    s.publish(OWNER, "n", "3", "<z/>")
    node, evicted = s.configure(OWNER, "n", {"pubsub#max_items": 1})
    assert evicted == ["2"] and list(node.items) == ["3"]
    with pytest.raises(PubSubError):
        s.configure(FRIEND, "n", {"pubsub#max_items": 2})
    with pytest.raises(PubSubError) as e:
        s.delete(FRIEND, "n")
    assert e.value.condition == "forbidden"
    s.delete(OWNER, "n")
    with pytest.raises(PubSubError) as e:
        s.get_items(OWNER, "n")
    assert e.value.condition == "item-not-found"
    with pytest.raises(PubSubError) as e:
        s.create(OWNER, None)
    s.create(OWNER, "m")
    with pytest.raises(PubSubError) as e:
        s.create(OWNER, "m")
    assert e.value.condition == "conflict"


def test_records_round_trip_and_persist_items():
    s = svc()
    s.publish(OWNER, "n", "1", "<x/>", {"pubsub#access_model": "open", "pubsub#max_items": 5})
    s.publish(OWNER, "n", "2", "<y/>")
    node = s.nodes["n"]
    again = Node.from_record("n", node.record(), node.item_records())
    assert again.config == node.config and list(again.items) == ["1", "2"]
    assert again.last_item().xml == "<y/>"
    s.publish(OWNER, "t", "1", "<x/>", {"pubsub#persist_items": False})
    assert s.nodes["t"].item_records() == [] and s.nodes["t"].last_item() is not None


def test_subscribe_requires_access_and_own_jid():
    s = svc()
    s.publish(OWNER, "n", "1", "<x/>")
    with pytest.raises(PubSubError) as e:
        s.subscribe(STRANGER, "n", "tybalt@capulet.lit/a")
    assert e.value.pubsub == "presence-subscription-required"
    with pytest.raises(PubSubError) as e:
        s.subscribe(FRIEND, "n", "tybalt@capulet.lit/a")
    assert e.value.pubsub == "invalid-jid"
    s.subscribe(FRIEND, "n", "romeo@montague.lit/orchard")
    assert s.nodes["n"].subscriptions == {"romeo@montague.lit/orchard": "subscribed"}
    s.unsubscribe(FRIEND, "n", "romeo@montague.lit/orchard")
    with pytest.raises(PubSubError) as e:
        s.unsubscribe(FRIEND, "n", "romeo@montague.lit/orchard")
    assert e.value.pubsub == "not-subscribed"


# XEP-0115 §5.2 and §5.3 examples
SIMPLE = """<query xmlns='http://jabber.org/protocol/disco#info'>
<identity category='client' name='Exodus 0.9.1' type='pc'/>
<feature var='http://jabber.org/protocol/caps'/>
<feature var='http://jabber.org/protocol/disco#info'/>
<feature var='http://jabber.org/protocol/disco#items'/>
<feature var='http://jabber.org/protocol/muc'/></query>"""

COMPLEX = """<query xmlns='http://jabber.org/protocol/disco#info'>
<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
<feature var='http://jabber.org/protocol/caps'/>
<feature var='http://jabber.org/protocol/disco#info'/>
<feature var='http://jabber.org/protocol/disco#items'/>
<feature var='http://jabber.org/protocol/muc'/>
<x xmlns='jabber:x:data' type='result'>
<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
<field var='os'><value>Mac</value></field>
<field var='os_version'><value>10.5.1</value></field>
<field var='software'><value>Psi</value></field>
<field var='software_version'><value>0.11</value></field></x></query>"""


def test_caps_verification_string_examples():
    assert capsmod.compute_ver(ET.fromstring(SIMPLE)) == "QgayPKawpkPSDYmwT/WM94uAlu0="
    assert capsmod.compute_ver(ET.fromstring(COMPLEX)) == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_caps_parse_and_notify_nodes():
    p = ET.fromstring("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps'"
                      " hash='sha-1' node='http://x' ver='abc='/></presence>")
    c = capsmod.parse_caps(p)
    assert c.key == "sha-1:abc=" and c.node == "http://x"
    assert capsmod.parse_caps(ET.fromstring("<presence xmlns='jabber:client'/>")) is None
    feats = frozenset({"urn:xmpp:avatar:metadata+notify", "eu.siacs.conversations.axolotl.devicelist+notify",
                       "urn:xmpp:ping"})
    assert capsmod.notify_nodes(feats) == {"urn:xmpp:avatar:metadata",
                                           "eu.siacs.conversations.axolotl.devicelist"}
    cache = capsmod.CapsCache()
    iq = cache.request(c, "a@b/c", "b")
    assert iq.get("to") == "a@b/c" and iq[0].get("node") == "http://x#abc="
    assert cache.request(c, "a@b/d", "b") is None       # one request per ver
    assert cache.take(iq.get("id")) == (c, "a@b/c") and cache.take(iq.get("id")) is None


# -- the same core as a pubsub service (the pubsub component's policy) ----------------------

from xmppd.xmpp.pubsub import (ACCESS_MODELS, SERVICE_CONFIG_FIELDS,  # noqa: E402
                               SERVICE_DEFAULT_CONFIG, Policy,
                               items_event, publish_request, to_stanza_error)

ADMIN = Requester("admin@falcot.com", service_affiliation="owner", may_create=True)
JOE = Requester("joe@falcot.com")
ANN = Requester("ann@falcot.com")


def service(**policy) -> PubSubService:
    return PubSubService(None, max_items_limit=10, policy=Policy(
        fields=SERVICE_CONFIG_FIELDS, defaults=SERVICE_DEFAULT_CONFIG, access_models=ACCESS_MODELS,
        **{"autocreate_on_publish": False, "instant_nodes": True, **policy}))


def test_service_creation_ownership_and_defaults():
    s = service()
    node = s.create(ADMIN, "news")
    assert node.affiliations == {"admin@falcot.com": "owner"}
    assert node.access_model == "open" and node.config["pubsub#max_items"] == 20
    assert node.config["pubsub#send_last_published_item"] == "never"
    with pytest.raises(PubSubError) as e:
        s.create(JOE, "mine")
    assert e.value.condition == "forbidden"
    instant = s.create(ADMIN, None)
    assert instant.name in s.nodes and len(instant.name) == 32
    with pytest.raises(PubSubError) as e:
        s.publish(ADMIN, "missing", None, "<x/>")
    assert e.value.condition == "item-not-found"      # no autocreate_on_publish


def test_service_owners_publishers_and_the_last_owner():
    s = service()
    s.create(ADMIN, "n")
    s.set_affiliations(ADMIN, "n", {"joe@falcot.com": "owner", "ann@falcot.com": "publisher"})
    s.configure(JOE, "n", {"pubsub#title": "Joe's"})
    s.publish(ANN, "n", "1", "<x/>")
    s.set_affiliations(JOE, "n", {"admin@falcot.com": "none"})
    assert s.affiliation(s.nodes["n"], ADMIN) == "owner"     # service-wide, as admin
    with pytest.raises(PubSubError) as e:
        s.set_affiliations(JOE, "n", {"joe@falcot.com": "member"})
    assert e.value.condition == "not-acceptable"
    with pytest.raises(PubSubError) as e:
        s.configure(ANN, "n", {"pubsub#title": "x"})
    assert e.value.condition == "forbidden"


def test_service_authorize_pending_and_approval():
    s = service()
    s.create(ADMIN, "p", {"pubsub#access_model": "authorize"})
    node, state = s.subscribe(JOE, "p", "joe@falcot.com")
    assert state == "pending"
    for call, pubsub in ((lambda: s.get_items(JOE, "p"), "pending-subscription"),
                         (lambda: s.get_items(ANN, "p"), "not-subscribed")):
        with pytest.raises(PubSubError) as e:
            call()
        assert (e.value.condition, e.value.pubsub) == ("not-authorized", pubsub)
    with pytest.raises(PubSubError) as e:
        s.subscription_for_options(JOE, "p", "joe@falcot.com")
    assert (e.value.condition, e.value.pubsub) == ("forbidden", "pending-subscription")
    _, changed = s.set_subscriptions(ADMIN, "p", {"joe@falcot.com": "subscribed"})
    assert changed == {"joe@falcot.com": "subscribed"}
    assert s.get_items(JOE, "p") == []
    # an outcast loses its subscription
    s.set_affiliations(ADMIN, "p", {"joe@falcot.com": "outcast"})
    assert "joe@falcot.com" not in node.subscriptions


def test_service_publish_models_and_autocreate_on_subscribe():
    s = service(autocreate_on_subscribe=True)
    s.create(ADMIN, "wall", {"pubsub#publish_model": "subscribers"})
    with pytest.raises(PubSubError):
        s.publish(JOE, "wall", None, "<x/>")
    s.subscribe(JOE, "wall", "joe@falcot.com/phone")
    assert s.publish(JOE, "wall", None, "<x/>").item.publisher == "joe@falcot.com"
    node, state = s.subscribe(ADMIN, "fresh", "admin@falcot.com")
    assert state == "subscribed" and node.affiliations == {"admin@falcot.com": "owner"}
    with pytest.raises(PubSubError) as e:
        s.subscribe(JOE, "other", "joe@falcot.com")
    assert e.value.condition == "item-not-found"


def test_service_records_round_trip():
    s = service()
    node = s.create(ADMIN, "n", {"pubsub#max_items": 3})
    s.subscribe(JOE, "n", "joe@falcot.com")
    node.sub_options["joe@falcot.com"] = {"pubsub#deliver": False}
    s.publish(ADMIN, "n", "a", "<x xmlns='u'/>")
    back = Node.from_record("n", node.record(), node.item_records())
    assert back.config == node.config and back.subscriptions == node.subscriptions
    assert back.sub_options == node.sub_options and list(back.items) == ["a"]
    assert not back.deliver_to("joe@falcot.com") and back.subscribed("joe@falcot.com")


def test_wire_helpers():
    err = to_stanza_error(PubSubError("feature-not-implemented", "unsupported", feature="purge-nodes"))
    assert err.condition == "feature-not-implemented"
    app = err.app
    assert app.tag.endswith("}unsupported") and app.get("feature") == "purge-nodes"
    ps_el = ET.fromstring("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'>"
                          "<item id='1'><x xmlns='u'/></item></publish></pubsub>")
    pr = publish_request(ps_el, ps_el[0])
    assert pr.item_id == "1" and pr.payload.tag == "{u}x" and pr.options is None
    s = service()
    node = s.create(ADMIN, "n", {"pubsub#deliver_payloads": False})
    res = s.publish(ADMIN, "n", "1", "<x xmlns='u'/>")
    ev = items_event(node, [res.item], publisher=True)
    item = ev.find("{http://jabber.org/protocol/pubsub#event}items/"
                   "{http://jabber.org/protocol/pubsub#event}item")
    assert len(item) == 0 and item.get("publisher") == "admin@falcot.com"

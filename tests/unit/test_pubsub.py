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

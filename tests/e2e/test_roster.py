"""Rosters (RFC 6121 §2): get, set, remove, pushes, versioning, errors, with
slixmpp's roster API, raw roster IQs and aioxmpp's RosterClient."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from .clients import slix_close
from .conftest import start_server
from .imhelpers import MODULES, aioxmpp_client, connect, im, next_push, no_push  # noqa: F401

NS = "jabber:iq:roster"


async def roster_iq(c, itype, body, to=None):
    iq = c.make_iq_set() if itype == "set" else c.make_iq_get()
    if to:
        iq["to"] = to
    iq.append(ET.fromstring(body))
    return await iq.send(timeout=10)


async def condition(c, itype, body, to=None):
    with pytest.raises(IqError) as e:
        await roster_iq(c, itype, body, to)
    return e.value.iq["error"]["condition"]


async def test_set_get_remove_with_pushes_to_two_resources(im):
    await im.adduser("alice@xmppd.test")
    a1 = await connect(im, "alice@xmppd.test/one")
    a2 = await connect(im, "alice@xmppd.test/two")
    quiet = await connect(im, "alice@xmppd.test/quiet", roster=False)
    await a1.update_roster("bob@xmppd.test", name="Bob", groups=["Friends", "Work"])
    for c in (a1, a2):
        jid, item, ver = await next_push(c)
        assert jid == "bob@xmppd.test"
        assert item["name"] == "Bob"
        assert sorted(item["groups"]) == ["Friends", "Work"]
        assert item["subscription"] == "none"
        assert ver
    await no_push(quiet)   # never asked for the roster: not interested

    res = await roster_iq(a2, "get", f"<query xmlns='{NS}'/>")
    items = res.xml.find(f"{{{NS}}}query").findall(f"{{{NS}}}item")
    assert [(i.get("jid"), i.get("name")) for i in items] == [("bob@xmppd.test", "Bob")]
    assert sorted(g.text for g in items[0]) == ["Friends", "Work"]
    assert a2.client_roster["bob@xmppd.test"]["name"] == "Bob"   # from the pushes

    await a2.update_roster("bob@xmppd.test", name="Robert", groups=["Work"])
    for c in (a1, a2):
        _, item, _ = await next_push(c)
        assert item["name"] == "Robert" and item["groups"] == ["Work"]
    # a fetch after the change is not the result kept from the last fetch
    res = await roster_iq(a1, "get", f"<query xmlns='{NS}'/>")
    items = res.xml.find(f"{{{NS}}}query").findall(f"{{{NS}}}item")
    assert [(i.get("name"), [g.text for g in i]) for i in items] == [("Robert", ["Work"])]

    await a1.del_roster_item("bob@xmppd.test")
    for c in (a1, a2):
        jid, item, _ = await next_push(c)
        assert jid == "bob@xmppd.test" and item["subscription"] == "remove"
    res = await roster_iq(a1, "get", f"<query xmlns='{NS}'/>")
    assert len(res.xml.find(f"{{{NS}}}query")) == 0


async def test_roster_survives_restart(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=MODULES)
    await srv.adduser("alice@xmppd.test")
    srv.clients = []
    a = await connect(srv, "alice@xmppd.test")
    await a.update_roster("bob@xmppd.test", name="Bob", groups=["G"])
    await next_push(a)
    await slix_close(a)
    await srv.server.stop()
    srv = await start_server(tmp_path, certs, extra=MODULES)
    srv.clients = []
    try:
        a = await connect(srv, "alice@xmppd.test")
        assert a.client_roster["bob@xmppd.test"]["groups"] == ["G"]
    finally:
        await slix_close(*srv.clients)
        await srv.server.stop()


async def test_versioning(im):
    await im.adduser("alice@xmppd.test")
    a = await connect(im, "alice@xmppd.test", roster=False)
    assert "rosterver" in a.features
    res = await roster_iq(a, "get", f"<query xmlns='{NS}' ver=''/>")
    ver0 = res.xml.find(f"{{{NS}}}query").get("ver")
    assert ver0 is not None
    # unchanged: an empty result
    res = await roster_iq(a, "get", f"<query xmlns='{NS}' ver='{ver0}'/>")
    assert res.xml.find(f"{{{NS}}}query") is None
    await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='bob@xmppd.test'/></query>")
    _, _, ver1 = await next_push(a)
    assert ver1 and ver1 != ver0
    # stale version: the whole roster, with the current version
    res = await roster_iq(a, "get", f"<query xmlns='{NS}' ver='{ver0}'/>")
    q = res.xml.find(f"{{{NS}}}query")
    assert q.get("ver") == ver1
    assert [i.get("jid") for i in q] == ["bob@xmppd.test"]
    res = await roster_iq(a, "get", f"<query xmlns='{NS}' ver='{ver1}'/>")
    assert res.xml.find(f"{{{NS}}}query") is None
    # slixmpp keeps the version and sends it: nothing comes back, nothing is lost
    await a.get_roster()
    assert a.client_roster.version == ver1


async def test_set_errors(im):
    await im.adduser("alice@xmppd.test")
    await im.adduser("bob@xmppd.test")
    a = await connect(im, "alice@xmppd.test")
    two = f"<query xmlns='{NS}'><item jid='b@xmppd.test'/><item jid='c@xmppd.test'/></query>"
    assert await condition(a, "set", two) == "bad-request"
    own = f"<query xmlns='{NS}'><item jid='alice@xmppd.test'/></query>"
    assert await condition(a, "set", own) == "not-allowed"
    long_name = "n" * 1024
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test' name='{long_name}'/></query>") \
        == "not-acceptable"
    ok_name = "é" * 511   # 1022 bytes: allowed
    await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test' name='{ok_name}'/></query>")
    await next_push(a)
    long_group = "g" * 1024
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test'>"
                                     f"<group>{long_group}</group></item></query>") == "not-acceptable"
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test'><group/></item></query>") \
        == "not-acceptable"
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test'>"
                                     "<group>X</group><group>X</group></item></query>") == "bad-request"
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='nobody@xmppd.test' "
                                     "subscription='remove'/></query>") == "item-not-found"
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test/res'/></query>") \
        == "bad-request"
    # another account's roster
    assert await condition(a, "get", f"<query xmlns='{NS}'/>", to="bob@xmppd.test") == "forbidden"
    assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='x@xmppd.test'/></query>",
                           to="bob@xmppd.test") == "forbidden"
    # a client may not set the subscription: ignored
    await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='c@xmppd.test' subscription='both' ask='subscribe'/></query>")
    _, item, _ = await next_push(a)
    assert item["subscription"] == "none" and not item["ask"]


async def test_roster_size_limit(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=MODULES + "max_roster_items = 2\n")
    srv.clients = []
    try:
        await srv.adduser("alice@xmppd.test")
        a = await connect(srv, "alice@xmppd.test")
        for n in ("b", "c"):
            await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='{n}@xmppd.test'/></query>")
        assert await condition(a, "set", f"<query xmlns='{NS}'><item jid='d@xmppd.test'/></query>") \
            == "not-allowed"
        # changing an existing item is still fine
        await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='b@xmppd.test' name='B'/></query>")
    finally:
        await slix_close(*srv.clients)
        await srv.server.stop()


async def test_aioxmpp_roster_client(im):
    aioxmpp = pytest.importorskip("aioxmpp")
    await im.adduser("alice@xmppd.test")
    s = await connect(im, "alice@xmppd.test/slix")
    await s.update_roster("carol@other.test", name="Carol", groups=["Other"])
    await next_push(s)
    client = aioxmpp_client(im, "alice@xmppd.test")
    roster = client.summon(aioxmpp.RosterClient)
    async with client.connected():
        for _ in range(100):
            if roster.items:
                break
            await asyncio.sleep(0.05)
        carol = aioxmpp.JID.fromstr("carol@other.test")
        assert roster.items[carol].name == "Carol"
        assert roster.items[carol].groups == {"Other"}
        assert roster.items[carol].subscription == "none"
        assert roster.version
        # a change from the other resource arrives as a push
        added = asyncio.get_running_loop().create_future()

        def on_added(item):
            if not added.done():
                added.set_result(item)
        roster.on_entry_added.connect(on_added)
        await s.update_roster("dave@xmppd.test", name="Dave")
        item = await asyncio.wait_for(added, 10)
        assert str(item.jid) == "dave@xmppd.test" and item.name == "Dave"
        # and aioxmpp's own changes reach slixmpp
        await next_push(s)
        await roster.set_entry(aioxmpp.JID.fromstr("erin@xmppd.test"), name="Erin", add_to_groups={"G"})
        jid, pushed, _ = await next_push(s)
        assert jid == "erin@xmppd.test" and pushed["groups"] == ["G"]
        await roster.remove_entry(aioxmpp.JID.fromstr("erin@xmppd.test"))
        jid, pushed, _ = await next_push(s)
        assert pushed["subscription"] == "remove"


async def test_fetch_after_one_change_rebuilds_only_that_item(im):
    await im.adduser("alice@xmppd.test")
    a = await connect(im, "alice@xmppd.test", roster=False)

    async def fetch():
        res = await roster_iq(a, "get", f"<query xmlns='{NS}'/>")
        q = res.xml.find(f"{{{NS}}}query")
        return q.get("ver"), [(i.get("jid"), i.get("name"), [g.text for g in i]) for i in q]

    for n in ("carol", "bob", "dave"):
        await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='{n}@xmppd.test' name='{n}'>"
                                  f"<group>G</group></item></query>")
    ver1, items1 = await fetch()
    assert [i[0] for i in items1] == ["bob@xmppd.test", "carol@xmppd.test", "dave@xmppd.test"]
    await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='carol@xmppd.test' name='Carol &amp; co'/></query>")
    await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='erin@xmppd.test'/></query>")
    await roster_iq(a, "set", f"<query xmlns='{NS}'><item jid='dave@xmppd.test' subscription='remove'/></query>")
    ver2, items2 = await fetch()
    assert ver2 != ver1
    assert items2 == [("bob@xmppd.test", "bob", ["G"]), ("carol@xmppd.test", "Carol & co", []),
                      ("erin@xmppd.test", None, [])]
    assert await fetch() == (ver2, items2)

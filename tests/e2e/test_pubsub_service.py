"""The XEP-0060 service of ``Component "pubsub.xmppd.test" "pubsub"``, driven by
slixmpp's xep_0060 plugin (and aioxmpp's PubSubClient for some flows): nodes,
configuration, subscriptions, publishing, notifications, access and publisher
models, owners' management, errors, disco, persistence across a restart."""
from __future__ import annotations

import asyncio
import contextlib
import textwrap
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from .clients import TIMEOUT, logged_in
from .conftest import start_server
from .peputil import shares_presence

PS = "pubsub.xmppd.test"
PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"
EVENT = "http://jabber.org/protocol/pubsub#event"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
ADMIN, ALICE, BOB, CAROL = "admin@xmppd.test", "alice@xmppd.test", "bob@xmppd.test", "carol@xmppd.test"
PLUGINS = ("xep_0030", "xep_0004", "xep_0059", "xep_0060")


async def start(tmp_path, certs, options: str = ""):
    host_extra = f'\nComponent "{PS}" "pubsub"\n' + textwrap.indent(textwrap.dedent(options), "    ")
    srv = await start_server(tmp_path, certs, host_extra=host_extra)
    srv.ps = srv.server.hosts[PS].provided("pubsub")
    await srv.ps.ready.wait()
    for j in (ADMIN, ALICE, BOB, CAROL):
        if not await srv.server.accounts.exists("xmppd.test", j.split("@")[0]):
            await srv.adduser(j)
    return srv


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start(tmp_path, certs)
    try:
        yield s
    finally:
        await s.server.stop()


def watch(c):
    """Every message the client gets, and pubsub events by kind."""
    c.events = asyncio.Queue()
    c.all_messages = asyncio.Queue()
    c.register_handler(Callback("all messages", MatchXPath("{jabber:client}message"),
                                c.all_messages.put_nowait))
    for name in ("pubsub_publish", "pubsub_retract", "pubsub_delete", "pubsub_purge",
                 "pubsub_config"):
        c.add_event_handler(name, lambda msg, name=name: c.events.put_nowait((name, msg)))
    return c


@contextlib.asynccontextmanager
async def clients(srv, *jids, **kw):
    kw.setdefault("plugins", PLUGINS)
    async with logged_in(srv, *jids, **kw) as cs:
        for c in (cs if isinstance(cs, tuple) else (cs,)):
            watch(c)
        yield cs


async def next_event(c):
    return await asyncio.wait_for(c.events.get(), TIMEOUT)


async def no_event(c, wait=0.3):
    try:
        got = await asyncio.wait_for(c.events.get(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected event {got[0]}: {got[1]}")


def el(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def form(form_type="http://jabber.org/protocol/pubsub#node_config", **fields) -> Form:
    f = Form()
    f["type"] = "submit"
    f.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for k, v in fields.items():
        f.add_field(var=f"pubsub#{k}", value=v)
    return f


def publish_options(**fields) -> Form:
    return form("http://jabber.org/protocol/pubsub#publish-options", **fields)


def error_of(exc: IqError) -> tuple[str, str | None]:
    """(condition, pubsub#errors condition) of an IqError."""
    err = exc.iq.xml.find("{jabber:client}error")
    app = None
    for child in err:
        if child.tag.startswith("{" + ERRORS + "}"):
            app = child.tag.split("}")[1]
    return exc.iq["error"]["condition"], app


async def fails(coro) -> tuple[str, str | None]:
    with pytest.raises(IqError) as e:
        await coro
    return error_of(e.value)


async def raw_iq(c, payload: ET.Element, type_: str = "get", to: str = PS) -> ET.Element:
    iq = c.make_iq_set(ito=to) if type_ == "set" else c.make_iq_get(ito=to)
    iq.xml.append(payload)
    return (await iq.send(timeout=TIMEOUT)).xml


def pubsub(*children: str, ns: str = PUBSUB) -> ET.Element:
    return el(f"<pubsub xmlns='{ns}'>{''.join(children)}</pubsub>")


def ps(c):
    return c.plugin["xep_0060"]


async def create(c, node, **config):
    return await ps(c).create_node(PS, node, config=form(**config) if config else None,
                                   timeout=TIMEOUT)


async def publish(c, node, payload="<entry xmlns='urn:test'>hi</entry>", id=None, opts=None):
    return await ps(c).publish(PS, node, id=id, payload=el(payload), options=opts,
                               timeout=TIMEOUT)


async def items_of(c, node, **kw):
    r = await ps(c).get_items(PS, node, timeout=TIMEOUT, **kw)
    return [i["id"] for i in r["pubsub"]["items"]]


# -- creation, configuration, deletion ------------------------------------------------------

async def test_admins_create_nodes_others_may_not(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "news")
        assert "news" in srv.ps.svc.nodes
        assert srv.ps.svc.nodes["news"].affiliations == {ADMIN: "owner"}
        assert await fails(create(alice, "mine")) == ("forbidden", None)
        assert await fails(create(admin, "news")) == ("conflict", None)
        # an instant node: the service names it
        r = await ps(admin).create_node(PS, None, timeout=TIMEOUT)
        name = r["pubsub"]["create"]["node"]
        assert name and name in srv.ps.svc.nodes


async def test_create_with_configuration_and_configure(srv):
    async with clients(srv, ADMIN) as admin:
        await create(admin, "blog", title="Falcot blog", max_items="5", access_model="whitelist")
        cfg = srv.ps.svc.nodes["blog"].config
        assert cfg["pubsub#title"] == "Falcot blog" and cfg["pubsub#max_items"] == 5
        assert cfg["pubsub#access_model"] == "whitelist"
        # the form: every field Prosody offers
        r = await ps(admin).get_node_config(PS, "blog", timeout=TIMEOUT)
        got = r["pubsub_owner"]["configure"]["form"]
        fields = got.get_fields()
        for var in ("pubsub#title", "pubsub#description", "pubsub#type", "pubsub#max_items",
                    "pubsub#persist_items", "pubsub#access_model", "pubsub#roster_groups_allowed",
                    "pubsub#publish_model", "pubsub#send_last_published_item",
                    "pubsub#deliver_notifications", "pubsub#deliver_payloads",
                    "pubsub#notification_type", "pubsub#notify_delete", "pubsub#notify_retract",
                    "pubsub#itemreply"):
            assert var in fields, var
        assert fields["pubsub#title"]["value"] == "Falcot blog"
        assert fields["pubsub#access_model"]["value"] == "whitelist"
        await ps(admin).set_node_config(PS, "blog", form(title="Renamed", access_model="open"),
                                        timeout=TIMEOUT)
        assert srv.ps.svc.nodes["blog"].config["pubsub#title"] == "Renamed"
        # bad values and unknown fields: not-acceptable
        assert await fails(ps(admin).set_node_config(
            PS, "blog", form(access_model="everyone"), timeout=TIMEOUT)) == ("not-acceptable", None)
        assert await fails(ps(admin).set_node_config(
            PS, "blog", form(max_items="100000"), timeout=TIMEOUT)) == ("not-acceptable", None)
        assert await fails(ps(admin).set_node_config(
            PS, "blog", form(bogus="1"), timeout=TIMEOUT)) == ("not-acceptable", None)
        assert await fails(create(admin, "bad", max_items="zero")) == ("not-acceptable", None)
        # the defaults (§8.3)
        r = await ps(admin).get_node_config(PS, timeout=TIMEOUT)
        defaults = r["pubsub_owner"]["default"]["form"].get_fields()
        assert defaults["pubsub#access_model"]["value"] == "open"
        assert defaults["pubsub#max_items"]["value"] == "20"


async def test_only_owners_configure_delete_purge(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "n")
        for coro in (ps(alice).get_node_config(PS, "n", timeout=TIMEOUT),
                     ps(alice).set_node_config(PS, "n", form(title="x"), timeout=TIMEOUT),
                     ps(alice).delete_node(PS, "n", timeout=TIMEOUT),
                     ps(alice).purge(PS, "n", timeout=TIMEOUT),
                     ps(alice).get_node_affiliations(PS, "n", timeout=TIMEOUT),
                     ps(alice).get_node_subscriptions(PS, "n", timeout=TIMEOUT)):
            assert await fails(coro) == ("forbidden", None)
        assert await fails(ps(admin).delete_node(PS, "nope", timeout=TIMEOUT)) == (
            "item-not-found", None)
        assert await fails(raw_iq(admin, pubsub("<delete/>", ns=OWNER), "set")) == (
            "bad-request", "nodeid-required")


async def test_delete_with_redirect_and_purge_notify_subscribers(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "old")
        await publish(admin, "old", id="1")
        await ps(alice).subscribe(PS, "old", timeout=TIMEOUT)
        await ps(admin).purge(PS, "old", timeout=TIMEOUT)
        kind, msg = await next_event(alice)
        assert kind == "pubsub_purge" and msg["pubsub_event"]["purge"]["node"] == "old"
        assert await items_of(admin, "old") == []
        await raw_iq(admin, pubsub("<delete node='old'><redirect uri='xmpp:pubsub.xmppd.test?;node=new'/></delete>",
                                   ns=OWNER), "set")
        kind, msg = await next_event(alice)
        assert kind == "pubsub_delete"
        redirect = msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}delete/{{{EVENT}}}redirect")
        assert redirect is not None and redirect.get("uri") == "xmpp:pubsub.xmppd.test?;node=new"
        assert "old" not in srv.ps.svc.nodes
        assert await fails(ps(alice).get_items(PS, "old", timeout=TIMEOUT)) == ("item-not-found", None)


# -- publishing, notifications, retrieval -----------------------------------------------------

async def test_publish_notifies_subscribers_with_and_without_payloads(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "news")
        r = await ps(alice).subscribe(PS, "news", timeout=TIMEOUT)
        assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
        r = await publish(admin, "news", id="first")
        assert r["pubsub"]["publish"]["item"]["id"] == "first"
        kind, msg = await next_event(alice)
        assert kind == "pubsub_publish" and msg["type"] == "headline" and msg["from"] == PS
        item = msg["pubsub_event"]["items"]["item"]
        assert item["id"] == "first" and item["payload"].tag == "{urn:test}entry"
        assert item["publisher"] == ""      # not exposed by default (itemreply none)
        await no_event(bob)                 # not subscribed
        # an id from the service when the publisher gives none
        r = await publish(admin, "news")
        assert r["pubsub"]["publish"]["item"]["id"]
        await next_event(alice)
        # without payloads, in normal messages, with the publisher
        await ps(admin).set_node_config(PS, "news", form(deliver_payloads="0",
                                                         notification_type="normal",
                                                         itemreply="publisher"), timeout=TIMEOUT)
        await publish(admin, "news", id="light")
        kind, msg = await next_event(alice)
        assert msg["type"] == "normal"
        item = msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}items/{{{EVENT}}}item")
        assert item.get("id") == "light" and len(item) == 0 and item.get("publisher") == ADMIN
        # no notifications at all
        await ps(admin).set_node_config(PS, "news", form(deliver_notifications="0"), timeout=TIMEOUT)
        await publish(admin, "news", id="silent")
        await no_event(alice)
        assert (await items_of(alice, "news"))[-1] == "silent"


async def test_retract_notifies(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "n", notify_retract="0")
        await ps(alice).subscribe(PS, "n", timeout=TIMEOUT)
        await publish(admin, "n", id="a")
        await publish(admin, "n", id="b")
        await next_event(alice), await next_event(alice)
        await ps(admin).retract(PS, "n", "a", timeout=TIMEOUT)
        await no_event(alice)               # notify_retract off, no notify attribute
        await ps(admin).retract(PS, "n", "b", notify=True, timeout=TIMEOUT)
        kind, msg = await next_event(alice)
        assert kind == "pubsub_retract" and msg["pubsub_event"]["items"]["retract"]["id"] == "b"
        assert await fails(ps(admin).retract(PS, "n", "b", timeout=TIMEOUT)) == ("item-not-found", None)
        assert await fails(ps(alice).retract(PS, "n", "b", timeout=TIMEOUT)) == ("forbidden", None)
        assert await fails(raw_iq(admin, pubsub("<retract node='n'/>"), "set")) == (
            "bad-request", "item-required")


async def test_configuration_notifications(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "n", notify_config="1")
        await ps(alice).subscribe(PS, "n", timeout=TIMEOUT)
        await ps(admin).set_node_config(PS, "n", form(title="New title"), timeout=TIMEOUT)
        kind, msg = await next_event(alice)
        assert kind == "pubsub_config"
        x = msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}configuration/{{jabber:x:data}}x")
        assert Form(xml=x).get_fields()["pubsub#title"]["value"] == "New title"
        await ps(admin).set_node_config(PS, "n", form(notify_config="0", title="Quiet"),
                                        timeout=TIMEOUT)
        await no_event(alice)


async def test_publish_options_preconditions(srv):
    async with clients(srv, ADMIN) as admin:
        await create(admin, "n", access_model="whitelist")
        await publish(admin, "n", opts=publish_options(access_model="whitelist"))
        assert await fails(publish(admin, "n", opts=publish_options(access_model="open"))) == (
            "conflict", "precondition-not-met")
        assert await fails(publish(admin, "n", opts=publish_options(bogus="x"))) == (
            "conflict", "precondition-not-met")


async def test_publish_errors(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "n")
        assert await fails(publish(admin, "nope")) == ("item-not-found", None)
        assert await fails(publish(alice, "n")) == ("forbidden", None)
        assert await fails(raw_iq(admin, pubsub("<publish node='n'/>"), "set")) == (
            "bad-request", "item-required")
        assert await fails(raw_iq(admin, pubsub("<publish node='n'><item id='x'/></publish>"), "set")) == (
            "bad-request", "payload-required")
        assert await fails(raw_iq(admin, pubsub(
            "<publish node='n'><item><a xmlns='x'/><b xmlns='x'/></item></publish>"), "set")) == (
            "bad-request", "invalid-payload")
        assert await fails(raw_iq(admin, pubsub("<publish><item><a xmlns='x'/></item></publish>"), "set")) == (
            "bad-request", "nodeid-required")
        # a transient notification-only node: no payload allowed
        await create(admin, "pings", persist_items="0", deliver_payloads="0")
        await raw_iq(admin, pubsub("<publish node='pings'><item/></publish>"), "set")
        assert await fails(publish(admin, "pings")) == ("bad-request", "item-forbidden")
        # an action the service does not know
        assert await fails(raw_iq(admin, pubsub("<frobnicate node='n'/>"), "set")) == (
            "feature-not-implemented", "unsupported")


async def test_items_by_id_max_items_and_rsm(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "log", max_items="10")
        for i in range(7):
            await publish(admin, "log", id=f"i{i}")
        assert await items_of(alice, "log") == [f"i{i}" for i in range(7)]
        assert await items_of(alice, "log", max_items=2) == ["i5", "i6"]
        assert await items_of(alice, "log", item_ids=["i3", "i1"]) == ["i3", "i1"]
        r = await ps(alice).get_item(PS, "log", "i4", timeout=TIMEOUT)
        assert r["pubsub"]["items"]["item"]["payload"].text == "hi"
        assert await fails(ps(alice).get_item(PS, "log", "zz", timeout=TIMEOUT)) == ("item-not-found", None)
        # RSM pages (XEP-0059) through slixmpp's iterator
        pages = []
        async for page in _pages(alice):
            pages.append(page)
        assert pages == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]
        # the last page, with <before/>
        reply = await raw_iq(alice, pubsub("<items node='log'/>",
                                            "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>"))
        assert [i.get("id") for i in reply.iter(f"{{{PUBSUB}}}item")] == ["i5", "i6"]
        assert reply.findtext("{http://jabber.org/protocol/pubsub}pubsub/{http://jabber.org/protocol/rsm}set/{http://jabber.org/protocol/rsm}count") == "7"
        # evicted beyond max_items
        for i in range(7, 12):
            await publish(admin, "log", id=f"i{i}")
        assert len(await items_of(alice, "log")) == 10
        assert await fails(raw_iq(alice, pubsub("<items/>"))) == ("bad-request", "nodeid-required")


async def _pages(c):
    # slixmpp's pubsub stanza knows no <set/> until told (its iterator needs it)
    from slixmpp.plugins.xep_0059 import Set
    from slixmpp.plugins.xep_0060.stanza import Pubsub
    from slixmpp.xmlstream import register_stanza_plugin
    register_stanza_plugin(Pubsub, Set)
    it = ps(c).get_items(PS, "log", iterator=True)
    it.amount = 3
    async for page in it:
        yield [i["id"] for i in page["pubsub"]["items"]]


# -- subscriptions ------------------------------------------------------------------------

async def test_subscribe_unsubscribe_and_listing(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "a")
        await create(admin, "b")
        await ps(alice).subscribe(PS, "a", timeout=TIMEOUT)
        await ps(alice).subscribe(PS, "b", bare=False, timeout=TIMEOUT)
        r = await ps(alice).get_subscriptions(PS, timeout=TIMEOUT)
        subs = sorted((s["node"], str(s["jid"]), s["subscription"]) for s in r["pubsub"]["subscriptions"])
        assert subs == [("a", ALICE, "subscribed"), ("b", str(alice.boundjid), "subscribed")]
        r = await ps(alice).get_subscriptions(PS, node="a", timeout=TIMEOUT)
        assert [s["node"] for s in r["pubsub"]["subscriptions"]] == ["a"]
        # affiliations: the owner's
        r = await ps(admin).get_affiliations(PS, timeout=TIMEOUT)
        assert sorted((a["node"], a["affiliation"]) for a in r["pubsub"]["affiliations"]) == [
            ("a", "owner"), ("b", "owner")]
        # another's JID: invalid-jid; an unknown node
        assert await fails(ps(bob).subscribe(PS, "a", subscribee=ALICE, timeout=TIMEOUT)) == (
            "bad-request", "invalid-jid")
        assert await fails(ps(bob).subscribe(PS, "nope", timeout=TIMEOUT)) == ("item-not-found", None)
        assert await fails(raw_iq(bob, pubsub(f"<subscribe jid='{BOB}'/>"), "set")) == (
            "bad-request", "nodeid-required")
        await ps(alice).unsubscribe(PS, "a", timeout=TIMEOUT)
        assert await fails(ps(alice).unsubscribe(PS, "a", timeout=TIMEOUT)) == (
            "unexpected-request", "not-subscribed")
        assert await fails(ps(bob).unsubscribe(PS, "b", subscribee=str(alice.boundjid),
                                               timeout=TIMEOUT)) == ("forbidden", None)


async def test_subscription_options(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "n")
        await ps(alice).subscribe(PS, "n", timeout=TIMEOUT)
        r = await ps(alice).get_subscription_options(PS, "n", ALICE, timeout=TIMEOUT)
        x = r.xml.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}options/{{jabber:x:data}}x")
        fields = Form(xml=x).get_fields()
        assert fields["pubsub#deliver"]["value"] is True
        # the defaults (§6.4)
        r = await ps(alice).get_subscription_options(PS, "n", timeout=TIMEOUT)
        default = r.xml.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}default/{{jabber:x:data}}x")
        assert [f.get("var") for f in default] == ["FORM_TYPE", "pubsub#deliver"]
        # turn delivery off (an IQ set, §6.3.5)
        opts = form("http://jabber.org/protocol/pubsub#subscribe_options", deliver="0")
        x = ET.fromstring(str(opts))
        await raw_iq(alice, pubsub(f"<options node='n' jid='{ALICE}'>{ET.tostring(x).decode()}</options>"), "set")
        await publish(admin, "n")
        await no_event(alice)
        assert await fails(ps(bob).get_subscription_options(PS, "n", BOB, timeout=TIMEOUT)) == (
            "unexpected-request", "not-subscribed")
        assert await fails(ps(bob).get_subscription_options(PS, "n", ALICE, timeout=TIMEOUT)) == (
            "forbidden", None)
        bad = form("http://jabber.org/protocol/pubsub#subscribe_options", bogus="1")
        assert await fails(raw_iq(alice, pubsub(
            f"<options node='n' jid='{ALICE}'>{ET.tostring(ET.fromstring(str(bad))).decode()}</options>"),
            "set")) == ("bad-request", "invalid-options")
        # subscribe with options in the request
        await ps(bob).subscribe(PS, "n", options=form(
            "http://jabber.org/protocol/pubsub#subscribe_options", deliver="1"), timeout=TIMEOUT)
        await publish(admin, "n")
        assert (await next_event(bob))[0] == "pubsub_publish"


async def test_send_last_published_item(srv):
    async with clients(srv, ADMIN, ALICE, BOB, CAROL) as (admin, alice, bob, carol):
        await create(admin, "never")
        await create(admin, "onsub", send_last_published_item="on_sub")
        await create(admin, "presence", send_last_published_item="on_sub_and_presence")
        for n in ("never", "onsub", "presence"):
            await publish(admin, n, id=f"{n}-last")
        await ps(alice).subscribe(PS, "never", timeout=TIMEOUT)
        await no_event(alice)
        await ps(alice).subscribe(PS, "onsub", timeout=TIMEOUT)
        kind, msg = await next_event(alice)
        assert msg["pubsub_event"]["items"]["item"]["id"] == "onsub-last"
        assert msg.xml.find("{urn:xmpp:delay}delay") is not None
        await ps(bob).subscribe(PS, "presence", bare=False, timeout=TIMEOUT)
        kind, msg = await next_event(bob)
        assert msg["pubsub_event"]["items"]["item"]["id"] == "presence-last"
        # on presence: the subscriber's available presence to the service
        bob.send_presence(pto=PS)
        kind, msg = await next_event(bob)
        assert msg["pubsub_event"]["items"]["item"]["id"] == "presence-last"
        alice.send_presence(pto=PS)      # on_sub nodes only: nothing
        await no_event(alice)
        carol.send_presence(pto=PS)      # not subscribed: nothing
        await no_event(carol)


# -- access and publisher models ------------------------------------------------------------

async def test_whitelist_and_affiliations_by_the_owner(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "club", access_model="whitelist")
        await publish(admin, "club", id="x")
        assert await fails(ps(alice).subscribe(PS, "club", timeout=TIMEOUT)) == ("not-allowed", "closed-node")
        assert await fails(ps(alice).get_items(PS, "club", timeout=TIMEOUT)) == ("not-allowed", "closed-node")
        await ps(admin).modify_affiliations(PS, "club", [(ALICE, "member"), (BOB, "publisher")],
                                            timeout=TIMEOUT)
        r = await ps(admin).get_node_affiliations(PS, "club", timeout=TIMEOUT)
        assert sorted((str(a["jid"]), a["affiliation"]) for a in r["pubsub_owner"]["affiliations"]) == [
            (ADMIN, "owner"), (ALICE, "member"), (BOB, "publisher")]
        await ps(alice).subscribe(PS, "club", timeout=TIMEOUT)
        await publish(bob, "club", id="by-bob")
        assert (await next_event(alice))[1]["pubsub_event"]["items"]["item"]["id"] == "by-bob"
        assert await fails(publish(alice, "club")) == ("forbidden", None)
        r = await ps(alice).get_affiliations(PS, timeout=TIMEOUT)
        assert [(a["node"], a["affiliation"]) for a in r["pubsub"]["affiliations"]] == [("club", "member")]
        # outcast: banned, its subscription goes
        await ps(admin).modify_affiliations(PS, "club", [(ALICE, "outcast")], timeout=TIMEOUT)
        assert await fails(ps(alice).get_items(PS, "club", timeout=TIMEOUT)) == ("forbidden", None)
        assert ALICE not in srv.ps.svc.nodes["club"].subscriptions
        # a second owner; the last owner stays
        await ps(admin).modify_affiliations(PS, "club", [(BOB, "owner")], timeout=TIMEOUT)
        await ps(bob).set_node_config(PS, "club", form(title="Bob's too"), timeout=TIMEOUT)
        await ps(bob).modify_affiliations(PS, "club", [(ADMIN, "none")], timeout=TIMEOUT)
        assert await fails(ps(bob).modify_affiliations(PS, "club", [(BOB, "member")],
                                                       timeout=TIMEOUT)) == ("not-acceptable", None)
        assert await fails(ps(bob).modify_affiliations(PS, "club", [(BOB, "king")],
                                                       timeout=TIMEOUT)) == ("not-acceptable", None)


async def test_presence_and_roster_access_models(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "status", access_model="presence")
        await ps(admin).modify_affiliations(PS, "status", [(ALICE, "owner")], timeout=TIMEOUT)
        await ps(admin).modify_affiliations(PS, "status", [(ADMIN, "none")], timeout=TIMEOUT)
        await publish(alice, "status", id="s")
        assert await fails(ps(bob).get_items(PS, "status", timeout=TIMEOUT)) == (
            "not-authorized", "presence-subscription-required")
        assert await fails(ps(bob).subscribe(PS, "status", timeout=TIMEOUT)) == (
            "not-authorized", "presence-subscription-required")
        await shares_presence(srv, ALICE, BOB)      # bob sees alice's presence
        assert await items_of(bob, "status") == ["s"]
        await ps(bob).subscribe(PS, "status", timeout=TIMEOUT)
        # roster: only the allowed groups of the owner's roster
        await create(admin, "team", access_model="roster", roster_groups_allowed="Friends")
        await ps(admin).modify_affiliations(PS, "team", [(ALICE, "owner"), (ADMIN, "none")],
                                            timeout=TIMEOUT)
        assert await fails(ps(bob).get_items(PS, "team", timeout=TIMEOUT)) == (
            "not-authorized", "not-in-roster-group")
        await srv.server.hosts["xmppd.test"].roster.update(
            "alice", BOB, lambda i: {**i, "groups": ["Friends"]})
        assert await items_of(bob, "team") == []


async def test_authorize_access_model(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "private", access_model="authorize")
        await publish(admin, "private", id="secret")
        r = await ps(alice).subscribe(PS, "private", timeout=TIMEOUT)
        assert r["pubsub"]["subscription"]["subscription"] == "pending"
        # the owner gets the approval form
        msg = await _form_message(admin)
        x = msg.xml.find("{jabber:x:data}x")
        values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in x.findall("{jabber:x:data}field")}
        assert values["FORM_TYPE"] == "http://jabber.org/protocol/pubsub#subscribe_authorization"
        assert values["pubsub#node"] == "private" and values["pubsub#subscriber_jid"] == ALICE
        # pending: no items, no options
        assert await fails(ps(alice).get_items(PS, "private", timeout=TIMEOUT)) == (
            "not-authorized", "pending-subscription")
        assert await fails(ps(alice).get_subscription_options(PS, "private", ALICE, timeout=TIMEOUT)) == (
            "forbidden", "pending-subscription")
        assert await fails(ps(bob).get_items(PS, "private", timeout=TIMEOUT)) == (
            "not-authorized", "not-subscribed")
        # the owner sees the pending subscription
        r = await ps(admin).get_node_subscriptions(PS, "private", timeout=TIMEOUT)
        assert [(str(s["jid"]), s["subscription"]) for s in r["pubsub_owner"]["subscriptions"]] == [
            (ALICE, "pending")]
        # and approves it with the form
        answer = admin.Message(sto=PS)
        answer.append(_answer(values, allow=True))
        answer.send()
        sub_msg = await _subscription_message(alice)
        assert sub_msg.get("subscription") == "subscribed" and sub_msg.get("node") == "private"
        assert await items_of(alice, "private") == ["secret"]
        # bob asks, the owner says no
        await ps(bob).subscribe(PS, "private", timeout=TIMEOUT)
        await _form_message(admin)
        answer = admin.Message(sto=PS)
        answer.append(_answer({**values, "pubsub#subscriber_jid": BOB}, allow=False))
        answer.send()
        sub_msg = await _subscription_message(bob)
        assert sub_msg.get("subscription") == "none"
        assert BOB not in srv.ps.svc.nodes["private"].subscriptions


async def _form_message(c):
    while True:
        msg = await asyncio.wait_for(c.all_messages.get(), TIMEOUT)
        if msg.xml.find("{jabber:x:data}x") is not None:
            return msg


async def _subscription_message(c):
    while True:
        msg = await asyncio.wait_for(c.all_messages.get(), TIMEOUT)
        sub = msg.xml.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}subscription")
        if sub is not None:
            return sub


def _answer(values: dict, allow: bool):
    f = Form()
    f["type"] = "submit"
    f.add_field(var="FORM_TYPE", ftype="hidden", value=values["FORM_TYPE"])
    f.add_field(var="pubsub#node", value=values["pubsub#node"])
    f.add_field(var="pubsub#subscriber_jid", value=values["pubsub#subscriber_jid"])
    f.add_field(var="pubsub#allow", ftype="boolean", value=allow)
    return f


async def test_publisher_models(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "wall", publish_model="open")
        await publish(alice, "wall", id="by-alice")
        await create(admin, "chat", publish_model="subscribers")
        assert await fails(publish(alice, "chat")) == ("forbidden", None)
        await ps(alice).subscribe(PS, "chat", timeout=TIMEOUT)
        await publish(alice, "chat", id="ok")
        assert await fails(publish(bob, "chat")) == ("forbidden", None)
        # a publisher may retract its own item (owners and publishers any)
        await ps(alice).retract(PS, "wall", "by-alice", timeout=TIMEOUT)


async def test_owner_manages_subscriptions(srv):
    async with clients(srv, ADMIN, ALICE, BOB) as (admin, alice, bob):
        await create(admin, "n")
        await ps(admin).modify_subscriptions(PS, "n", [(ALICE, "subscribed")], timeout=TIMEOUT)
        sub = await _subscription_message(alice)
        assert sub.get("subscription") == "subscribed"
        await publish(admin, "n")
        assert (await next_event(alice))[0] == "pubsub_publish"
        await ps(bob).subscribe(PS, "n", timeout=TIMEOUT)
        r = await ps(admin).get_node_subscriptions(PS, "n", timeout=TIMEOUT)
        assert sorted((str(s["jid"]), s["subscription"]) for s in r["pubsub_owner"]["subscriptions"]) == [
            (ALICE, "subscribed"), (BOB, "subscribed")]
        await ps(admin).modify_subscriptions(PS, "n", [(ALICE, "none")], timeout=TIMEOUT)
        assert (await _subscription_message(alice)).get("subscription") == "none"
        await publish(admin, "n")
        await no_event(alice)
        assert await fails(ps(admin).modify_subscriptions(PS, "n", [(BOB, "maybe")],
                                                          timeout=TIMEOUT)) == ("bad-request", None)


# -- disco --------------------------------------------------------------------------------

async def test_disco(srv):
    async with clients(srv, ADMIN, ALICE) as (admin, alice):
        await create(admin, "news", title="News")
        await create(admin, "hidden", access_model="whitelist")
        await publish(admin, "news", id="n1")
        info = await alice.plugin["xep_0030"].get_info(jid=PS, timeout=TIMEOUT)
        ids = info["disco_info"]["identities"]
        assert ("pubsub", "service", None, "PubSub Service") in ids
        features = info["disco_info"]["features"]
        for f in ("http://jabber.org/protocol/pubsub", "http://jabber.org/protocol/pubsub#publish",
                  "http://jabber.org/protocol/pubsub#subscribe", "http://jabber.org/protocol/pubsub#access-authorize",
                  "http://jabber.org/protocol/pubsub#retrieve-items", "http://jabber.org/protocol/pubsub#publish-options",
                  "http://jabber.org/protocol/pubsub#create-and-configure", "http://jabber.org/protocol/pubsub#subscription-options"):
            assert f in features, f
        assert "http://jabber.org/protocol/pubsub#auto-create" not in features
        items = await alice.plugin["xep_0030"].get_items(jid=PS, timeout=TIMEOUT)
        assert [(i[1], i[2]) for i in items["disco_items"]["items"]] == [("news", "News")]
        items = await admin.plugin["xep_0030"].get_items(jid=PS, timeout=TIMEOUT)
        assert sorted(i[1] for i in items["disco_items"]["items"]) == ["hidden", "news"]
        # a node: leaf identity and its meta-data
        info = await alice.plugin["xep_0030"].get_info(jid=PS, node="news", timeout=TIMEOUT)
        assert ("pubsub", "leaf", None, None) in info["disco_info"]["identities"]
        meta = info["disco_info"].xml.find("{jabber:x:data}x")
        values = {f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
                  for f in meta.findall("{jabber:x:data}field")}
        assert values["FORM_TYPE"] == ["http://jabber.org/protocol/pubsub#meta-data"]
        assert values["pubsub#title"] == ["News"] and values["pubsub#owner"] == [ADMIN]
        assert values["pubsub#access_model"] == ["open"]
        # a node's items
        items = await alice.plugin["xep_0030"].get_items(jid=PS, node="news", timeout=TIMEOUT)
        assert [i[2] for i in items["disco_items"]["items"]] == ["n1"]
        with pytest.raises(IqError) as e:
            await alice.plugin["xep_0030"].get_info(jid=PS, node="hidden", timeout=TIMEOUT)
        assert e.value.iq["error"]["condition"] == "item-not-found"


# -- options --------------------------------------------------------------------------------

async def test_autocreate_and_expose_publisher(tmp_path, certs):
    srv = await start(tmp_path, certs, """
        autocreate_on_publish = true
        autocreate_on_subscribe = true
        expose_publisher = true
        pubsub_max_items = 3
        pubsub_max_payload_size = 100
    """)
    try:
        async with clients(srv, ADMIN, ALICE) as (admin, alice):
            await publish(admin, "auto", opts=publish_options(access_model="open", max_items="2"))
            assert srv.ps.svc.nodes["auto"].config["pubsub#max_items"] == 2
            await ps(admin).subscribe(PS, "auto2", timeout=TIMEOUT)
            assert "auto2" in srv.ps.svc.nodes
            # not for those who may not create nodes
            assert await fails(publish(alice, "alice-node")) == ("forbidden", None)
            assert await fails(ps(alice).subscribe(PS, "alice-node", timeout=TIMEOUT)) == (
                "item-not-found", None)
            await ps(alice).subscribe(PS, "auto", timeout=TIMEOUT)
            await publish(admin, "auto", id="p")
            kind, msg = await next_event(alice)
            item = msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}items/{{{EVENT}}}item")
            assert item.get("publisher") == ADMIN
            r = await ps(alice).get_items(PS, "auto", timeout=TIMEOUT)
            assert r.xml.find(f".//{{{PUBSUB}}}item").get("publisher") == ADMIN
            assert await fails(create(admin, "big", max_items="4")) == ("not-acceptable", None)
            assert await fails(publish(admin, "auto", payload=f"<big xmlns='urn:t'>{'x' * 100}</big>")) == (
                "not-acceptable", "payload-too-big")
            info = await alice.plugin["xep_0030"].get_info(jid=PS, timeout=TIMEOUT)
            assert "http://jabber.org/protocol/pubsub#auto-create" in info["disco_info"]["features"]
    finally:
        await srv.server.stop()


async def test_admin_affiliation_option(tmp_path, certs):
    srv = await start(tmp_path, certs, 'default_admin_affiliation = "publisher"\n')
    try:
        async with clients(srv, ADMIN, ALICE) as (admin, alice):
            await create(admin, "n")        # admins create nodes (and own them)
            await ps(admin).modify_affiliations(PS, "n", [(ALICE, "owner"), (ADMIN, "none")],
                                                timeout=TIMEOUT)
            # now a publisher only, on every node
            await publish(admin, "n")
            assert await fails(ps(admin).get_node_config(PS, "n", timeout=TIMEOUT)) == ("forbidden", None)
    finally:
        await srv.server.stop()


# -- persistence ------------------------------------------------------------------------------

async def test_everything_survives_a_restart(tmp_path, certs):
    srv = await start(tmp_path, certs)
    try:
        async with clients(srv, ADMIN, ALICE) as (admin, alice):
            await create(admin, "kept", title="Kept", max_items="5", access_model="authorize")
            await ps(admin).modify_affiliations(PS, "kept", [(BOB, "publisher")], timeout=TIMEOUT)
            await ps(alice).subscribe(PS, "kept", timeout=TIMEOUT)      # pending
            await ps(admin).modify_subscriptions(PS, "kept", [(CAROL, "subscribed")], timeout=TIMEOUT)
            for i in range(3):
                await publish(admin, "kept", id=f"k{i}")
            await create(admin, "transient", persist_items="0")
            await publish(admin, "transient", id="gone")
    finally:
        await srv.server.stop()
    srv = await start(tmp_path, certs)
    try:
        node = srv.ps.svc.nodes["kept"]
        assert node.config["pubsub#title"] == "Kept" and node.config["pubsub#max_items"] == 5
        assert node.affiliations == {ADMIN: "owner", BOB: "publisher"}
        assert node.subscriptions == {ALICE: "pending", CAROL: "subscribed"}
        async with clients(srv, CAROL, BOB) as (carol, bob):
            assert await items_of(carol, "kept") == ["k0", "k1", "k2"]
            await publish(bob, "kept", id="after")
            assert (await next_event(carol))[1]["pubsub_event"]["items"]["item"]["id"] == "after"
            assert "transient" in srv.ps.svc.nodes
            assert await items_of(carol, "transient") == []
    finally:
        await srv.server.stop()


# -- aioxmpp ----------------------------------------------------------------------------------

async def test_aioxmpp_flows(srv):
    aioxmpp = pytest.importorskip("aioxmpp")
    import aioxmpp.pubsub
    import aioxmpp.forms
    from .imhelpers import aioxmpp_client
    async with clients(srv, ADMIN) as admin:
        await create(admin, "aio")
        await publish(admin, "aio", id="one")
        await publish(admin, "aio", id="two")
    client = aioxmpp_client(srv, ALICE)
    async with client.connected():
        pubsub_ = client.summon(aioxmpp.PubSubClient)
        service = aioxmpp.JID.fromstr(PS)
        got: asyncio.Queue = asyncio.Queue()
        pubsub_.on_item_published.connect(
            lambda jid, node, item, **kw: got.put_nowait((node, item.id_)))
        features = await pubsub_.get_features(service)
        assert aioxmpp.pubsub.xso.Feature.SUBSCRIBE in features
        # the full JID: this client sends no presence, a bare JID would reach nobody
        await pubsub_.subscribe(service, "aio", subscription_jid=client.local_jid)
        items = await pubsub_.get_items(service, "aio")
        assert [i.id_ for i in items.payload.items] == ["one", "two"]
        items = await pubsub_.get_items(service, "aio", max_items=1)
        assert [i.id_ for i in items.payload.items] == ["two"]
        subs = await pubsub_.get_subscriptions(service)
        assert [(s.node, s.subscription) for s in subs.subscriptions] == [("aio", "subscribed")]
        nodes = await pubsub_.get_nodes(service)
        assert [n for n, _meta in nodes] == ["aio"]
        async with clients(srv, ADMIN) as admin:
            await publish(admin, "aio", id="three")
            assert await asyncio.wait_for(got.get(), TIMEOUT) == ("aio", "three")
        await pubsub_.unsubscribe(service, "aio", subscription_jid=client.local_jid)
        with pytest.raises(aioxmpp.errors.XMPPCancelError):
            await pubsub_.get_items(service, "missing")

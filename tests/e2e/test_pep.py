"""PEP (XEP-0163) on the PubSub core, with slixmpp's xep_0060/xep_0163/xep_0115."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from .clients import Login, logged_in
from .conftest import start_server
from .peputil import (
    shares_presence,
    EVENT, PUBSUB, available, next_event, no_event, options, pep_connect, publish,
    pubsub_error,
)

A, B = "alice@xmppd.test", "bob@xmppd.test"
MOOD = "http://jabber.org/protocol/mood"
HOST_EXTRA = '    modules_enabled = { "disco", "pep" }\n'


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=HOST_EXTRA)
    try:
        await s.adduser(A)
        await s.adduser(B)
        yield s
    finally:
        await s.server.stop()


def mood(word: str) -> str:
    return f"<mood xmlns='{MOOD}'><{word}/></mood>"


async def test_publish_autocreates_and_owner_reads(srv):
    async with logged_in(srv, A, connect=pep_connect) as a:
        r = await publish(a, MOOD, mood("happy"), id="current")
        assert r["pubsub"]["publish"]["node"] == MOOD
        assert r["pubsub"]["publish"]["item"]["id"] == "current"
        got = await a.plugin["xep_0060"].get_items(A, MOOD, timeout=10)
        items = list(got["pubsub"]["items"])
        assert [i["id"] for i in items] == ["current"]
        assert items[0].xml.find(f"{{{MOOD}}}mood/{{{MOOD}}}happy") is not None
        # an id is made up when the client gives none
        r = await publish(a, MOOD, mood("sad"))
        assert r["pubsub"]["publish"]["item"]["id"]
        got = await a.plugin["xep_0060"].get_items(A, MOOD, timeout=10)
        assert len(list(got["pubsub"]["items"])) == 1      # default max_items = 1
        # disco: the account is a pep service and lists its node
        info = await a.plugin["xep_0030"].get_info(A, timeout=10)
        assert ("pubsub", "pep", None, None) in info["disco_info"]["identities"]
        feats = info["disco_info"]["features"]
        for f in ("publish", "publish-options", "auto-create", "retrieve-items", "retract-items",
                  "delete-nodes", "access-presence", "access-open", "access-whitelist", "config-node"):
            assert f"{PUBSUB}#{f}" in feats
        items = await a.plugin["xep_0030"].get_items(A, timeout=10)
        assert (A, MOOD, None) in items["disco_items"]["items"]
        server = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
        assert f"{PUBSUB}#publish-options" in server["disco_info"]["features"]


async def test_publish_options_preconditions_and_configure(srv):
    async with logged_in(srv, A, connect=pep_connect) as a:
        await publish(a, "urn:example:n", "<x xmlns='urn:example'/>", id="1",
                      opts=options(access_model="open", max_items="max"))
        conf = await a.plugin["xep_0060"].get_node_config(None, "urn:example:n", timeout=10)
        form = conf["pubsub_owner"]["configure"]["form"]
        assert form.get_values()["pubsub#access_model"] == "open"
        assert form.get_values()["pubsub#max_items"] == "max"
        # the same options again: fine; different ones: conflict + precondition-not-met
        await publish(a, "urn:example:n", "<x xmlns='urn:example'/>", id="2",
                      opts=options(access_model="open"))
        with pytest.raises(IqError) as e:
            await publish(a, "urn:example:n", "<x xmlns='urn:example'/>", id="3",
                          opts=options(access_model="presence"))
        assert pubsub_error(e.value) == ("conflict", "precondition-not-met")
        # reconfigure (what Conversations does after a precondition failure), then retry
        form["type"] = "submit"
        form.field["pubsub#access_model"]["value"] = "presence"
        await a.plugin["xep_0060"].set_node_config(None, "urn:example:n", form, timeout=10)
        await publish(a, "urn:example:n", "<x xmlns='urn:example'/>", id="3",
                      opts=options(access_model="presence"))
        got = await a.plugin["xep_0060"].get_items(None, "urn:example:n", timeout=10)
        assert [i["id"] for i in got["pubsub"]["items"]] == ["1", "2", "3"]
        got = await a.plugin["xep_0060"].get_items(None, "urn:example:n", max_items=1, timeout=10)
        assert [i["id"] for i in got["pubsub"]["items"]] == ["3"]
        got = await a.plugin["xep_0060"].get_item(None, "urn:example:n", "2", timeout=10)
        assert [i["id"] for i in got["pubsub"]["items"]] == ["2"]
        # a bad option value on a new node
        with pytest.raises(IqError) as e:
            await publish(a, "urn:example:m", "<x xmlns='urn:example'/>",
                          opts=options(access_model="everybody"))
        assert pubsub_error(e.value) == ("conflict", "precondition-not-met")


async def test_access_models_for_others(srv):
    async with logged_in(srv, A, B, connect=pep_connect) as (a, b):
        await publish(a, "urn:example:presence", "<x xmlns='urn:example'/>", id="1")
        await publish(a, "urn:example:open", "<x xmlns='urn:example'/>", id="1",
                      opts=options(access_model="open"))
        await publish(a, "urn:example:white", "<x xmlns='urn:example'/>", id="1",
                      opts=options(access_model="whitelist"))
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].get_items(A, "urn:example:presence", timeout=10)
        assert pubsub_error(e.value) == ("not-authorized", "presence-subscription-required")
        got = await b.plugin["xep_0060"].get_items(A, "urn:example:open", timeout=10)
        assert [i["id"] for i in got["pubsub"]["items"]] == ["1"]
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].get_items(A, "urn:example:white", timeout=10)
        assert pubsub_error(e.value) == ("not-allowed", "closed-node")
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].get_items(A, "urn:example:none", timeout=10)
        assert e.value.iq["error"]["condition"] == "item-not-found"
        # others can't publish, retract, configure or delete
        with pytest.raises(IqError) as e:
            await publish(b, "urn:example:open", "<x xmlns='urn:example'/>", to=A)
        assert e.value.iq["error"]["condition"] == "forbidden"
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].delete_node(A, "urn:example:open", timeout=10)
        assert e.value.iq["error"]["condition"] == "forbidden"
        # whitelist: a member affiliation lets bob in
        await a.plugin["xep_0060"].modify_affiliations(
            None, "urn:example:white", affiliations=[(B, "member")], timeout=10)
        got = await b.plugin["xep_0060"].get_items(A, "urn:example:white", timeout=10)
        assert [i["id"] for i in got["pubsub"]["items"]] == ["1"]
        affs = await a.plugin["xep_0060"].get_node_affiliations(None, "urn:example:white", timeout=10)
        assert {(x["jid"].bare, x["affiliation"]) for x in affs["pubsub_owner"]["affiliations"]} == {
            (A, "owner"), (B, "member")}
        # disco#items of alice as seen by bob: only what he may see
        items = await b.plugin["xep_0030"].get_items(A, timeout=10)
        nodes = {n for _j, n, _ in items["disco_items"]["items"]}
        assert nodes == {"urn:example:open", "urn:example:white"}
        # an account that does not exist
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].get_items("nobody@xmppd.test", "x", timeout=10)
        assert e.value.iq["error"]["condition"] == "service-unavailable"


async def test_notifications_follow_caps(srv):
    async with logged_in(srv, Login(A, interests=[MOOD]),
                         Login(A + "/nocaps", plugins=("xep_0030", "xep_0004", "xep_0060")),
                         A + "/other",      # caps, but no +notify for MOOD
                         Login(B, interests=[MOOD], presence=False),
                         Login(B + "/nocaps", presence=False),
                         connect=pep_connect) as (a, a2, a3, b, c):
        await publish(a, MOOD, mood("happy"), id="current", opts=options(access_model="open"))
        # the owner's resources are told: those that want it, and those without caps
        for cl in (a, a2):
            name, msg = await next_event(cl)
            assert name == "pubsub_publish" and msg["pubsub_event"]["items"]["node"] == MOOD
        await no_event(a3, 0.2)
        # bob (a contact: he has alice's presence) becomes available to her: the
        # last item comes, stamped with a delay
        await shares_presence(srv, A, B)
        await available(b, to=A)
        name, msg = await next_event(b)
        assert name == "pubsub_publish"
        assert msg["from"] == A and msg["type"] == "headline"
        assert msg["pubsub_event"]["items"]["item"]["id"] == "current"
        assert msg.xml.find("{urn:xmpp:delay}delay") is not None
        # a resource without +notify gets nothing
        await available(c, to=A)
        await publish(a, MOOD, mood("sad"), id="current")
        name, msg = await next_event(b)
        assert msg.xml.find(f".//{{{EVENT}}}item/{{{MOOD}}}mood/{{{MOOD}}}sad") is not None
        await no_event(c)
        # retract with notify, then delete the node
        await a.plugin["xep_0060"].retract(None, MOOD, "current", notify=True, timeout=10)
        name, msg = await next_event(b)
        assert name == "pubsub_retract"
        await a.plugin["xep_0060"].delete_node(None, MOOD, timeout=10)
        name, msg = await next_event(b)
        assert name == "pubsub_delete"
        # once bob is unavailable, he is no longer told
        b.send_presence(pto=A, ptype="unavailable")
        await asyncio.sleep(0.2)
        await publish(a, MOOD, mood("happy"), id="current", opts=options(access_model="open"))
        await no_event(b)


async def test_owner_gets_last_items_on_login(srv):
    async with logged_in(srv, A, connect=pep_connect) as a:
        await publish(a, MOOD, mood("happy"), id="current")
    async with logged_in(srv, A, connect=pep_connect, interests=[MOOD]) as a:
        name, msg = await next_event(a)
        assert name == "pubsub_publish" and msg["pubsub_event"]["items"]["item"]["id"] == "current"


async def test_items_survive_restart(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=HOST_EXTRA)
    try:
        await s.adduser(A)
        async with logged_in(s, A, connect=pep_connect) as a:
            await publish(a, "urn:example:keep", "<x xmlns='urn:example'>1</x>", id="one",
                          opts=options(access_model="open", max_items="10"))
            await publish(a, "urn:example:keep", "<x xmlns='urn:example'>2</x>", id="two")
    finally:
        await s.server.stop()
    s = await start_server(tmp_path, certs, host_extra=HOST_EXTRA)
    try:
        async with logged_in(s, A, connect=pep_connect) as a:
            got = await a.plugin["xep_0060"].get_items(None, "urn:example:keep", timeout=10)
            assert [i["id"] for i in got["pubsub"]["items"]] == ["one", "two"]
            conf = await a.plugin["xep_0060"].get_node_config(None, "urn:example:keep", timeout=10)
            assert conf["pubsub_owner"]["configure"]["form"].get_values()["pubsub#max_items"] == "10"
    finally:
        await s.server.stop()


async def _mutual(a, b, timeout=10.0):
    """Make a and b mutual contacts with slixmpp's roster API (auto-authorize
    and auto-subscribe are slixmpp's defaults)."""
    await a.get_roster(timeout=10)
    await b.get_roster(timeout=10)
    a.send_presence_subscription(pto=b.boundjid.bare)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if (a.client_roster[b.boundjid.bare]["subscription"] == "both"
                and b.client_roster[a.boundjid.bare]["subscription"] == "both"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("subscription did not complete")


async def test_presence_access_with_roster(tmp_path, certs):
    import inspect

    from xmppd.modules import presence
    pytest.importorskip("xmppd.modules.roster")
    if "subscribed" not in inspect.getsource(presence):
        pytest.skip("the presence module does not handle subscriptions yet")
    s = await start_server(tmp_path, certs,
                           host_extra='    modules_enabled = { "disco", "roster", "pep" }\n')
    try:
        for u in (A, B, "carol@xmppd.test"):
            await s.adduser(u)
        async with logged_in(s, A, Login(B, interests=[MOOD]),
                             Login("carol@xmppd.test", interests=[MOOD]),
                             connect=pep_connect) as (a, b, c):
            await _mutual(a, b)
            await publish(a, MOOD, mood("happy"), id="current")     # default: presence
            while True:   # bob is told (maybe after a last-item delivery of nothing)
                name, msg = await next_event(b)
                if msg.xml.find(f".//{{{MOOD}}}happy") is not None:
                    break
            got = await b.plugin["xep_0060"].get_items(A, MOOD, timeout=10)
            assert [i["id"] for i in got["pubsub"]["items"]] == ["current"]
            with pytest.raises(IqError) as e:
                await c.plugin["xep_0060"].get_items(A, MOOD, timeout=10)
            assert pubsub_error(e.value) == ("not-authorized", "presence-subscription-required")
            # carol's directed presence does not make her a subscriber
            await available(c, to=A)
            await publish(a, MOOD, mood("sad"), id="current")
            await no_event(c)
        # bob logs in again: alice's last item comes with her presence
        async with logged_in(s, B, connect=pep_connect, interests=[MOOD]) as b:
            name, msg = await next_event(b)
            assert msg["from"] == A and msg.xml.find(f".//{{{MOOD}}}sad") is not None
    finally:
        await s.server.stop()


async def test_explicit_subscription_options_and_owner_management(srv):
    """The XEP-0060 handlers PEP shares with the pubsub component: an explicit
    subscriber turns delivery off with its subscription options; the account
    removes a subscriber (owner subscriptions) and the subscriber is told."""
    from slixmpp.plugins.xep_0004 import Form
    async with logged_in(srv, A, B, connect=pep_connect) as (a, b):
        await publish(a, MOOD, mood("happy"), id="1",
                      opts=options(access_model="open", send_last_published_item="never"))
        ps = b.plugin["xep_0060"]
        await ps.subscribe(A, MOOD, bare=False, timeout=10)
        await publish(a, MOOD, mood("sad"), id="2")
        name, msg = await next_event(b)
        assert name == "pubsub_publish" and msg["pubsub_event"]["items"]["item"]["id"] == "2"
        off = Form()
        off["type"] = "submit"
        off.add_field(var="FORM_TYPE", ftype="hidden",
                      value="http://jabber.org/protocol/pubsub#subscribe_options")
        off.add_field(var="pubsub#deliver", value="0")
        iq = b.make_iq_set(ito=A)
        iq["pubsub"]["options"]["node"] = MOOD
        iq["pubsub"]["options"]["jid"] = b.boundjid.full
        iq["pubsub"]["options"].append(off)
        await iq.send(timeout=10)
        await publish(a, MOOD, mood("calm"), id="3")
        await no_event(b)
        r = await a.plugin["xep_0060"].get_node_subscriptions(None, MOOD, timeout=10)
        assert [(str(s["jid"]), s["subscription"]) for s in r["pubsub_owner"]["subscriptions"]] == [
            (b.boundjid.full, "subscribed")]
        await a.plugin["xep_0060"].modify_subscriptions(None, MOOD, [(b.boundjid.full, "none")],
                                                        timeout=10)
        r = await ps.get_subscriptions(A, timeout=10)
        assert list(r["pubsub"]["subscriptions"]) == []

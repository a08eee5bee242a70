"""OMEMO over PEP, the way Conversations (axolotl) and Dino (omemo:2) use it:
open device lists and bundles via publish-options, contacts fetching them,
device-list notifications through +notify."""
from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError

from .clients import Login, logged_in
from .conftest import start_server
from .peputil import (
    shares_presence,
    EVENT, available, next_event, options, pep_connect, publish, pubsub_error,
)

A, B = "alice@xmppd.test", "bob@xmppd.test"
AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = AXOLOTL + ".devicelist"
OMEMO2 = "urn:xmpp:omemo:2"
OPEN = dict(access_model="open")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "disco", "pep" }\n')
    try:
        await s.adduser(A)
        await s.adduser(B)
        yield s
    finally:
        await s.server.stop()


def devicelist(*ids) -> str:
    return f"<list xmlns='{AXOLOTL}'>" + "".join(f"<device id='{i}'/>" for i in ids) + "</list>"


def bundle(n: int) -> str:
    return (f"<bundle xmlns='{AXOLOTL}'><signedPreKeyPublic signedPreKeyId='1'>AAAA</signedPreKeyPublic>"
            f"<signedPreKeySignature>BBBB</signedPreKeySignature><identityKey>CC{n}</identityKey>"
            "<prekeys>" + "".join(f"<preKeyPublic preKeyId='{i}'>DD{i}</preKeyPublic>" for i in range(1, 5))
            + "</prekeys></bundle>")


async def publish_open(c, node, payload, id="current"):
    """Conversations: publish with open access; on precondition-not-met,
    reconfigure the node and publish again."""
    try:
        return await publish(c, node, payload, id=id, opts=options(**OPEN))
    except IqError as e:
        assert pubsub_error(e) == ("conflict", "precondition-not-met")
    conf = await c.plugin["xep_0060"].get_node_config(None, node, timeout=10)
    form = conf["pubsub_owner"]["configure"]["form"]
    form["type"] = "submit"
    form.field["pubsub#access_model"]["value"] = "open"
    await c.plugin["xep_0060"].set_node_config(None, node, form, timeout=10)
    return await publish(c, node, payload, id=id, opts=options(**OPEN))


async def test_conversations_axolotl_flow(srv):
    async with logged_in(srv, A, Login(B, presence=False), connect=pep_connect,
                         interests=[DEVICELIST]) as (a, b):
        # an old client once created the device list with the default (presence) model
        await publish(a, DEVICELIST, devicelist(1111), id="current")
        await next_event(a)
        # the new device adds itself, with open access, and its bundle
        await publish_open(a, DEVICELIST, devicelist(1111, 2222))
        name, msg = await next_event(a)       # own device list notification
        assert name == "pubsub_publish"
        ids = [d.get("id") for d in msg.xml.iter(f"{{{AXOLOTL}}}device")]
        assert ids == ["1111", "2222"]
        await publish_open(a, f"{AXOLOTL}.bundles:2222", bundle(2222))
        # bob (not a contact) fetches the list and the bundle, as when starting a chat
        got = await b.plugin["xep_0060"].get_items(A, DEVICELIST, timeout=10)
        items = list(got["pubsub"]["items"])
        assert [i["id"] for i in items] == ["current"]
        assert [d.get("id") for d in items[0].xml.iter(f"{{{AXOLOTL}}}device")] == ["1111", "2222"]
        got = await b.plugin["xep_0060"].get_items(A, f"{AXOLOTL}.bundles:2222", max_items=1, timeout=10)
        bun = list(got["pubsub"]["items"])[0].xml.find(f"{{{AXOLOTL}}}bundle")
        assert bun.find(f"{{{AXOLOTL}}}identityKey").text == "CC2222"
        assert len(bun.findall(f"{{{AXOLOTL}}}prekeys/{{{AXOLOTL}}}preKeyPublic")) == 4
        with pytest.raises(IqError) as e:
            await b.plugin["xep_0060"].get_items(A, f"{AXOLOTL}.bundles:1111", timeout=10)
        assert e.value.iq["error"]["condition"] == "item-not-found"
        # bob shares presence with alice: the current list arrives, then updates
        await shares_presence(srv, A, B)
        await available(b, to=A)
        name, msg = await next_event(b)
        assert msg["from"] == A and msg["pubsub_event"]["items"]["node"] == DEVICELIST
        await publish_open(a, DEVICELIST, devicelist(2222))
        name, msg = await next_event(b)
        assert [d.get("id") for d in msg.xml.iter(f"{{{AXOLOTL}}}device")] == ["2222"]
        # the node is open now: no precondition failure any more
        r = await publish(a, DEVICELIST, devicelist(2222, 3333), id="current", opts=options(**OPEN))
        assert r["pubsub"]["publish"]["item"]["id"] == "current"


async def test_dino_omemo2_flow(srv):
    async with logged_in(srv, A, Login(B, presence=False), connect=pep_connect,
                         interests=[OMEMO2 + ":devices"]) as (a, b):
        await publish(a, OMEMO2 + ":devices",
                      f"<devices xmlns='{OMEMO2}'><device id='7' label='Dino'/></devices>",
                      id="current", opts=options(access_model="open"))
        for dev in (7, 8):
            await publish(a, OMEMO2 + ":bundles",
                          f"<bundle xmlns='{OMEMO2}'><spk id='1'>S{dev}</spk><ik>I{dev}</ik></bundle>",
                          id=str(dev), opts=options(access_model="open", max_items="max"))
        got = await b.plugin["xep_0060"].get_item(A, OMEMO2 + ":bundles", "7", timeout=10)
        items = list(got["pubsub"]["items"])
        assert [i["id"] for i in items] == ["7"]
        assert items[0].xml.find(f"{{{OMEMO2}}}bundle/{{{OMEMO2}}}ik").text == "I7"
        got = await b.plugin["xep_0060"].get_items(A, OMEMO2 + ":bundles", timeout=10)
        assert [i["id"] for i in got["pubsub"]["items"]] == ["7", "8"]
        await shares_presence(srv, A, B)
        await available(b, to=A)
        name, msg = await next_event(b)
        assert msg.xml.find(f".//{{{EVENT}}}item/{{{OMEMO2}}}devices/{{{OMEMO2}}}device").get("label") == "Dino"
        # bundles are not what bob asked notifications for
        await publish(a, OMEMO2 + ":bundles", f"<bundle xmlns='{OMEMO2}'/>", id="9",
                      opts=options(access_model="open", max_items="max"))
        await publish(a, OMEMO2 + ":devices",
                      f"<devices xmlns='{OMEMO2}'><device id='7'/><device id='9'/></devices>",
                      id="current", opts=options(access_model="open"))
        name, msg = await next_event(b)
        assert msg["pubsub_event"]["items"]["node"] == OMEMO2 + ":devices"

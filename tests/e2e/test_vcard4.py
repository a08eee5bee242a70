"""One profile, every protocol: vcard-temp (XEP-0054) ↔ vCard4 in PEP (XEP-0292) ↔
nickname (XEP-0172) ↔ avatar (XEP-0084), as Prosody's vcard_legacy and vcard4
convert them; driven with slixmpp's xep_0054, xep_0172, xep_0084 and the vCard4
stanza of its xep_0292 (whose own publish/retrieve use the node
``urn:ietf:params:xml:ns:vcard-4.0`` instead of XEP-0292's ``urn:xmpp:vcard4``:
published here through xep_0060 on the right node), a profile set by one client
and read by another."""
from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0292.stanza import VCard4

from .clients import Login, logged_in
from .conftest import start_server
from .peputil import PLUGINS, options, pep_connect, shares_presence

A, B = "alice@xmppd.test", "bob@xmppd.test"
V4 = "urn:ietf:params:xml:ns:vcard-4.0"
V = "{" + V4 + "}"
NODE = "urn:xmpp:vcard4"
NICK = "http://jabber.org/protocol/nick"
META = "urn:xmpp:avatar:metadata"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2
PLUG = PLUGINS + ("xep_0054", "xep_0084", "xep_0172", "xep_0292")


@pytest.fixture
async def srv(tmp_path, certs):
    # the Prosody names of the modules, as a Debian prosody.cfg.lua has them
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "disco", "pep", '
                           '"vcard4", "vcard_legacy" }\n')
    try:
        await s.adduser(A)
        await s.adduser(B)
        yield s
    finally:
        await s.server.stop()


def clients(srv, *logins):
    return logged_in(srv, *logins, connect=pep_connect, plugins=PLUG)


async def vcard_temp(c, jid):
    return (await c.plugin["xep_0054"].get_vcard(jid, timeout=10))["vcard_temp"]


async def vcard4_iq(c, jid, type_="get", payload=None):
    """The XEP-0292 IQ (Prosody's mod_vcard4)."""
    iq = c.Iq()
    iq["type"] = type_
    if jid:
        iq["to"] = jid
    iq.append(payload if payload is not None else ET.Element(V + "vcard"))
    return await iq.send(timeout=10)


async def publish_vcard4(c, *, opts=None, full_name=None, given=None, surname=None, nickname=None,
                         email=None, note=None, impp=None, phone=None):
    """slixmpp's XEP-0292 vCard, published to urn:xmpp:vcard4 (id 'current')."""
    card = VCard4()
    if full_name:
        card["full_name"] = full_name
    if given:
        card["given"] = given
    if surname:
        card["surname"] = surname
    for value, add in ((nickname, card.add_nickname), (email, card.add_email),
                       (note, card.add_note), (impp, card.add_impp), (phone, card.add_tel)):
        if value:
            add(value)
    await c.plugin["xep_0060"].publish(None, NODE, id="current", payload=card.xml,
                                       options=opts, timeout=10)


async def retrieve_vcard4(c, jid):
    got = await c.plugin["xep_0060"].get_item(jid, NODE, "current", timeout=10)
    return list(got["pubsub"]["items"])[0].xml.find(V + "vcard")


async def last_payload(c, jid, node):
    got = await c.plugin["xep_0060"].get_items(jid, node, timeout=10)
    items = list(got["pubsub"]["items"])
    return list(items[-1].xml)[0] if items else None


async def test_vcard_temp_set_shows_as_vcard4_nick_and_avatar(srv):
    async with clients(srv, A, A + "/phone", B) as (a, phone, b):
        vc = a.plugin["xep_0054"].make_vcard()
        vc["FN"] = "Alice Liddell"
        vc["NICKNAME"] = "Ally"
        vc["DESC"] = "Curiouser"
        vc["EMAIL"]["USERID"] = "alice@home.example"
        vc["EMAIL"]["HOME"] = True
        vc["PHOTO"]["TYPE"] = "image/png"
        vc["PHOTO"]["BINVAL"] = PNG
        await a.plugin["xep_0054"].publish_vcard(vc, timeout=10)

        # bob reads the vCard4 node (open, as Prosody creates it) ...
        card = await retrieve_vcard4(b, A)
        assert card.findtext(f"{V}fn/{V}text") == "Alice Liddell"
        assert card.findtext(f"{V}nickname/{V}text") == "Ally"
        assert card.findtext(f"{V}note/{V}text") == "Curiouser"
        assert card.findtext(f"{V}email/{V}text") == "alice@home.example"
        assert card.findtext(f"{V}email/{V}parameters/{V}type/{V}text") == "home"
        # ... and through the XEP-0292 IQ
        res = await vcard4_iq(b, A)
        assert res.xml.findtext(f"{V}vcard/{V}fn/{V}text") == "Alice Liddell"
        # her other client sees the nickname and the avatar in PEP
        nick = await last_payload(phone, None, NICK)
        assert nick.tag == f"{{{NICK}}}nick" and nick.text == "Ally"
        meta = await last_payload(phone, None, META)
        assert meta.find(f"{{{META}}}info").get("id") == hashlib.sha1(PNG).hexdigest()
        # the account advertises both
        features = (await b.plugin["xep_0030"].get_info(A, timeout=10))["disco_info"]["features"]
        assert V4 in features and "urn:xmpp:pep-vcard-conversion:0" in features


async def test_vcard4_nick_and_avatar_publishes_show_in_vcard_temp(srv):
    async with clients(srv, A, B) as (a, b):
        await publish_vcard4(
            a, opts=options(access_model="open"), full_name="Alice Liddell", given="Alice", surname="Liddell", nickname="Ally",
            email="alice@example.org", note="Curiouser", impp="xmpp:alice@wonder.example")
        vt = await vcard_temp(b, A)
        assert vt["FN"] == "Alice Liddell" and vt.xml.findtext("{vcard-temp}NICKNAME") == "Ally"
        assert vt["N"]["GIVEN"] == "Alice" and vt["N"]["FAMILY"] == "Liddell"
        assert vt["EMAIL"]["USERID"] == "alice@example.org"
        assert vt["DESC"] == "Curiouser" and vt["JABBERID"] == "alice@wonder.example"
        # the vCard4's nickname became the XEP-0172 nickname
        assert (await last_payload(a, None, NICK)).text == "Ally"

        # a new nickname (XEP-0172) goes into both cards
        await a.plugin["xep_0172"].publish_nick("Al", timeout=10)
        assert (await vcard_temp(b, A)).xml.findtext("{vcard-temp}NICKNAME") == "Al"
        card = (await vcard4_iq(b, A)).xml.find(V + "vcard")
        assert card.findtext(f"{V}nickname/{V}text") == "Al"
        assert card.findtext(f"{V}fn/{V}text") == "Alice Liddell"

        # an avatar (XEP-0084) becomes the vcard-temp PHOTO; the rest stays
        sha1 = hashlib.sha1(PNG).hexdigest()
        await a.plugin["xep_0084"].publish_avatar(PNG, timeout=10)
        await a.plugin["xep_0084"].publish_avatar_metadata(
            [{"id": sha1, "type": "image/png", "bytes": len(PNG)}], timeout=10)
        vt = await vcard_temp(b, A)
        assert vt["PHOTO"]["BINVAL"] == PNG and vt["PHOTO"]["TYPE"] == "image/png"
        assert vt["FN"] == "Alice Liddell" and vt.xml.findtext("{vcard-temp}NICKNAME") == "Al"

        # a vcard-temp set again keeps what only the vCard4 holds
        vc = a.plugin["xep_0054"].make_vcard()
        vc["FN"] = "Alice L."
        await a.plugin["xep_0054"].publish_vcard(vc, timeout=10)
        card = (await vcard4_iq(b, A)).xml.find(V + "vcard")
        assert card.findtext(f"{V}fn/{V}text") == "Alice L."
        assert card.find(V + "nickname") is None     # not in the vCard she set


async def test_vcard_temp_from_pep_only(srv):
    """An account whose profile is only in PEP (imported from Prosody's vcard_legacy):
    vcard-temp readers see it, photo included for those allowed to see the avatar."""
    async with clients(srv, A, Login(B, presence=False)) as (a, b):
        await publish_vcard4(a, opts=options(access_model="open"), full_name="Alice",
                             phone="+44 1865")
        sha1 = hashlib.sha1(PNG).hexdigest()
        await a.plugin["xep_0084"].publish_avatar(PNG, timeout=10)
        await a.plugin["xep_0084"].publish_avatar_metadata(
            [{"id": sha1, "type": "image/png", "bytes": len(PNG)}], timeout=10)
        await srv.server.hosts["xmppd.test"].modules["vcard"].provided.delete("alice")

        own = await vcard_temp(a, A)
        assert own["FN"] == "Alice" and own["TEL"]["NUMBER"] == "+44 1865"
        assert own["PHOTO"]["BINVAL"] == PNG
        # bob has no presence subscription: the avatar (presence access) is not his to see
        vt = await vcard_temp(b, A)
        assert vt["FN"] == "Alice"
        assert vt.xml.find("{vcard-temp}PHOTO") is None
        await shares_presence(srv, A, B)
        vt = await vcard_temp(b, A)
        assert base64.b64decode(vt.xml.findtext("{vcard-temp}PHOTO/{vcard-temp}BINVAL")) == PNG


async def test_vcard4_iq(srv):
    async with clients(srv, A, B) as (a, b):
        for jid in (A, "nobody@xmppd.test"):
            with pytest.raises(IqError) as err:
                await vcard4_iq(b, jid)
            assert err.value.iq["error"]["condition"] == "item-not-found"
        with pytest.raises(IqError) as err:
            await vcard_temp(b, "nobody@xmppd.test")
        assert err.value.iq["error"]["condition"] == "item-not-found"
        card = ET.fromstring(f"<vcard xmlns='{V4}'><fn><text>Alice</text></fn>"
                             "<gender><sex><text>F</text></sex></gender></vcard>")
        await vcard4_iq(a, None, "set", card)
        got = (await vcard4_iq(b, A)).xml.find(V + "vcard")
        assert got.findtext(f"{V}fn/{V}text") == "Alice" and got.find(V + "gender") is not None
        assert (await vcard_temp(b, A))["FN"] == "Alice"
        # only the account sets its own
        with pytest.raises(IqError) as err:
            await vcard4_iq(b, A, "set", card)
        assert err.value.iq["error"]["condition"] == "forbidden"
        # it is the PEP node
        node = await last_payload(b, A, NODE)
        assert node.findtext(f"{V}fn/{V}text") == "Alice"

"""User avatars (XEP-0084) and their vCard twin (XEP-0153/XEP-0398), nicknames
(XEP-0172), with slixmpp's xep_0084, xep_0054, xep_0153 and xep_0172."""
from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from .clients import TIMEOUT, Login, logged_in
from .conftest import start_server
from .peputil import PLUGINS, available, next_event, pep_connect, shares_presence

A, B = "alice@xmppd.test", "bob@xmppd.test"
META = "urn:xmpp:avatar:metadata"
DATA = "urn:xmpp:avatar:data"
NICK = "http://jabber.org/protocol/nick"
UPDATE = "{vcard-temp:x:update}x"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
AV_PLUGINS = PLUGINS + ("xep_0084", "xep_0054", "xep_0172")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs,
                           host_extra='    modules_enabled = { "disco", "pep", "vcard" }\n')
    try:
        await s.adduser(A)
        await s.adduser(B)
        yield s
    finally:
        await s.server.stop()


async def own_presence(c):
    """The next live presence of the account's other resource that reaches ``c``
    (not the delayed copy a new resource gets of its siblings' current presence)."""
    while True:
        p = await asyncio.wait_for(c.presences.get(), TIMEOUT)
        if p.xml.find("{urn:xmpp:delay}delay") is not None:
            continue
        if p["from"].bare == A and p["from"] != c.boundjid:
            return p


async def test_pep_avatar_goes_to_vcard_and_presence(srv):
    async with logged_in(srv, Login(A, connect=pep_connect, plugins=AV_PLUGINS), A + "/watcher",
                         Login(B, connect=pep_connect, plugins=AV_PLUGINS, interests=[META],
                               presence=False)) as (a, watcher, b):
        sha1 = hashlib.sha1(PNG).hexdigest()
        await a.plugin["xep_0084"].publish_avatar(PNG, timeout=10)
        await a.plugin["xep_0084"].publish_avatar_metadata(
            [{"id": sha1, "type": "image/png", "bytes": len(PNG)}], timeout=10)
        # bob learns of it when his presence reaches alice (the metadata node is presence-only,
        # so without a roster subscription he gets nothing)
        # the vCard now has the photo (XEP-0398)
        vc = await b.plugin["xep_0054"].get_vcard(A, timeout=10)
        photo = vc["vcard_temp"]["PHOTO"]
        assert photo["TYPE"] == "image/png" and photo["BINVAL"] == PNG
        # alice's presence now carries the hash (XEP-0153)
        a.send_presence(pstatus="new avatar")
        p = await own_presence(watcher)
        assert p.xml.find(UPDATE + "/{vcard-temp:x:update}photo").text == sha1
        # a client-supplied (stale) hash is replaced by the server's
        a.send_presence(pstatus="again")
        p = await own_presence(watcher)
        assert [x.find("{vcard-temp:x:update}photo").text for x in p.xml.findall(UPDATE)] == [sha1]
        # the account advertises the conversion
        info = await b.plugin["xep_0030"].get_info(A, timeout=10)
        assert "urn:xmpp:pep-vcard-conversion:0" in info["disco_info"]["features"]


async def test_vcard_photo_becomes_pep_avatar(srv):
    async with logged_in(srv, A, connect=pep_connect, plugins=AV_PLUGINS, interests=[META]) as a:
        vcard = a.plugin["xep_0054"].make_vcard()
        vcard["FN"] = "Alice"
        vcard["PHOTO"]["TYPE"] = "image/png"
        vcard["PHOTO"]["BINVAL"] = PNG
        await a.plugin["xep_0054"].publish_vcard(vcard, timeout=10)
        sha1 = hashlib.sha1(PNG).hexdigest()
        name, msg = await next_event(a)        # metadata notification to the owner
        assert msg["pubsub_event"]["items"]["node"] == META
        info = msg.xml.find(f".//{{{META}}}info")
        assert info.get("id") == sha1 and info.get("type") == "image/png" and info.get("bytes") == str(len(PNG))
        got = await a.plugin["xep_0060"].get_item(None, DATA, sha1, timeout=10)
        data = list(got["pubsub"]["items"])[0].xml.find(f"{{{DATA}}}data").text
        assert base64.b64decode(data) == PNG
        # and the vCard itself is stored as sent
        vc = await a.plugin["xep_0054"].get_vcard(A, timeout=10)
        assert vc["vcard_temp"]["FN"] == "Alice" and vc["vcard_temp"]["PHOTO"]["BINVAL"] == PNG


async def test_nick_notifications(srv):
    async with logged_in(srv, A, Login(B, interests=[NICK], presence=False), connect=pep_connect,
                         plugins=AV_PLUGINS) as (a, b):
        from .peputil import options
        await a.plugin["xep_0172"].publish_nick("Ally", options=options(access_model="open"), timeout=10)
        await shares_presence(srv, A, B)
        await available(b, to=A)
        name, msg = await next_event(b)
        assert msg["pubsub_event"]["items"]["node"] == NICK
        assert msg.xml.find(f".//{{{NICK}}}nick").text == "Ally"
        await a.plugin["xep_0172"].publish_nick("Alice", timeout=10)
        name, msg = await next_event(b)
        assert msg.xml.find(f".//{{{NICK}}}nick").text == "Alice"

"""History on join, MAM on the room (XEP-0313) with stanza ids (XEP-0359),
self-ping (XEP-0410), occupant ids (XEP-0421), message moderation (XEP-0425),
room avatars (vCard-temp), invitations (mediated and XEP-0249)."""
from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from ..clients import TIMEOUT
from .conftest import MUC, create_room, groupchat, join, next_matching, raw_iq

ROOM = f"lobby@{MUC}"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
OID = "{urn:xmpp:occupant-id:0}occupant-id"


async def say(sender, receivers, *bodies):
    ids = []
    for body in bodies:
        sender.send_message(mto=ROOM, mbody=body, mtype="groupchat")
        for r in receivers:
            m = await next_matching(r.messages, groupchat(ROOM, body))
        ids.append(m["stanza_id"]["id"])
    return ids


async def test_history_on_join(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await say(a, [a], "one", "two", "three")
    _, _, _, history = await join(b, ROOM, "Bob", maxstanzas=2)
    assert [m["body"] for m in history] == ["two", "three"]
    assert all(m["delay"]["from"] == ROOM for m in history)


async def mam_query(client, *, max_=None, after=None, before=None, queryid="q1"):
    q = ET.Element(f"{{{MAM}}}query", {"queryid": queryid})
    if max_ is not None or after or before is not None:
        s = ET.SubElement(q, f"{{{RSM}}}set")
        if max_ is not None:
            ET.SubElement(s, f"{{{RSM}}}max").text = str(max_)
        if after:
            ET.SubElement(s, f"{{{RSM}}}after").text = after
        if before is not None:
            ET.SubElement(s, f"{{{RSM}}}before").text = before or None
    while not client.all_messages.empty():
        client.all_messages.get_nowait()
    reply = await raw_iq(client, ROOM, q, "set")
    results = []
    while not client.all_messages.empty():
        m = client.all_messages.get_nowait()
        r = m.xml.find(f"{{{MAM}}}result")
        if r is not None and r.get("queryid") == queryid:
            results.append(r)
    return reply, results


def bodies(results):
    return [r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message/{jabber:client}body").text
            for r in results]


async def test_mam_on_the_room_with_paging(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    ids = await say(a, [a, b], "m1", "m2", "m3", "m4", "m5")
    reply, results = await mam_query(b)
    fin = reply.find(f"{{{MAM}}}fin")
    assert fin.get("complete") == "true"
    assert bodies(results) == ["m1", "m2", "m3", "m4", "m5"]
    # the archive ids are the room's stanza-ids
    assert [r.get("id") for r in results] == ids
    fwd = results[0].find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert fwd.get("from") == f"{ROOM}/Alice"
    # RSM: the last page, then the page before it
    reply, results = await mam_query(b, max_=2, before="")
    assert bodies(results) == ["m4", "m5"]
    assert reply.find(f"{{{MAM}}}fin").get("complete") is None
    first = reply.find(f"{{{MAM}}}fin/{{{RSM}}}set/{{{RSM}}}first").text
    reply, results = await mam_query(b, max_=2, before=first)
    assert bodies(results) == ["m2", "m3"]
    reply, results = await mam_query(b, max_=10, after=ids[2])
    assert bodies(results) == ["m4", "m5"]


async def test_message_moderation_xep0425(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    (sid,) = await say(b, [a, b], "something rude")
    req = ET.Element("{urn:xmpp:message-moderate:1}moderate", {"id": sid})
    ET.SubElement(req, "{urn:xmpp:message-retract:1}retract")
    ET.SubElement(req, "{urn:xmpp:message-moderate:1}reason").text = "spam"
    with pytest.raises(IqError) as exc:
        await raw_iq(b, ROOM, req, "set")
    assert exc.value.condition == "forbidden"
    await raw_iq(a, ROOM, req, "set")
    m = await next_matching(b.all_messages, lambda m: m.xml.find("{urn:xmpp:message-retract:1}retract") is not None)
    r = m.xml.find("{urn:xmpp:message-retract:1}retract")
    assert r.get("id") == sid
    assert r.find("{urn:xmpp:message-moderate:1}moderated").get("by") == f"{ROOM}/Alice"
    # the archive keeps a tombstone
    _, results = await mam_query(a)
    (res,) = [x for x in results if x.get("id") == sid]
    msg = res.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert msg.find("{jabber:client}body") is None
    assert msg.find("{urn:xmpp:message-retract:1}retracted") is not None


async def test_occupant_id(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob")
    pid = p.xml.find(OID).get("id")
    b.send_message(mto=ROOM, mbody="hi", mtype="groupchat")
    m = await next_matching(a.messages, groupchat(ROOM, "hi"))
    assert m.xml.find(OID).get("id") == pid
    info = await a.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
    assert "urn:xmpp:occupant-id:0" in info["disco_info"]["features"]


async def test_self_ping(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    ping = ET.Element("{urn:xmpp:ping}ping")
    reply = await raw_iq(a, f"{ROOM}/Alice", ping)
    assert reply.get("type") == "result"
    with pytest.raises(IqError) as exc:
        await raw_iq(b, f"{ROOM}/Alice", ET.Element("{urn:xmpp:ping}ping"))
    assert exc.value.condition == "not-acceptable"


async def test_room_avatar_vcard(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    png = b"\x89PNG fake image"
    vc = ET.Element("{vcard-temp}vCard")
    photo = ET.SubElement(vc, "{vcard-temp}PHOTO")
    ET.SubElement(photo, "{vcard-temp}TYPE").text = "image/png"
    ET.SubElement(photo, "{vcard-temp}BINVAL").text = base64.b64encode(png).decode()
    with pytest.raises(IqError) as exc:
        await raw_iq(b, ROOM, vc, "set")
    assert exc.value.condition == "forbidden"
    await raw_iq(a, ROOM, vc, "set")
    sha = hashlib.sha1(png).hexdigest()
    p = await next_matching(b.all_presences,
                            lambda p: p["from"] == ROOM and p.xml.find("{vcard-temp:x:update}x") is not None)
    assert p.xml.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == sha
    got = await raw_iq(b, ROOM, ET.Element("{vcard-temp}vCard"))
    assert got.findtext("{vcard-temp}vCard/{vcard-temp}PHOTO/{vcard-temp}BINVAL") == base64.b64encode(png).decode()
    info = await b.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
    assert info["disco_info"]["form"].get_fields()["muc#roominfo_avatarhash"]["value"] == sha


async def test_mediated_invitation_and_decline(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_membersonly": True})
    a.plugin["xep_0045"].invite(ROOM, "bob@xmppd.test", "come in")
    m = await next_matching(b.all_messages, lambda m: m["from"] == ROOM and m["muc"]["invite"]["from"])
    # a semi-anonymous room: the inviter by occupant JID (as Prosody)
    assert m["muc"]["invite"]["from"] == f"{ROOM}/Alice"
    assert m["muc"]["invite"]["reason"] == "come in"
    # the owner's invitation made bob a member of the members-only room
    await join(b, ROOM, "Bob")
    c = await users("carol")
    a.plugin["xep_0045"].invite(ROOM, "carol@xmppd.test")
    await next_matching(c.all_messages, lambda m: m["from"] == ROOM and m["muc"]["invite"]["from"])
    c.plugin["xep_0045"].decline(ROOM, "alice@xmppd.test", "busy")
    d = await next_matching(a.all_messages, lambda m: m["from"] == ROOM and m["muc"]["decline"]["from"])
    assert str(d["muc"]["decline"]["from"]) == "carol@xmppd.test"


async def test_direct_invitation_xep0249(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    got = []
    b.add_event_handler("groupchat_direct_invite", got.append)
    a.plugin["xep_0249"].send_invitation("bob@xmppd.test", ROOM, reason="chat?")
    m = await next_matching(b.all_messages, lambda m: m.xml.find("{jabber:x:conference}x") is not None)
    assert m.xml.find("{jabber:x:conference}x").get("jid") == ROOM
    await join(b, ROOM, "Bob")

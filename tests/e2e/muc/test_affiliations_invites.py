"""What occupants receive when the affiliation of someone absent changes (XEP-0045
§9.3-9.5, §10.6), the removal of an occupant who loses membership of a
members-only room (321), bans of whole servers, mediated invitations as they
arrive (§7.8.2, with the XEP-0249 copy) and declines."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from ..clients import TIMEOUT
from .conftest import MUC, codes, create_room, join, next_matching

ROOM = f"lobby@{MUC}"
USER = "http://jabber.org/protocol/muc#user"
CONF = "jabber:x:conference"


def listen(client) -> None:
    """Queues of every message and presence, as the ``users`` fixture sets up."""
    client.all_messages, client.all_presences = asyncio.Queue(), asyncio.Queue()
    client.register_handler(Callback("all messages", MatchXPath("{jabber:client}message"),
                                     client.all_messages.put_nowait))
    client.register_handler(Callback("all presences", MatchXPath("{jabber:client}presence"),
                                     client.all_presences.put_nowait))


def from_room(m) -> bool:
    return m["from"] == ROOM and m["type"] == "normal"


async def until_marker(client, marker: str) -> list:
    """Everything ``client`` got before the groupchat message ``marker``."""
    got = []

    def pred(m):
        if m["type"] == "groupchat" and m["body"] == marker:
            return True
        got.append(m)
        return False
    await next_matching(client.all_messages, pred)
    return got


async def mark(sender, marker: str, *receivers) -> list[list]:
    sender.send_message(mto=ROOM, mbody=marker, mtype="groupchat")
    return [await until_marker(r, marker) for r in receivers]


def announced(m) -> tuple:
    """(affiliation, jid, role, reason, status codes) of a room's affiliation message."""
    item = m.xml.find(f"{{{USER}}}x/{{{USER}}}item")
    return (item.get("affiliation"), item.get("jid"), item.get("role"),
            item.findtext(f"{{{USER}}}reason"), codes(m))


def affiliation_messages(got: list) -> list:
    return [m for m in got if from_room(m) and m.xml.find(f"{{{USER}}}x/{{{USER}}}item") is not None]


async def test_absent_users_affiliation_is_told_to_moderators_of_a_semi_anonymous_room(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    xep = a.plugin["xep_0045"]
    await xep.set_role(ROOM, "Carol", "moderator", timeout=TIMEOUT)   # alice is an owner
    await xep.set_affiliation(ROOM, "member", jid="dave@xmppd.test", reason="welcome",
                              timeout=TIMEOUT)
    await xep.set_affiliation(ROOM, "admin", jid="erin@xmppd.test", timeout=TIMEOUT)
    await xep.set_affiliation(ROOM, "owner", jid="frank@xmppd.test", timeout=TIMEOUT)
    await xep.set_affiliation(ROOM, "outcast", jid="mallory@xmppd.test", reason="spam",
                              timeout=TIMEOUT)
    await xep.set_affiliation(ROOM, "none", jid="dave@xmppd.test", timeout=TIMEOUT)
    got_a, got_b, got_c = await mark(a, "done", a, b, c)
    expected = [
        ("member", "dave@xmppd.test", None, "welcome", set()),
        ("admin", "erin@xmppd.test", None, None, set()),
        ("owner", "frank@xmppd.test", None, None, set()),
        ("outcast", "mallory@xmppd.test", None, "spam", {301}),
        ("none", "dave@xmppd.test", None, None, set()),
    ]
    # the moderators (an owner, and a participant made moderator) are told, with the JID
    assert [announced(m) for m in affiliation_messages(got_a)] == expected
    assert [announced(m) for m in affiliation_messages(got_c)] == expected
    # a message from the room, not a groupchat one (nothing for the history or archive)
    assert all(m.xml.get("type") is None for m in affiliation_messages(got_a))
    # bob, who may not see real JIDs, is told nothing
    assert affiliation_messages(got_b) == []


async def test_absent_users_affiliation_is_told_to_everyone_in_a_non_anonymous_room(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_whois": "anyone"})
    await join(b, ROOM, "Bob")
    await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="dave@xmppd.test",
                                               timeout=TIMEOUT)
    (got_b,) = await mark(a, "done", b)
    assert [announced(m) for m in affiliation_messages(got_b)] == [
        ("member", "dave@xmppd.test", None, None, set())]
    # a present user's change is their presence, not such a message
    await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="bob@xmppd.test",
                                               timeout=TIMEOUT)
    p = await next_matching(b.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob"
                            and p["muc"]["affiliation"] == "member")
    assert 110 in codes(p)
    (got_b,) = await mark(a, "done2", b)
    assert affiliation_messages(got_b) == []


async def test_members_only_room_removes_who_loses_membership(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_membersonly": True})
    xep = a.plugin["xep_0045"]
    await xep.set_affiliation(ROOM, "member", jid="bob@xmppd.test", timeout=TIMEOUT)
    await xep.set_affiliation(ROOM, "member", jid="carol@xmppd.test", timeout=TIMEOUT)
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    await xep.set_affiliation(ROOM, "none", jid="carol@xmppd.test", reason="bye",
                              timeout=TIMEOUT)

    def carol_out(p):
        return p["from"] == f"{ROOM}/Carol" and p["type"] == "unavailable"
    gone = {}
    for name, client in (("alice", a), ("bob", b), ("carol", c)):
        p = await next_matching(client.muc_presences, carol_out)
        item = p.xml.find(f"{{{USER}}}x/{{{USER}}}item")
        gone[name] = (codes(p), item.get("affiliation"), item.get("role"), item.get("jid"),
                      item.find(f"{{{USER}}}actor").get("nick"), item.findtext(f"{{{USER}}}reason"))
    full = str(c.boundjid)
    assert gone == {
        "alice": ({321}, "none", "none", full, "Alice", "bye"),    # a moderator sees the JID
        "bob": ({321}, "none", "none", None, "Alice", "bye"),
        "carol": ({321, 110}, "none", "none", full, "Alice", "bye"),
    }
    with pytest.raises(PresenceError) as e:
        await join(c, ROOM, "Carol")
    assert e.value.condition == "registration-required"
    # an absent member who loses membership: the moderators are told, with 321
    await xep.set_affiliation(ROOM, "member", jid="dave@xmppd.test", timeout=TIMEOUT)
    await xep.set_affiliation(ROOM, "none", jid="dave@xmppd.test", timeout=TIMEOUT)
    (got_a,) = await mark(a, "done", a)
    # (before it: bob's and carol's membership, given before they came)
    assert [announced(m) for m in affiliation_messages(got_a)] == [
        ("member", "bob@xmppd.test", None, None, set()),
        ("member", "carol@xmppd.test", None, None, set()),
        ("member", "dave@xmppd.test", None, None, set()),
        ("none", "dave@xmppd.test", None, None, {321}),
    ]


def invitation(to: str, reason: str | None = None, id_: str = "inv-1") -> ET.Element:
    m = ET.Element("{jabber:client}message", {"to": ROOM, "id": id_})
    inv = ET.SubElement(ET.SubElement(m, f"{{{USER}}}x"), f"{{{USER}}}invite", {"to": to})
    if reason:
        ET.SubElement(inv, f"{{{USER}}}reason").text = reason
    return m


async def send_raw(client, el: ET.Element) -> None:
    m = client.make_message(mto=ROOM)
    m.xml = el
    m.send()


def invited(m) -> dict:
    x = m.xml.find(f"{{{USER}}}x")
    conf = m.xml.find(f"{{{CONF}}}x")
    return {
        "id": m.xml.get("id"),
        "from": x.find(f"{{{USER}}}invite").get("from"),
        "reason": x.findtext(f"{{{USER}}}invite/{{{USER}}}reason"),
        "password": x.findtext(f"{{{USER}}}password"),
        "body": m["body"],
        "conference": None if conf is None else dict(conf.attrib),
    }


def an_invitation(m) -> bool:
    return m["from"] == ROOM and m.xml.find(f"{{{USER}}}x/{{{USER}}}invite") is not None


async def test_mediated_invitation_in_a_semi_anonymous_password_room(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_passwordprotectedroom": True,
                                           "muc#roomconfig_roomsecret": "s3cret"})
    events = []
    b.add_event_handler("groupchat_invite", events.append)
    await send_raw(a, invitation("bob@xmppd.test", "come in", "inv-42"))
    m = await next_matching(b.all_messages, an_invitation)
    # bob may not see real JIDs there: the inviter is named by occupant JID
    assert invited(m) == {
        "id": "inv-42",
        "from": f"{ROOM}/Alice",
        "reason": "come in",
        "password": "s3cret",
        "body": f"{ROOM}/Alice invited you to the room {ROOM} (come in)",
        "conference": {"jid": ROOM, "reason": "come in", "password": "s3cret"},
    }
    assert m.xml.find(f"{{{CONF}}}x").text == "come in"
    # slixmpp's MUC plugin sees it as an invitation, and bob gets in with the password
    assert [str(e["from"]) for e in events] == [ROOM]
    await join(b, ROOM, "Bob", password=invited(m)["password"])


async def test_mediated_invitation_names_the_inviter_where_jids_are_public(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_whois": "anyone",
                                           "muc#roomconfig_allowinvites": True})
    await join(b, ROOM, "Bob")
    await send_raw(b, invitation("carol@xmppd.test"))
    m = await next_matching(c.all_messages, an_invitation)
    assert invited(m) == {
        "id": "inv-1", "from": str(b.boundjid), "reason": None, "password": None,
        "body": f"{b.boundjid} invited you to the room {ROOM}",
        "conference": {"jid": ROOM},
    }


async def test_mediated_invitation_of_a_future_moderator_names_the_inviter(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await a.plugin["xep_0045"].set_affiliation(ROOM, "admin", jid="bob@xmppd.test",
                                               timeout=TIMEOUT)
    await send_raw(a, invitation("bob@xmppd.test"))
    m = await next_matching(b.all_messages, an_invitation)
    # an admin will see real JIDs in the room anyway
    assert invited(m)["from"] == str(a.boundjid)


async def test_members_only_invitation_makes_a_member_and_tells_the_moderators(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_membersonly": True})
    await send_raw(a, invitation("bob@xmppd.test", "join us"))
    m = await next_matching(b.all_messages, an_invitation)
    assert invited(m)["from"] == f"{ROOM}/Alice"
    (got_a,) = await mark(a, "done", a)
    assert [announced(m) for m in affiliation_messages(got_a)] == [
        ("member", "bob@xmppd.test", None, f"Invited by {ROOM}/Alice", set())]
    pres, *_ = await join(b, ROOM, "Bob")
    assert pres["muc"]["affiliation"] == "member"
    # a mere member may not invite to a members-only room (§7.8.2): forbidden
    await send_raw(b, invitation("carol@xmppd.test"))
    err = await next_matching(b.all_messages, lambda m: m["type"] == "error")
    assert err["error"]["condition"] == "forbidden" and err["id"] == "inv-1"
    (got_c,) = await mark(a, "done2", a)
    assert affiliation_messages(got_c) == []


async def test_decline_goes_back_with_a_body(users):
    a = await users("alice")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    m = ET.Element("{jabber:client}message", {"to": ROOM, "id": "dec-1"})
    dec = ET.SubElement(ET.SubElement(m, f"{{{USER}}}x"), f"{{{USER}}}decline",
                        {"to": str(a.boundjid.bare)})
    ET.SubElement(dec, f"{{{USER}}}reason").text = "busy"
    await send_raw(c, m)
    d = await next_matching(a.all_messages, lambda m: m["from"] == ROOM and m["muc"]["decline"]["from"])
    assert (str(d["muc"]["decline"]["from"]), d["muc"]["decline"]["reason"], d["id"], d["body"]) == (
        "carol@xmppd.test", "busy", "dec-1", f"carol@xmppd.test declined your invite to the room {ROOM} (busy)")


async def test_banning_a_server_bans_its_users_without_affiliation(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    xep = a.plugin["xep_0045"]
    await xep.set_affiliation(ROOM, "member", jid="carol@xmppd.test", timeout=TIMEOUT)
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    await xep.set_affiliation(ROOM, "outcast", jid="xmppd.test", reason="raid", timeout=TIMEOUT)
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob"
                            and p["type"] == "unavailable")
    item = p.xml.find(f"{{{USER}}}x/{{{USER}}}item")
    assert (codes(p), item.get("affiliation"), item.findtext(f"{{{USER}}}reason")) == (
        {301}, "outcast", "raid")
    # alice (owner) and carol (member) have affiliations of their own: they stay
    assert set(a.plugin["xep_0045"].get_roster(ROOM)) == {"Alice", "Carol"}
    with pytest.raises(PresenceError) as e:
        await join(b, ROOM, "Bob")
    assert e.value.condition == "forbidden"
    outcasts = await xep.get_affiliation_list(ROOM, "outcast", timeout=TIMEOUT)
    assert [str(j) for j in outcasts] == ["xmppd.test"]

async def test_a_new_moderator_of_a_semi_anonymous_room_gets_the_real_jids(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")

    def jid_in(p):
        return p.xml.find(f"{{{USER}}}x/{{{USER}}}item").get("jid")
    for q in (b.all_presences, c.all_presences):   # what the joins brought
        while not q.empty():
            q.get_nowait()
    # bob made an admin (so a moderator) sees carol's JID now
    await a.plugin["xep_0045"].set_affiliation(ROOM, "admin", jid="bob@xmppd.test", timeout=TIMEOUT)
    p = await next_matching(b.all_presences, lambda p: p["from"] == f"{ROOM}/Carol")
    assert jid_in(p) == str(c.boundjid)
    # carol given the moderator role sees bob's (after bob's own new presence)
    await next_matching(c.all_presences, lambda p: p["from"] == f"{ROOM}/Bob")
    await a.plugin["xep_0045"].set_role(ROOM, "Carol", "moderator", timeout=TIMEOUT)
    p = await next_matching(c.all_presences, lambda p: p["from"] == f"{ROOM}/Bob")
    assert jid_in(p) == str(b.boundjid)
    # and no longer once she is a participant again
    await a.plugin["xep_0045"].set_role(ROOM, "Carol", "participant", timeout=TIMEOUT)
    p = await next_matching(c.all_presences, lambda p: p["from"] == f"{ROOM}/Bob")
    assert jid_in(p) is None


async def test_decline_to_the_inviters_occupant_jid(users):
    a = await users("alice")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await send_raw(a, invitation("carol@xmppd.test"))
    inv = await next_matching(c.all_messages, an_invitation)
    # a semi-anonymous room: carol only knows alice as room/Alice, and declines to that
    m = ET.Element("{jabber:client}message", {"to": ROOM, "id": "dec-2"})
    ET.SubElement(ET.SubElement(m, f"{{{USER}}}x"), f"{{{USER}}}decline",
                  {"to": invited(inv)["from"]})
    await send_raw(c, m)
    d = await next_matching(a.all_messages, lambda m: m["from"] == ROOM and m["muc"]["decline"]["from"])
    assert (str(d["to"]), str(d["muc"]["decline"]["from"]), d["id"]) == (
        str(a.boundjid), "carol@xmppd.test", "dec-2")

"""What occupants receive when the affiliation of someone absent changes (XEP-0045
§9.3-9.5, §10.6), the removal of an occupant who loses membership of a
members-only room (321), mediated invitations as they arrive (§7.8.2, with the
XEP-0249 copy), and Prosody's ``muc_mam`` module name."""
from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from ..clients import TIMEOUT, logged_in
from .conftest import (MUC, PLUGINS, codes, create_room, groupchat, join, next_matching, raw_iq,
                       start_muc)
from .test_companions import bodies, mam_query

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


async def test_muc_mam_module_name_loads_the_room_archive(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, 'modules_enabled = { "muc_mam" }\n')
    try:
        assert "muc" in srv.server.hosts[MUC].modules
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            listen(a)
            await create_room(a, ROOM, "Alice")
            a.send_message(mto=ROOM, mbody="kept", mtype="groupchat")
            await next_matching(a.all_messages, groupchat(ROOM, "kept"))
            _, results = await mam_query(a)
            assert bodies(results) == ["kept"]
    finally:
        await srv.server.stop()


async def test_room_archive_expiry_and_default_language(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, 'muc_log_expires_after = "1d"\n'
                                           'muc_room_default_language = "fr"\n')
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            listen(a)
            # the room gets muc_room_default_language, whatever the creator's
            await create_room(a, ROOM, "Alice")
            info = await a.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
            assert info["disco_info"]["form"].get_fields()["muc#roominfo_lang"]["value"] == "fr"
            a.send_message(mto=ROOM, mbody="old news", mtype="groupchat")
            await next_matching(a.all_messages, groupchat(ROOM, "old news"))
            archive = srv.muc.archive
            # a day is not over yet: kept
            assert await archive.cleanup(now=time.time() + 3600) == 0
            _, results = await mam_query(a)
            assert bodies(results) == ["old news"]
            # two days later it has expired
            assert await archive.cleanup(now=time.time() + 2 * 86400) == 1
            _, results = await mam_query(a)
            assert bodies(results) == []
    finally:
        await srv.server.stop()


async def test_new_room_takes_its_creators_language_by_default(users, muc_server):
    a = await users("alice")
    a.send_raw(f"<presence to='{ROOM}/Alice' xml:lang='de'>"
               "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await next_matching(a.all_presences, lambda p: p["from"] == f"{ROOM}/Alice")
    await a.plugin["xep_0045"].set_room_config(ROOM, a.plugin["xep_0004"].make_form("submit"),
                                               timeout=TIMEOUT)
    info = await a.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
    assert info["disco_info"]["form"].get_fields()["muc#roominfo_lang"]["value"] == "de"


async def test_destroyed_persistent_room_leaves_a_tombstone(users, muc_server):
    a = await users("alice")
    b = await users("bob")
    root = await users("admin")   # admins = { "admin@xmppd.test" } in the test config
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_persistentroom": True})
    await a.plugin["xep_0045"].destroy(ROOM, reason="moving", altroom=f"new@{MUC}", timeout=TIMEOUT)
    await muc_server.muc.drained()
    # a join, and a message, get "gone" with the reason and the new address
    with pytest.raises(PresenceError) as e:
        await join(b, ROOM, "Bob")
    err = e.value.presence.xml.find("{jabber:client}error")
    assert e.value.condition == "gone" and e.value.text == "moving"
    assert err.get("type") == "cancel"
    assert err.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}gone") == f"xmpp:new@{MUC}?join"
    b.send_message(mto=ROOM, mbody="anyone?", mtype="groupchat")
    m = await next_matching(b.all_messages, lambda m: m["type"] == "error")
    assert m["error"]["condition"] == "gone"
    # it is kept (31 days by default)
    tomb = await muc_server.muc.tombstones.store.get("lobby")
    assert tomb["until"] > time.time() + 30 * 86400
    # a server admin may take the name back before
    pres, *_ = await join(root, ROOM, "Root")
    assert 201 in codes(pres)


async def test_tombstones_expire_and_can_be_off(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, "muc_tombstone_expiry = 1\n"
                                           "muc_room_default_persistent = true\n")
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            listen(a)
            await create_room(a, ROOM, "Alice")
            await a.plugin["xep_0045"].destroy(ROOM, timeout=TIMEOUT)
            await srv.muc.drained()
            tomb = await srv.muc.tombstones.store.get("lobby")
            # (the test does not wait a second: the tombstone is made to have expired)
            tomb["until"] -= 1
            await srv.muc.tombstones.store.set("lobby", tomb)
            pres, *_ = await join(a, ROOM, "Alice")
            assert 201 in codes(pres)
            assert await srv.muc.tombstones.store.get("lobby") is None
    finally:
        await srv.server.stop()
    (tmp_path / "off").mkdir()
    srv = await start_muc(tmp_path / "off", certs, "muc_tombstones = false\n"
                                                   "muc_room_default_persistent = true\n")
    try:
        assert srv.muc.tombstones is None
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            await create_room(a, ROOM, "Alice")
            await a.plugin["xep_0045"].destroy(ROOM, timeout=TIMEOUT)
            await srv.muc.drained()
            pres, *_ = await join(a, ROOM, "Alice")
            assert 201 in codes(pres)
    finally:
        await srv.server.stop()


async def test_only_admins_make_rooms_persistent_or_public_when_restricted(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, "muc_room_allow_persistent = false\n"
                                           "muc_room_allow_public = false\n"
                                           "muc_room_default_public = false\n")
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("admin@xmppd.test")   # admins = { "admin@xmppd.test" } in the test config
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a, \
                logged_in(srv, "admin@xmppd.test", plugins=PLUGINS) as root:
            _, form = await create_room(a, ROOM, "Alice", **{"muc#roomconfig_persistentroom": True,
                                                             "muc#roomconfig_publicroom": True,
                                                             "muc#roomconfig_roomname": "Lobby"})
            fields = form.get_fields()
            assert "muc#roomconfig_persistentroom" not in fields
            assert "muc#roomconfig_publicroom" not in fields
            assert "muc#roomconfig_roomname" in fields
            cfg = srv.muc.rooms["lobby"].config
            # the rest of the form was taken, those two fields ignored
            assert (cfg.name, cfg.persistent, cfg.public) == ("Lobby", False, False)
            room2 = f"ops@{MUC}"
            _, form = await create_room(root, room2, "Root", **{"muc#roomconfig_persistentroom": True,
                                                                "muc#roomconfig_publicroom": True})
            assert "muc#roomconfig_persistentroom" in form.get_fields()
            cfg = srv.muc.rooms["ops"].config
            assert (cfg.persistent, cfg.public) == (True, True)
    finally:
        await srv.server.stop()


async def test_enforce_registered_nickname(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, "enforce_registered_nickname = true\n")
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a, \
                logged_in(srv, "bob@xmppd.test", plugins=PLUGINS) as b:
            listen(a)
            listen(b)
            await create_room(a, ROOM, "Alice")
            reg = b.make_iq_set(ito=ROOM)
            reg.append(ET.fromstring(
                "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
                "<field var='muc#register_roomnick'><value>Bobby</value></field></x></query>"))
            await reg.send(timeout=TIMEOUT)
            # bob asks for "Bob": he is in as "Bobby", told so with 210 (and 110)
            b.send_raw(f"<presence to='{ROOM}/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
            mine = await next_matching(b.all_presences, lambda p: 110 in codes(p))
            assert str(mine["from"]) == f"{ROOM}/Bobby" and 210 in codes(mine)
            seen = await next_matching(a.all_presences, lambda p: p["from"].bare == ROOM
                                       and p["from"].resource != "Alice")
            assert seen["from"].resource == "Bobby"
            # and may not take another nickname
            b.send_raw(f"<presence to='{ROOM}/Robert'/>")
            err = await next_matching(b.all_presences, lambda p: p["type"] == "error")
            assert err["error"]["condition"] == "not-acceptable"
            assert set(srv.muc.rooms["lobby"].occupants) == {"Alice", "Bobby"}
    finally:
        await srv.server.stop()


async def test_muc_max_rooms(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, "muc_max_rooms = 1\n")
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            await create_room(a, ROOM, "Alice")
            with pytest.raises(PresenceError) as e:
                await join(a, f"other@{MUC}", "Alice")
            assert e.value.condition == "resource-constraint"
            assert list(srv.muc.rooms) == ["lobby"]
            # once it is gone, another room may be created
            await a.plugin["xep_0045"].destroy(ROOM, timeout=TIMEOUT)
            await srv.muc.drained()
            pres, *_ = await join(a, f"other@{MUC}", "Alice")
            assert 201 in codes(pres)
    finally:
        await srv.server.stop()


async def test_muc_vcard_off(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, "muc_vcard = false\n")
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            await create_room(a, ROOM, "Alice")
            with pytest.raises(IqError) as e:
                await raw_iq(a, ROOM, ET.Element("{vcard-temp}vCard"))
            assert e.value.condition == "service-unavailable"
            info = await a.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
            assert "vcard-temp" not in info["disco_info"]["features"]
    finally:
        await srv.server.stop()


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


async def test_muc_occupant_id_off(tmp_path, certs):
    OID = "{urn:xmpp:occupant-id:0}occupant-id"
    srv = await start_muc(tmp_path, certs, "muc_occupant_id = false\n")
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a, \
                logged_in(srv, "bob@xmppd.test", plugins=PLUGINS) as b:
            listen(a)
            await create_room(a, ROOM, "Alice")
            await join(b, ROOM, "Bob")
            p = await next_matching(a.all_presences, lambda p: p["from"] == f"{ROOM}/Bob")
            assert p.xml.find(OID) is None
            # an id a client made up is still removed
            m = b.make_message(mto=ROOM, mbody="hi", mtype="groupchat")
            m.xml.append(ET.Element(OID, {"id": "forged"}))
            m.send()
            got = await next_matching(a.all_messages, groupchat(ROOM, "hi"))
            assert got.xml.find(OID) is None
            b.send_message(mto=f"{ROOM}/Alice", mbody="psst", mtype="chat")
            pm = await next_matching(a.all_messages, lambda m: m["body"] == "psst")
            assert pm.xml.find(OID) is None
            info = await a.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
            assert "urn:xmpp:occupant-id:0" not in info["disco_info"]["features"]
    finally:
        await srv.server.stop()


async def test_prosodys_allow_pm_values(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, 'muc_room_default_allow_pm = "moderator"\n')
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            _, form = await create_room(a, ROOM, "Alice")
            assert form.get_fields()["muc#roomconfig_allowpm"]["value"] == "moderators"
    finally:
        await srv.server.stop()


async def test_prosodys_allow_member_invites(tmp_path, certs):
    srv = await start_muc(tmp_path, certs, "muc_room_default_allow_member_invites = true\n"
                                           "muc_room_default_members_only = true\n")
    try:
        for name in ("alice", "bob", "carol"):
            await srv.adduser(f"{name}@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a, \
                logged_in(srv, "bob@xmppd.test", plugins=PLUGINS) as b, \
                logged_in(srv, "carol@xmppd.test", plugins=PLUGINS) as c:
            listen(c)
            await create_room(a, ROOM, "Alice")
            await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="bob@xmppd.test",
                                                       timeout=TIMEOUT)
            await join(b, ROOM, "Bob")
            # a member invites to the members-only room: the invitee becomes a member
            await send_raw(b, invitation("carol@xmppd.test"))
            m = await next_matching(c.all_messages, an_invitation)
            assert invited(m)["from"] == f"{ROOM}/Bob"
            pres, *_ = await join(c, ROOM, "Carol")
            assert pres["muc"]["affiliation"] == "member"
    finally:
        await srv.server.stop()

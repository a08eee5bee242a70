"""Kick, ban, voice, affiliation lists and their effects, destruction, server admins."""
from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError, PresenceError

from ..clients import TIMEOUT
from .conftest import MUC, codes, create_room, join, next_matching

ROOM = f"lobby@{MUC}"


def unavailable_of(nick):
    return lambda p: p["from"] == f"{ROOM}/{nick}" and p["type"] == "unavailable"


async def test_kick(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    # a participant may not kick
    with pytest.raises(IqError) as exc:
        await c.plugin["xep_0045"].set_role(ROOM, "Bob", "none", timeout=TIMEOUT)
    assert exc.value.condition == "forbidden"
    await a.plugin["xep_0045"].set_role(ROOM, "Bob", "none", reason="flooding", timeout=TIMEOUT)
    p = await next_matching(b.muc_presences, unavailable_of("Bob"))
    assert {110, 307} <= codes(p)
    assert p["muc"]["item"]["reason"] == "flooding"
    p = await next_matching(c.muc_presences, unavailable_of("Bob"))
    assert 307 in codes(p) and 110 not in codes(p)
    # kicked, not banned: bob may come back
    await join(b, ROOM, "Bob")


async def test_ban_and_outcast_list(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await a.plugin["xep_0045"].set_affiliation(ROOM, "outcast", jid="bob@xmppd.test", reason="troll",
                                               timeout=TIMEOUT)
    p = await next_matching(b.muc_presences, unavailable_of("Bob"))
    assert {110, 301} <= codes(p) and p["muc"]["affiliation"] == "outcast"
    with pytest.raises(PresenceError) as exc:
        await join(b, ROOM, "Bob")
    assert exc.value.condition == "forbidden"
    outcasts = await a.plugin["xep_0045"].get_affiliation_list(ROOM, "outcast", timeout=TIMEOUT)
    assert [str(j) for j in outcasts] == ["bob@xmppd.test"]
    # lifting the ban lets him in
    await a.plugin["xep_0045"].set_affiliation(ROOM, "none", jid="bob@xmppd.test", timeout=TIMEOUT)
    await join(b, ROOM, "Bob")


async def test_member_admin_owner_lists_and_roles(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    # admin: bob becomes a moderator, everyone sees it
    await a.plugin["xep_0045"].set_affiliation(ROOM, "admin", jid="bob@xmppd.test", timeout=TIMEOUT)
    p = await next_matching(c.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["muc"]["affiliation"] == "admin")
    assert p["muc"]["role"] == "moderator"
    # an admin may make members and ban, but not make admins
    await b.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="carol@xmppd.test", timeout=TIMEOUT)
    with pytest.raises(IqError) as exc:
        await b.plugin["xep_0045"].set_affiliation(ROOM, "admin", jid="carol@xmppd.test", timeout=TIMEOUT)
    assert exc.value.condition == "not-allowed"
    members = await b.plugin["xep_0045"].get_affiliation_list(ROOM, "member", timeout=TIMEOUT)
    assert [str(j) for j in members] == ["carol@xmppd.test"]
    admins = await a.plugin["xep_0045"].get_affiliation_list(ROOM, "admin", timeout=TIMEOUT)
    assert [str(j) for j in admins] == ["bob@xmppd.test"]
    owners = await a.plugin["xep_0045"].get_affiliation_list(ROOM, "owner", timeout=TIMEOUT)
    assert [str(j) for j in owners] == ["alice@xmppd.test"]
    mods = await a.plugin["xep_0045"].get_roles_list(ROOM, "moderator", timeout=TIMEOUT)
    assert sorted(mods) == ["Alice", "Bob"]
    # an admin cannot kick the owner
    with pytest.raises(IqError) as exc:
        await b.plugin["xep_0045"].set_role(ROOM, "Alice", "none", timeout=TIMEOUT)
    assert exc.value.condition == "not-allowed"
    # affiliation of someone absent: dave is a member before ever coming
    await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="dave@xmppd.test", timeout=TIMEOUT)
    d = await users("dave")
    pres, *_ = await join(d, ROOM, "Dave")
    assert pres["muc"]["affiliation"] == "member"


async def test_members_only_switch_removes_non_members(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="carol@xmppd.test", timeout=TIMEOUT)
    form = a.plugin["xep_0004"].make_form("submit")
    form.add_field(var="muc#roomconfig_membersonly", value=True)
    await a.plugin["xep_0045"].set_room_config(ROOM, form, timeout=TIMEOUT)
    p = await next_matching(b.muc_presences, unavailable_of("Bob"))
    assert {110, 322} <= codes(p)
    # carol's membership goes: 321
    await a.plugin["xep_0045"].set_affiliation(ROOM, "none", jid="carol@xmppd.test", timeout=TIMEOUT)
    p = await next_matching(c.muc_presences, unavailable_of("Carol"))
    assert {110, 321} <= codes(p)


async def test_destroy_with_alternate_venue(users, muc_server):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    with pytest.raises(IqError) as exc:
        await b.plugin["xep_0045"].destroy(ROOM, timeout=TIMEOUT)
    assert exc.value.condition == "forbidden"
    await a.plugin["xep_0045"].destroy(ROOM, reason="moving", altroom=f"new@{MUC}", timeout=TIMEOUT)
    p = await next_matching(b.muc_presences, unavailable_of("Bob"))
    d = p.xml.find("{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}destroy")
    assert d is not None and d.get("jid") == f"new@{MUC}"
    assert d.findtext("{http://jabber.org/protocol/muc#user}reason") == "moving"
    await muc_server.muc.drained()
    assert "lobby" not in muc_server.muc.rooms


async def test_server_admin_owns_every_room(users):
    a = await users("alice")
    root = await users("admin")   # admins = { "admin@xmppd.test" } in the test config
    await create_room(a, ROOM, "Alice")
    pres, *_ = await join(root, ROOM, "Root")
    assert pres["muc"]["affiliation"] == "owner" and pres["muc"]["role"] == "moderator"
    form = await root.plugin["xep_0045"].get_room_config(ROOM, timeout=TIMEOUT)
    assert "muc#roomconfig_membersonly" in form.get_fields()
    # and cannot be banned
    with pytest.raises(IqError):
        await a.plugin["xep_0045"].set_affiliation(ROOM, "outcast", jid="admin@xmppd.test", timeout=TIMEOUT)


async def test_voice_request_with_slixmpp(users):
    """A visitor of a moderated room asks for voice (slixmpp's request_voice); the
    owner gets the form and approves it; the visitor can then speak."""
    from .conftest import groupchat
    room = f"quiet@{MUC}"
    a = await users("alice")
    b = await users("bob")
    await create_room(a, room, "Alice", **{"muc#roomconfig_moderatedroom": True})
    pres, _, _, _ = await join(b, room, "Bob")
    assert pres["muc"]["role"] == "visitor"
    b.plugin["xep_0045"].request_voice(room, "participant")
    req = await next_matching(a.all_messages, lambda m: m.xml.find("{jabber:x:data}x") is not None)
    form = req["form"]
    assert form["type"] == "form" and req["from"] == room
    values = form.get_values()
    assert values["muc#roomnick"] == "Bob" and values["muc#jid"] == b.boundjid
    answer = a.make_message(mto=room)
    reply = answer["form"]
    reply["type"] = "submit"
    for var, value in (("FORM_TYPE", "http://jabber.org/protocol/muc#request"),
                       ("muc#role", "participant"), ("muc#jid", str(b.boundjid)),
                       ("muc#roomnick", "Bob"), ("muc#request_allow", True)):
        reply.add_field(var=var, value=value)
    answer.send()
    p = await next_matching(b.muc_presences, lambda p: p["muc"]["role"] == "participant")
    assert p["from"] == f"{room}/Bob"
    b.send_message(mto=room, mbody="thanks", mtype="groupchat")
    await next_matching(a.messages, groupchat(room, "thanks"))


async def test_register_a_nickname_with_the_room(users, muc_server):
    """jabber:iq:register on the room (XEP-0045 §7.10): the nick is reserved, the user
    a member, and disco#info on x-roomuser-item tells it back (§7.12)."""
    import xml.etree.ElementTree as ET
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")

    async def iq(client, itype, payload):
        req = client.make_iq_get(ito=ROOM) if itype == "get" else client.make_iq_set(ito=ROOM)
        req.append(ET.fromstring(payload))
        return await req.send(timeout=TIMEOUT)

    res = await iq(b, "get", "<query xmlns='jabber:iq:register'/>")
    assert res.xml.find(".//{jabber:x:data}field[@var='muc#register_roomnick']") is not None
    await iq(b, "set", "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                       "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
                       "<field var='muc#register_roomnick'><value>Bobby</value></field></x></query>")
    info = await b.plugin["xep_0030"].get_info(jid=ROOM, node="x-roomuser-item", timeout=TIMEOUT)
    assert ("conference", "text", None, "Bobby") in info["disco_info"]["identities"]
    members = await a.plugin["xep_0045"].get_affiliation_list(ROOM, "member", timeout=TIMEOUT)
    assert "bob@xmppd.test" in [str(j) for j in members]
    with pytest.raises(PresenceError) as exc:      # reserved: alice cannot take it
        await a.plugin["xep_0045"].join_muc_wait(ROOM, "Bobby", timeout=TIMEOUT)
    assert exc.value.condition in ("conflict", "not-acceptable")
    pres, _, _, _ = await join(b, ROOM, "Bobby")
    assert pres["muc"]["affiliation"] == "member"
    room = muc_server.muc.rooms["lobby"]
    assert room.nicks == {"bob@xmppd.test": "Bobby"}

"""Room configuration (muc#roomconfig), room and service discovery, creation rules."""
from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError, PresenceError

from ..clients import TIMEOUT
from .conftest import MUC, codes, create_room, groupchat, join, next_matching, start_muc

ROOM = f"lobby@{MUC}"
HIDDEN = f"secret@{MUC}"


async def test_room_disco_and_public_listing(users):
    a = await users("alice")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_roomname": "The Lobby",
                                          "muc#roomconfig_persistentroom": True})
    await create_room(a, HIDDEN, "Alice", **{"muc#roomconfig_publicroom": False})
    items = await a.plugin["xep_0030"].get_items(jid=MUC, timeout=TIMEOUT)
    listed = {(str(i[0]), i[2]) for i in items["disco_items"]["items"]}
    assert (ROOM, "The Lobby") in listed
    assert all(j != HIDDEN for j, _ in listed)
    info = await a.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
    feats = set(info["disco_info"]["features"])
    assert {"http://jabber.org/protocol/muc", "muc_persistent", "muc_public", "muc_open",
            "muc_semianonymous", "muc_unmoderated", "muc_unsecured"} <= feats
    assert ("conference", "text", None, "The Lobby") in info["disco_info"]["identities"]
    form = info["disco_info"]["form"]
    fields = form.get_fields()
    assert "http://jabber.org/protocol/muc#roominfo" in str(fields["FORM_TYPE"]["value"])
    assert fields["muc#roominfo_occupants"]["value"] == "1"
    hidden = await a.plugin["xep_0030"].get_info(jid=HIDDEN, timeout=TIMEOUT)
    assert "muc_hidden" in hidden["disco_info"]["features"]


async def test_config_change_notifies_with_status_codes(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    new = a.plugin["xep_0004"].make_form("submit")
    new.add_field(var="muc#roomconfig_whois", value="anyone")
    await a.plugin["xep_0045"].set_room_config(ROOM, new, timeout=TIMEOUT)
    m = await next_matching(b.all_messages, lambda m: m["from"] == ROOM and m["muc"]["status_codes"])
    assert set(m["muc"]["status_codes"]) == {104, 172}
    new = a.plugin["xep_0004"].make_form("submit")
    new.add_field(var="muc#roomconfig_enablelogging", value=False)
    await a.plugin["xep_0045"].set_room_config(ROOM, new, timeout=TIMEOUT)
    m = await next_matching(b.all_messages, lambda m: m["from"] == ROOM and m["muc"]["status_codes"])
    assert set(m["muc"]["status_codes"]) == {104, 171}
    # bob is not an owner
    with pytest.raises(IqError) as exc:
        await b.plugin["xep_0045"].get_room_config(ROOM, timeout=TIMEOUT)
    assert exc.value.condition == "forbidden"


async def test_password_protected_room(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_passwordprotectedroom": True,
                                          "muc#roomconfig_roomsecret": "falcot"})
    with pytest.raises(PresenceError) as exc:
        await join(b, ROOM, "Bob")
    assert exc.value.condition == "not-authorized"
    pres, *_ = await join(b, ROOM, "Bob", password="falcot")
    assert 110 in codes(pres)


async def test_max_users(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_maxusers": "2"})
    await join(b, ROOM, "Bob")
    with pytest.raises(PresenceError) as exc:
        await join(c, ROOM, "Carol")
    assert exc.value.condition == "service-unavailable"


async def test_moderated_room_and_voice(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_moderatedroom": True})
    pres, *_ = await join(b, ROOM, "Bob")
    assert pres["muc"]["role"] == "visitor"
    b.send_message(mto=ROOM, mbody="can I speak?", mtype="groupchat")
    err = await b.next_error()
    assert err["error"]["condition"] == "forbidden"
    await a.plugin["xep_0045"].set_role(ROOM, "Bob", "participant", timeout=TIMEOUT)
    p = await next_matching(b.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["muc"]["role"] == "participant")
    assert 110 in codes(p)
    b.send_message(mto=ROOM, mbody="thanks", mtype="groupchat")
    await next_matching(a.messages, groupchat(ROOM, "thanks"))


async def test_members_only_and_subject_permissions(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice", **{"muc#roomconfig_membersonly": True})
    with pytest.raises(PresenceError) as exc:
        await join(b, ROOM, "Bob")
    assert exc.value.condition == "registration-required"
    await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="bob@xmppd.test", timeout=TIMEOUT)
    await join(b, ROOM, "Bob")
    # participants may not change the subject unless the room says so
    b.plugin["xep_0045"].set_subject(ROOM, "bob's topic")
    err = await b.next_error()
    assert err["error"]["condition"] == "forbidden"
    a.plugin["xep_0045"].set_subject(ROOM, "Falcot news")
    m = await next_matching(b.all_messages, lambda m: m["subject"] == "Falcot news")
    assert m["from"] == f"{ROOM}/Alice"


async def test_subject_with_body_is_not_a_change(users, muc_server):
    a = await users("alice")
    await create_room(a, ROOM, "Alice")
    a.plugin["xep_0045"].set_subject(ROOM, "Topic")
    await next_matching(a.all_messages, lambda m: m["subject"] == "Topic")
    a.send_message(mto=ROOM, mbody="hello", msubject="Not a topic", mtype="groupchat")
    await next_matching(a.messages, groupchat(ROOM, "hello"))
    assert muc_server.muc.rooms["lobby"].subject == "Topic"


async def test_cancel_new_room_destroys_it(users, muc_server):
    a = await users("alice")
    await a.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=TIMEOUT)
    await a.plugin["xep_0045"].cancel_config(ROOM, timeout=TIMEOUT)
    await muc_server.muc.drained()
    assert "lobby" not in muc_server.muc.rooms


@pytest.mark.parametrize("rule,alice_may", [("admin", False), ("local", True)])
async def test_restrict_room_creation(tmp_path, certs, rule, alice_may):
    from ..clients import logged_in
    from .conftest import PLUGINS
    srv = await start_muc(tmp_path, certs, f'restrict_room_creation = "{rule}"\n')
    users = ("alice@xmppd.test", "admin@xmppd.test", "olivia@other.test")
    try:
        for u in users:
            await srv.adduser(u)
        async with logged_in(srv, *users, plugins=PLUGINS) as (alice, admin, olivia):
            if alice_may:
                await join(alice, f"a@{MUC}", "Alice")
            else:
                with pytest.raises(PresenceError) as exc:
                    await join(alice, f"a@{MUC}", "Alice")
                assert exc.value.condition == "not-allowed"
            with pytest.raises(PresenceError):
                await join(olivia, f"o@{MUC}", "Olivia")   # not a local user in either case
            await join(admin, f"adm@{MUC}", "Admin")     # admins always may
    finally:
        await srv.server.stop()

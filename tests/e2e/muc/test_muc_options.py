"""The Prosody options of the MUC service (https://prosody.im/doc/modules/mod_muc and
mod_muc_mam) that xmppd honours, each checked with a real client: the ``muc_mam``
module name, archive expiry, tombstones, default language, who may make rooms
persistent or public, registered nicknames, room limits, room vCards, occupant ids,
private-message and invitation defaults."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError, PresenceError

from ..clients import TIMEOUT, logged_in
from .conftest import (MUC, PLUGINS, codes, create_room, groupchat, join, next_matching, raw_iq,
                       start_muc)
from .test_affiliations_invites import an_invitation, invitation, invited, listen, send_raw
from .test_companions import bodies, mam_query

ROOM = f"lobby@{MUC}"


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

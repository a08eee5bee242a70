"""Service and room discovery, creation, joining, presence, messages, leaving."""
from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import PresenceError

from ..clients import TIMEOUT
from .conftest import MUC, codes, create_room, groupchat, join, next_matching

ROOM = f"lobby@{MUC}"


async def test_service_disco_identity(users):
    a = await users("alice")
    info = await a.plugin["xep_0030"].get_info(jid=MUC, timeout=TIMEOUT)
    ids = info["disco_info"]["identities"]
    assert ("conference", "text", None, "Chatrooms") in ids
    assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"]


async def test_create_instant_room_and_join(users, muc_server):
    a = await users("alice")
    b = await users("bob")
    (pres, subject, occupants, history), form = await create_room(a, ROOM, "Alice")
    assert {110, 201} <= codes(pres)
    assert pres["muc"]["affiliation"] == "owner" and pres["muc"]["role"] == "moderator"
    assert "muc#roomconfig_persistentroom" in form.get_fields()
    pres_b, _, occ_b, _ = await join(b, ROOM, "Bob")
    assert 110 in codes(pres_b)
    assert pres_b["muc"]["role"] == "participant" and pres_b["muc"]["affiliation"] == "none"
    assert f"{ROOM}/Alice" in [str(p["from"]) for p in occ_b]
    # alice sees bob arrive
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob")
    assert p["muc"]["role"] == "participant"
    # semi-anonymous by default: the owner (a moderator) sees bob's real JID
    assert p["muc"]["jid"] == b.boundjid


async def test_nick_conflict(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    with pytest.raises(PresenceError) as exc:
        await join(b, ROOM, "Alice")
    assert exc.value.condition == "conflict"


async def test_locked_room_refuses_others(users):
    a = await users("alice")
    b = await users("bob")
    await a.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=TIMEOUT)
    with pytest.raises(PresenceError) as exc:
        await join(b, ROOM, "Bob")
    assert exc.value.condition == "item-not-found"


async def test_groupchat_message_and_private(users):
    a = await users("alice")
    b = await users("bob")
    c = await users("carol")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await join(c, ROOM, "Carol")
    b.send_message(mto=ROOM, mbody="hello room", mtype="groupchat")
    for cl in (a, b, c):
        m = await next_matching(cl.messages, groupchat(ROOM, "hello room"))
        assert m["from"] == f"{ROOM}/Bob"
        assert m["stanza_id"]["by"] == ROOM and m["stanza_id"]["id"]
    # private message: carol -> bob, from carol's occupant JID
    c.send_message(mto=f"{ROOM}/Bob", mbody="psst", mtype="chat")
    m = await next_matching(b.messages, lambda m: m["body"] == "psst")
    assert m["from"] == f"{ROOM}/Carol"
    assert m["to"] == b.boundjid


async def test_non_occupant_cannot_send(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    b.send_message(mto=ROOM, mbody="let me in", mtype="groupchat")
    err = await b.next_error()
    assert err["error"]["condition"] == "not-acceptable"


async def test_leave_and_temporary_room_vanishes(users, muc_server):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    b.plugin["xep_0045"].leave_muc(ROOM, "Bob", "bye")
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["type"] == "unavailable")
    assert p["status"] == "bye"
    assert p["muc"]["role"] == "none"
    a.plugin["xep_0045"].leave_muc(ROOM, "Alice")
    await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Alice" and p["type"] == "unavailable")
    await muc_server.muc.drained()
    assert "lobby" not in muc_server.muc.rooms


async def test_disconnect_removes_occupant(users, muc_server):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    await asyncio.wait_for(b.disconnect(wait=2), 5)
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["type"] == "unavailable")
    assert p["muc"]["role"] == "none"


async def test_nick_change(users):
    a = await users("alice")
    b = await users("bob")
    await create_room(a, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    b.send_presence(pto=f"{ROOM}/Robert")
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["type"] == "unavailable")
    assert 303 in codes(p) and p["muc"]["item_nick"] == "Robert"
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Robert")
    assert p["type"] != "unavailable"
    selfp = await next_matching(b.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["type"] == "unavailable")
    assert {110, 303} <= codes(selfp)



async def test_server_shutdown_tells_occupants(users, muc_server):
    a = await users("alice")
    await create_room(a, ROOM, "Alice")
    await muc_server.server.stop()
    # before the stream closes, the service says it is going away (status 332)
    p = await next_matching(a.all_presences, lambda p: p["from"] == f"{ROOM}/Alice"
                            and p["type"] == "unavailable")
    assert 332 in codes(p) and 110 in codes(p)


async def test_one_nick_from_two_devices(users):
    """Alice's desktop and phone share her nick (as with Prosody): both get the
    room's messages; the phone leaving leaves the desktop in."""
    desktop = await users("alice")
    phone = await users("alice")
    b = await users("bob")
    await create_room(desktop, ROOM, "Alice")
    await join(b, ROOM, "Bob")
    pres, _subject, occupants, _history = await join(phone, ROOM, "Alice")
    assert 110 in codes(pres) and f"{ROOM}/Bob" in [str(p["from"]) for p in occupants]
    b.send_message(mto=ROOM, mbody="to both", mtype="groupchat")
    for cl in (desktop, phone):
        m = await next_matching(cl.messages, groupchat(ROOM, "to both"))
        assert m["from"] == f"{ROOM}/Bob" and m["to"] == cl.boundjid
    phone.send_message(mto=ROOM, mbody="from the phone", mtype="groupchat")
    for cl in (desktop, phone, b):
        m = await next_matching(cl.messages, groupchat(ROOM, "from the phone"))
        assert m["from"] == f"{ROOM}/Alice"
    phone.plugin["xep_0045"].leave_muc(ROOM, "Alice")
    await next_matching(phone.muc_presences, lambda p: p["type"] == "unavailable" and 110 in codes(p))
    b.send_message(mto=ROOM, mbody="still there?", mtype="groupchat")
    m = await next_matching(desktop.messages, groupchat(ROOM, "still there?"))
    assert m["to"] == desktop.boundjid
    # bob never saw Alice leave
    assert not [p for p in list(b.muc_presences._queue)
                if p["from"] == f"{ROOM}/Alice" and p["type"] == "unavailable"]


async def test_locked_room_is_destroyed_after_the_lock_timeout(tmp_path, certs):
    """A room whose owner never submits the configuration form goes away after
    muc_room_lock_timeout (Prosody's rule); a configured room stays."""
    from .conftest import start_muc
    from ..clients import logged_in
    srv = await start_muc(tmp_path, certs, muc_options="muc_room_lock_timeout = \"1 second\"\n")
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=("xep_0030", "xep_0045", "xep_0004")) as a:
            gone = asyncio.get_running_loop().create_future()
            a.add_event_handler("groupchat_presence", lambda p: p["type"] == "unavailable"
                                and not gone.done() and gone.set_result(p))
            await a.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=TIMEOUT)
            await a.plugin["xep_0045"].join_muc_wait(f"kept@{MUC}", "Alice", timeout=TIMEOUT)
            await a.plugin["xep_0045"].set_room_config(
                f"kept@{MUC}", a.plugin["xep_0004"].make_form("submit"), timeout=TIMEOUT)
            assert srv.muc.rooms["lobby"].locked and not srv.muc.rooms["kept"].locked
            p = await asyncio.wait_for(gone, 5)
            assert p["from"] == f"{ROOM}/Alice"
            assert p.xml.find(".//{http://jabber.org/protocol/muc#user}destroy") is not None
            await srv.muc.drained()
            assert "lobby" not in srv.muc.rooms and "kept" in srv.muc.rooms
    finally:
        await srv.server.stop()

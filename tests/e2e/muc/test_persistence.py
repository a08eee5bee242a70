"""Persistent rooms survive a restart (config, affiliations, subject, archive);
``xmppctl muc list/destroy`` work on the stored rooms."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import PresenceError

from xmppd.config import parse_config_text
from xmppd.modules.muc import cli as muc_cli

from ..clients import TIMEOUT, logged_in
from ..conftest import open_test_storage
from .conftest import MUC, PLUGINS, create_room, groupchat, join, next_matching, raw_iq, start_muc

ROOM = f"lobby@{MUC}"
TEMP = f"temp@{MUC}"


async def test_persistent_room_survives_restart(tmp_path, certs):
    srv = await start_muc(tmp_path, certs)
    try:
        for u in ("alice", "bob", "carol"):
            await srv.adduser(f"{u}@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            await create_room(a, ROOM, "Alice", **{"muc#roomconfig_persistentroom": True,
                                                  "muc#roomconfig_membersonly": True,
                                                  "muc#roomconfig_roomname": "Lobby"})
            await create_room(a, TEMP, "Alice")
            await a.plugin["xep_0045"].set_affiliation(ROOM, "member", jid="bob@xmppd.test",
                                                       timeout=TIMEOUT)
            await a.plugin["xep_0045"].set_affiliation(ROOM, "outcast", jid="carol@xmppd.test",
                                                       timeout=TIMEOUT)
            a.plugin["xep_0045"].set_subject(ROOM, "Persistent topic")
            a.send_message(mto=ROOM, mbody="remember me", mtype="groupchat")
            await next_matching(a.messages, groupchat(ROOM, "remember me"))
    finally:
        await srv.server.stop()

    srv = await start_muc(tmp_path, certs)
    try:
        assert "lobby" in srv.muc.rooms and "temp" not in srv.muc.rooms
        room = srv.muc.rooms["lobby"]
        assert room.config.members_only and room.config.name == "Lobby"
        assert room.affiliations == {"alice@xmppd.test": "owner", "bob@xmppd.test": "member",
                                     "carol@xmppd.test": "outcast"}
        async with logged_in(srv, "bob@xmppd.test", "carol@xmppd.test", plugins=PLUGINS) as (b, c):
            pres, subject, _, history = await join(b, ROOM, "Bob")
            assert pres["muc"]["affiliation"] == "member"
            assert subject["subject"] == "Persistent topic"
            assert [m["body"] for m in history] == ["remember me"]
            with pytest.raises(PresenceError):
                await join(c, ROOM, "Carol")
            # the archive is still there
            q = ET.Element("{urn:xmpp:mam:2}query", {"queryid": "x"})
            reply = await raw_iq(b, ROOM, q, "set")
            assert reply.find("{urn:xmpp:mam:2}fin") is not None
            items = await b.plugin["xep_0030"].get_items(jid=MUC, timeout=TIMEOUT)
            assert [str(i[0]) for i in items["disco_items"]["items"]] == [ROOM]
    finally:
        await srv.server.stop()

    # xmppctl muc list / destroy, on the same database
    storage = await open_test_storage(tmp_path)
    try:
        rooms = await muc_cli.list_rooms(storage, MUC)
        assert [r["jid"] for r in rooms] == [ROOM]
        assert rooms[0]["members_only"] and rooms[0]["name"] == "Lobby"
        assert await muc_cli.destroy_room(storage, MUC, "lobby")
        assert await muc_cli.list_rooms(storage, MUC) == []
        assert not await muc_cli.destroy_room(storage, MUC, "lobby")
    finally:
        await storage.close()
    srv = await start_muc(tmp_path, certs)
    try:
        assert srv.muc.rooms == {}
    finally:
        await srv.server.stop()


async def test_xmppctl_muc_commands(tmp_path, certs, capsys):
    from xmppd.cli import ctl
    srv = await start_muc(tmp_path, certs)
    try:
        await srv.adduser("alice@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
            await create_room(a, ROOM, "Alice", **{"muc#roomconfig_persistentroom": True})
    finally:
        await srv.server.stop()
    cfg = parse_config_text((tmp_path / "xmppd.cfg.lua").read_text(),
                            filename=str(tmp_path / "xmppd.cfg.lua"), base_dir=str(tmp_path))
    parser = ctl.build_parser()
    args = parser.parse_args(["muc", "list", MUC])
    assert await args.func(args, ctl.Context(cfg)) == 0
    assert ROOM in capsys.readouterr().out
    args = parser.parse_args(["muc", "destroy", ROOM, "--reason", "cleanup"])
    assert await args.func(args, ctl.Context(cfg)) == 0
    args = parser.parse_args(["muc", "list", "xmppd.test"])
    with pytest.raises(ctl.CtlError):
        await args.func(args, ctl.Context(cfg))
    args = parser.parse_args(["muc", "destroy", ROOM])
    with pytest.raises(ctl.CtlError):
        await args.func(args, ctl.Context(cfg))

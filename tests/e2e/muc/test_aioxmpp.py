"""aioxmpp's MUC client (``aioxmpp.MUCClient``) against the room, with slixmpp occupants."""
from __future__ import annotations

import asyncio

import pytest

from ..clients import TIMEOUT
from .conftest import MUC, create_room, groupchat, join, next_matching

ROOM = f"lobby@{MUC}"


def aioxmpp_client(srv, jid):
    aioxmpp = pytest.importorskip("aioxmpp")
    import aioxmpp.connector
    import aioxmpp.security_layer
    import OpenSSL.SSL

    def ctx_factory():
        ctx = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(srv.cafile)
        ctx.set_verify(OpenSSL.SSL.VERIFY_PEER, lambda *a: a[-1])
        return ctx

    async def _pw(jid, n):
        return "secret"

    layer = aioxmpp.security_layer.SecurityLayer(
        ctx_factory, aioxmpp.security_layer._NullVerifier, True,
        (aioxmpp.security_layer.PasswordSASLProvider(_pw),),
    )
    return aioxmpp.Client(aioxmpp.JID.fromstr(jid), layer,
                          override_peer=[("127.0.0.1", srv.port, aioxmpp.connector.STARTTLSConnector())])


async def test_aioxmpp_muc_join_and_talk(users, muc_server):
    import aioxmpp
    import aioxmpp.muc
    a = await users("alice")
    c = await users("carol")
    await muc_server.adduser("bob@xmppd.test")
    await create_room(a, ROOM, "Alice")
    await join(c, ROOM, "Carol")
    client = aioxmpp_client(muc_server, "bob@xmppd.test")
    async with client.connected():
        muc = client.summon(aioxmpp.MUCClient)
        room, fut = muc.join(aioxmpp.JID.fromstr(ROOM), "Bob", history=aioxmpp.muc.xso.History(maxstanzas=0))
        got: asyncio.Queue = asyncio.Queue()
        room.on_message.connect(lambda msg, member, source, **kw: got.put_nowait((msg, member)))
        await asyncio.wait_for(fut, TIMEOUT)
        assert room.me.nick == "Bob"
        assert sorted(m.nick for m in room.members) == ["Alice", "Bob", "Carol"]
        a.send_message(mto=ROOM, mbody="welcome bob", mtype="groupchat")
        msg, member = await asyncio.wait_for(got.get(), TIMEOUT)
        assert msg.body.any() == "welcome bob" and member.nick == "Alice"
        out = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT)
        out.body[None] = "thanks from aioxmpp"
        await room.send_message(out)
        m = await next_matching(c.messages, groupchat(ROOM, "thanks from aioxmpp"))
        assert m["from"] == f"{ROOM}/Bob"
        await asyncio.wait_for(room.leave(), TIMEOUT)
    p = await next_matching(a.muc_presences, lambda p: p["from"] == f"{ROOM}/Bob" and p["type"] == "unavailable")
    assert p["muc"]["role"] == "none"

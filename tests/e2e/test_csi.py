"""Client State Indication (XEP-0352) with slixmpp's xep_0352 plugin."""
from __future__ import annotations

import asyncio

from .clients import Login, logged_in
from .conftest import start_server


async def test_inactive_holds_presence_and_chat_states_until_important(tmp_path, certs):
    srv = await start_server(tmp_path, certs,
                             host_extra='    modules_enabled = { "disco", "csi" }\n')
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        async with logged_in(srv,
                             Login("alice@xmppd.test/phone", plugins=("xep_0030", "xep_0352", "xep_0085")),
                             Login("bob@xmppd.test/pc", plugins=("xep_0030", "xep_0085"))) as (a, b):
            a.plugin["xep_0352"].send_inactive()
            await asyncio.sleep(0.2)
            # unimportant: directed presence updates and a chat state
            b.send_presence(pto="alice@xmppd.test/phone", pstatus="one")
            b.send_presence(pto="alice@xmppd.test/phone", pstatus="two")
            m = b.make_message(mto="alice@xmppd.test/phone", mtype="chat")
            m["chat_state"] = "composing"
            m.send()
            await asyncio.sleep(0.3)
            assert a.presences.empty()
            assert a.messages.empty()
            # important: a message with a body flushes what was held, then itself
            b.send_message(mto="alice@xmppd.test/phone", mbody="wake up", mtype="chat")
            p = await asyncio.wait_for(a.presences.get(), 5)
            assert p["status"] == "two"              # only the latest presence per contact
            assert a.presences.empty()
            got = await a.next_message()
            assert got["body"] == "wake up"
            # active: nothing held any more
            a.plugin["xep_0352"].send_active()
            await asyncio.sleep(0.2)
            b.send_presence(pto="alice@xmppd.test/phone", pstatus="three")
            p = await asyncio.wait_for(a.presences.get(), 5)
            assert p["status"] == "three"
    finally:
        await srv.server.stop()

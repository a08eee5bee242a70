"""Push notifications (XEP-0357): a test component is the app server; slixmpp's
xep_0357 plugin registers; notifications go out when the phone is away."""
from __future__ import annotations

import asyncio

import pytest
import slixmpp
import xml.etree.ElementTree as ET

from .clients import slix_close, slix_connect
from .conftest import start_server

GLOBAL = 'component_ports = { 0 }\ncomponent_interfaces = { "127.0.0.1" }\n'
HOST = ('    modules_enabled = { "disco", "smacks", "cloud_notify" }\n'
        '    smacks_hibernation_time = 30\n'
        '\nComponent "push.xmppd.test"\n    component_secret = "app"\n')
PUBSUB = "{http://jabber.org/protocol/pubsub}"
DATA = "{jabber:x:data}"


class AppServer(slixmpp.ComponentXMPP):
    """Receives publish IQs and answers them, like an app server's XMPP side."""

    def __init__(self, port):
        super().__init__("push.xmppd.test", "app", "127.0.0.1", port)
        self.notifications: asyncio.Queue = asyncio.Queue()
        self.refuse = False
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        self.register_handler(Callback("publish", MatchXPath(f"{{jabber:component:accept}}iq/{PUBSUB}pubsub"),
                                       self.on_publish))

    def on_publish(self, iq):
        pubsub = iq.xml.find(f"{PUBSUB}pubsub")
        publish = pubsub.find(f"{PUBSUB}publish")
        form = publish.find(f"{PUBSUB}item/{{urn:xmpp:push:0}}notification/{DATA}x")
        fields = {f.get("var"): f.findtext(f"{DATA}value") for f in form.findall(f"{DATA}field")}
        self.notifications.put_nowait((iq["from"], publish.get("node"), fields))
        if self.refuse:
            err = iq.reply()
            err["type"] = "error"
            err["error"]["condition"] = "item-not-found"
            err.send()
        else:
            iq.reply().send()


async def enable_push(client, jid, node):
    """slixmpp 1.17 has no xep_0357 plugin: the enable IQ by hand (XEP-0357 §5)."""
    iq = client.make_iq_set()
    iq.append(ET.Element("{urn:xmpp:push:0}enable", {"jid": jid, "node": node}))
    await iq.send(timeout=10)


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, extra=GLOBAL, host_extra=HOST)
    try:
        yield s
    finally:
        await s.server.stop()


async def app_server(srv):
    app = AppServer(srv.server.ports("component")[0])
    started = asyncio.get_running_loop().create_future()
    app.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    app.connect()
    await asyncio.wait_for(started, 10)
    return app


async def test_notification_when_hibernating(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    app = await app_server(srv)
    a = await slix_connect(srv, "alice@xmppd.test/phone", plugins=("xep_0030", "xep_0198"))
    b = await slix_connect(srv, "bob@xmppd.test/pc")
    try:
        await enable_push(a, "push.xmppd.test", "device-1")
        # alice is online: no notification
        b.send_message(mto="alice@xmppd.test", mbody="live", mtype="chat")
        assert (await a.next_message())["body"] == "live"
        # the phone loses its connection and hibernates: messages trigger notifications
        while a.plugin["xep_0198"].sm_id is None:
            await asyncio.sleep(0.02)
        lost = a.disconnected
        a.transport.abort()
        await asyncio.wait_for(lost, 5)
        while not srv.server.hosts["xmppd.test"].get_session("alice", "phone").hibernating:
            await asyncio.sleep(0.02)
        b.send_message(mto="alice@xmppd.test", mbody="wake up", mtype="chat")
        frm, node, fields = await asyncio.wait_for(app.notifications.get(), 10)
        assert frm == "alice@xmppd.test" and node == "device-1"
        assert fields["FORM_TYPE"] == "urn:xmpp:push:summary"
        assert fields["message-count"] == "1"
        assert fields["last-message-sender"] == str(b.boundjid)
        assert "last-message-body" not in fields          # private by default
        b.send_message(mto="alice@xmppd.test", mbody="again", mtype="chat")
        _, _, fields = await asyncio.wait_for(app.notifications.get(), 10)
        assert fields["message-count"] == "2"
    finally:
        await slix_close(b)
        a.disconnect(wait=0)
        app.disconnect()


async def test_disable_and_refusal(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    app = await app_server(srv)
    a = await slix_connect(srv, "alice@xmppd.test/phone", plugins=("xep_0030",))
    b = await slix_connect(srv, "bob@xmppd.test/pc")
    try:
        await enable_push(a, "push.xmppd.test", "n1")
        await slix_close(a)
        app.refuse = True
        b.send_message(mto="alice@xmppd.test", mbody="one", mtype="chat")
        await asyncio.wait_for(app.notifications.get(), 10)
        # the app server refused: the registration is dropped, no more notifications
        await asyncio.sleep(0.3)
        b.send_message(mto="alice@xmppd.test", mbody="two", mtype="chat")
        await asyncio.sleep(0.5)
        assert app.notifications.empty()
    finally:
        await slix_close(b)
        app.disconnect()

"""Helpers for the PEP end-to-end tests: slixmpp clients that advertise
``+notify`` interests through entity capabilities, as Conversations and Dino do."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from slixmpp.plugins.xep_0004 import Form

from .clients import TIMEOUT, slix_connect

PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"
EVENT = "http://jabber.org/protocol/pubsub#event"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")


async def pep_connect(srv, jid, *, interests=(), plugins=PLUGINS, presence=True, **kw):
    """Connect, declare the ``+notify`` interests, then send presence (with caps)."""
    c = await slix_connect(srv, jid, plugins=plugins, send_presence=False, **kw)
    c.events: asyncio.Queue = asyncio.Queue()
    for name in ("pubsub_publish", "pubsub_retract", "pubsub_delete", "pubsub_purge"):
        c.add_event_handler(name, lambda msg, name=name: c.events.put_nowait((name, msg)))
    for ns in interests:
        c.plugin["xep_0030"].add_feature(f"{ns}+notify")
    if "xep_0115" in plugins:
        await c.plugin["xep_0115"].update_caps(broadcast=False)
    if presence:
        await available(c)
    return c


async def available(c, to=None):
    c.send_presence(pto=to) if to else c.send_presence()
    if to is None:
        while True:
            p = await asyncio.wait_for(c.presences.get(), TIMEOUT)
            if p["from"] == c.boundjid:
                break


async def next_event(c, timeout=TIMEOUT):
    return await asyncio.wait_for(c.events.get(), timeout)


async def no_event(c, wait=0.5):
    try:
        got = await asyncio.wait_for(c.events.get(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected event {got[0]}: {got[1]}")


def options(**fields) -> Form:
    """A publish-options / node_config form: ``options(access_model="open")``."""
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for k, v in fields.items():
        form.add_field(var=f"pubsub#{k}", value=v)
    return form


def el(xml: str) -> ET.Element:
    return ET.fromstring(xml)


async def publish(c, node, payload, id=None, opts=None, to=None):
    """Publish with no 'to' (the own account), as PEP clients do."""
    return await c.plugin["xep_0060"].publish(to, node, id=id, payload=el(payload) if isinstance(payload, str) else payload,
                                              options=opts, timeout=TIMEOUT)


def pubsub_error(exc):
    """(condition, pubsub#errors condition) of an IqError."""
    err = exc.iq.xml.find("{jabber:client}error")
    app = None
    for child in err:
        if child.tag.startswith("{" + ERRORS + "}"):
            app = child.tag.split("}")[1]
    return exc.iq["error"]["condition"], app


async def shares_presence(srv, owner: str, contact: str) -> None:
    """``contact`` is subscribed to ``owner``'s presence (``owner``'s roster says
    ``from``, the contact's says ``to``): set through the roster service, as a
    finished subscription would leave them. PEP notifications follow presence
    from such contacts only (XEP-0163, as Prosody)."""
    from xmppd.core import roster as rs
    ou, od = owner.split("@")
    cu, cd = contact.split("@")
    await srv.server.hosts[od].roster.update(ou, contact, lambda i: rs.set_state(i or rs.new_item(), rs.FROM))
    if cd in srv.server.hosts:
        await srv.server.hosts[cd].roster.update(cu, owner, lambda i: rs.set_state(i or rs.new_item(), rs.TO))

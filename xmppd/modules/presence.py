"""Presence of connected resources (RFC 6121 §4): availability, priority,
broadcast to the account's own resources, directed presence, and unavailable
on logout or connection loss.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.core import events as ev
from xmppd.core import stanza as st
from xmppd.errors import StanzaError

PROTOCOLS = ["RFC 6121 §4"]
OPTIONS: list = []

PRIORITY = "{jabber:client}priority"


def parse_priority(stanza: ET.Element) -> int:
    el = stanza.find(PRIORITY)
    if el is None or not (el.text or "").strip():
        return 0
    try:
        p = int(el.text.strip())
    except ValueError:
        raise StanzaError("bad-request", "priority must be an integer") from None
    if not -128 <= p <= 127:
        raise StanzaError("bad-request", "priority must be between -128 and 127")
    return p


def setup(m) -> None:
    host = m.host

    def own_resources(user):
        return [s for s in host.sessions_of(user).values() if s.available]

    def copy_to(stanza, to):
        out = ET.Element(stanza.tag, dict(stanza.attrib))
        out.extend(list(stanza))
        out.text = stanza.text
        out.set("to", to)
        return out

    async def broadcast(sev):
        origin = sev.origin
        stanza = sev.stanza
        t = stanza.get("type")
        if getattr(origin, "kind", None) != "c2s":
            return ev.HANDLED
        initial = False
        if t is None:
            origin.priority = parse_priority(stanza)
            initial = not origin.available
            origin.available = True
            origin.presence = stanza
        elif t == "unavailable":
            origin.available = False
            origin.presence = None
        else:
            raise StanzaError("bad-request", f"presence of type {t} needs a 'to'")
        for s in own_resources(origin.username) + ([origin] if t == "unavailable" else []):
            s.send(copy_to(stanza, s.full_jid))
        if initial:
            # e.g. offline messages are delivered now (if priority >= 0)
            await host.events.notify("resource-available", origin)
        if t == "unavailable":
            await _undo_directed(origin)
        return ev.HANDLED

    async def _undo_directed(sess):
        for jid in list(sess.directed):
            out = st.make("presence", {"type": "unavailable", "from": sess.full_jid, "to": jid})
            await m.server.router.route(out, sess)
        sess.directed.clear()

    def track_directed(sev):
        origin = sev.origin
        if getattr(origin, "kind", None) != "c2s" or not origin.available:
            return
        t = sev.stanza.get("type")
        to = sev.stanza.get("to")
        if t is None:
            origin.directed.add(to)
        elif t == "unavailable":
            origin.directed.discard(to)

    async def to_bare(sev):
        track_directed(sev)
        stanza = sev.stanza
        for s in own_resources(sev.to_node):
            s.send(stanza)
        return ev.HANDLED

    async def to_full(sev):
        track_directed(sev)
        sess = host.get_session(sev.to_node, sev.to_resource)
        if sess is not None:
            sess.send(sev.stanza)
        return ev.HANDLED

    async def unbound(arg):
        sess, _exc = arg
        if sess.available:
            sess.available = False
            out = st.make("presence", {"type": "unavailable", "from": sess.full_jid})
            for s in own_resources(sess.username):
                s.send(copy_to(out, s.full_jid))
            await _undo_directed(sess)

    m.hook(ev.stanza_event("presence", "broadcast"), broadcast, ev.LAST)
    m.hook(ev.stanza_event("presence", "bare"), to_bare, ev.LAST)
    m.hook(ev.stanza_event("presence", "full"), to_full, ev.LAST)
    m.hook("resource-unbind", unbound)

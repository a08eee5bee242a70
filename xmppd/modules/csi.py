"""Client State Indication (XEP-0352): while a client says it is inactive,
presence updates and chat states are held (the latest per contact) and flushed,
in order, when it becomes active again or when something important arrives
(a message with a body, an IQ, anything else).

An inactive session's :class:`Held` stanzas are this module's session slot; the
session's send filter is that object's own method, so nothing is looked up per
stanza.
"""
from __future__ import annotations

import collections
import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED, InlineFeature, Option, SessionSlot, element_event
from xmppd.xmpp import ns, stanza as st

PROTOCOLS = ["XEP-0352"]
OPTIONS = [
    Option("csi_max_held", "integer", 256, "both",
           "Stanzas held for an inactive client before everything is flushed.", min=1, limit=True),
]
_CHATSTATE = "{" + ns.CHATSTATES + "}"
_IMPORTANT = (f"{{{ns.CARBONS}}}", f"{{{ns.FORWARD}}}")


def unimportant_key(stanza: ET.Element):
    """The key under which a stanza may be held, or None if it is important."""
    kind = st.kind_of(stanza)
    if kind == "presence":
        t = stanza.get("type")
        if t in (None, "unavailable"):
            return ("presence", stanza.get("from"))
        return None  # subscription requests and errors are important
    if kind == "message":
        if stanza.get("type") == "error":
            return None
        body = False
        state = False
        for child in stanza:
            tag = child.tag
            if tag == "{jabber:client}body" or tag == "body" or tag.endswith("}body"):
                body = True
            elif tag.startswith(_CHATSTATE):
                state = True
            elif tag.startswith(_IMPORTANT):
                return None
        if state and not body:
            return ("chatstate", stanza.get("from"))
    return None


class Held:
    """What an inactive session holds back: the latest stanza per (kind, sender),
    ordered by last update."""
    __slots__ = ("items", "limit")

    def __init__(self, limit: int):
        self.items: collections.OrderedDict = collections.OrderedDict()
        self.limit = limit

    def filter(self, session, stanza):
        """The session's send filter: hold what is unimportant, flush before the rest."""
        key = unimportant_key(stanza)
        if key is None:
            self.flush(session)
            return stanza
        items = self.items
        items.pop(key, None)
        items[key] = stanza
        if len(items) > self.limit:
            self.flush(session)
        return None

    def flush(self, session) -> None:
        if not self.items:
            return
        items = list(self.items.values())
        self.items.clear()
        for stanza in items:
            session.deliver(stanza)


def inactive(slot: SessionSlot, limit: int, session) -> None:
    """The client is inactive: hold what is unimportant from now on."""
    if slot.get(session) is None:
        held = Held(limit)
        slot.set(session, held)
        session.send_filters.append(held.filter)


def active(slot: SessionSlot, session) -> None:
    """The client is active again: what was held goes now, nothing is held any more."""
    held = slot.pop(session)
    if held is not None:
        held.flush(session)
        if held.filter in session.send_filters:
            session.send_filters.remove(held.filter)


def on_inactive(slot: SessionSlot, limit: int, arg):
    inactive(slot, limit, arg[0])
    return HANDLED


def on_active(slot: SessionSlot, arg):
    active(slot, arg[0])
    return HANDLED


def all_active(slot: SessionSlot, host) -> None:
    """At unload: every session gets what was held for it."""
    for resources in list(host.sessions.values()):
        for session in list(resources.values()):
            active(slot, session)


def setup(m) -> None:
    slot = m.session_slot()
    limit = m.get_option("csi_max_held")
    m.add_stream_feature(lambda session: ET.Element(f"{{{ns.CSI}}}csi"), stage="bound")
    m.hook(element_event(ns.CSI, "inactive"), lambda arg: on_inactive(slot, limit, arg))
    m.hook(element_event(ns.CSI, "active"), lambda arg: on_active(slot, arg))
    m.on_unload(lambda: all_active(slot, m.host))
    # <inactive/> inside a binding request (XEP-0386): the session starts inactive
    m.add_item("inline-feature", InlineFeature(ns.CSI, "bind", lambda session, el: inline(slot, limit, session, el)))


def inline(slot: SessionSlot, limit: int, session, el) -> None:
    if el.tag == f"{{{ns.CSI}}}inactive":
        inactive(slot, limit, session)
    elif el.tag == f"{{{ns.CSI}}}active":
        active(slot, session)

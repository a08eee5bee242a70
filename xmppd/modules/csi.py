"""Client State Indication (XEP-0352): while a client says it is inactive,
presence updates and chat states are held (the latest per contact) and flushed,
in order, when it becomes active again or when something important arrives
(a message with a body, an IQ, anything else).
"""
from __future__ import annotations

import collections
import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.core import events as ev
from xmppd.xmpp import stanza as st

PROTOCOLS = ["XEP-0352"]
NS = "urn:xmpp:csi:0"
CHATSTATES = "http://jabber.org/protocol/chatstates"
OPTIONS = [
    Option("csi_max_held", "integer", 256, "both",
           "Stanzas held for an inactive client before everything is flushed.", min=1),
]


class Held:
    __slots__ = ("items",)

    def __init__(self):
        # (kind, from) -> stanza, ordered by last update
        self.items: collections.OrderedDict = collections.OrderedDict()


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
            elif tag.startswith("{" + CHATSTATES + "}"):
                state = True
            elif tag.startswith("{urn:xmpp:carbons:2}") or tag.startswith("{urn:xmpp:forward:0}"):
                return None
        if state and not body:
            return ("chatstate", stanza.get("from"))
    return None


def setup(m) -> None:
    m.add_stream_feature(lambda session: ET.Element(f"{{{NS}}}csi"), stage="bound")
    limit = m.get_option("csi_max_held")

    def flush(session):
        held = session.state.get("csi")
        if held is None or not held.items:
            return
        items = list(held.items.values())
        held.items.clear()
        for stanza in items:
            session.deliver(stanza)

    def csi_filter(session, stanza):
        held = session.state.get("csi")
        if held is None:
            return stanza
        key = unimportant_key(stanza)
        if key is None:
            flush(session)
            return stanza
        held.items.pop(key, None)
        held.items[key] = stanza
        if len(held.items) > limit:
            flush(session)
        return None

    def inactive(arg):
        session, _el = arg
        if session.state.get("csi") is None:
            session.state["csi"] = Held()
            session.send_filters.append(csi_filter)
        return ev.HANDLED

    def active(arg):
        session, _el = arg
        if session.state.get("csi") is not None:
            flush(session)
            session.state.pop("csi", None)
            if csi_filter in session.send_filters:
                session.send_filters.remove(csi_filter)
        return ev.HANDLED

    m.hook(ev.element_event(NS, "inactive"), inactive)
    m.hook(ev.element_event(NS, "active"), active)

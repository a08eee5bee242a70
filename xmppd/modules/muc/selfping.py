"""MUC self-ping (XEP-0410): a client pings its own occupant JID to learn
whether it is still joined. The room answers for its occupants: a result if the
sender is the occupant (or pings another present occupant), ``not-acceptable``
if the sender is not joined, ``item-not-found`` for an absent nick.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError


def answer(room, stanza: ET.Element, occ, nick: str) -> list[ET.Element]:
    if stanza.get("type") != "get":
        raise StanzaError("bad-request")
    if occ is None:
        raise StanzaError("not-acceptable", "you are not an occupant of this room")
    if nick != occ.nick and nick not in room.occupants:
        raise StanzaError("item-not-found", "no such occupant")
    return [st.iq_result(stanza)]

"""Room subject (XEP-0045 §8.1): a groupchat message with a ``<subject/>`` and no
``<body/>`` changes it; with a body it is an ordinary message. Moderators may
always change it, participants when the room allows it, visitors never.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp.errors import StanzaError

from .ns import CLIENT, q

SUBJECT = q(CLIENT, "subject")


def may_change(room, occ) -> bool:
    if occ.role == "moderator":
        return True
    return occ.role == "participant" and room.config.change_subject


def change(room, occ, stanza: ET.Element) -> list[ET.Element]:
    if not may_change(room, occ):
        raise StanzaError("forbidden", "you may not change the subject of this room")
    room.subject = stanza.findtext(SUBJECT) or ""
    room.subject_from = occ.nick
    room.dirty = True
    tmpl = room.message_template(occ, stanza)
    return room.fanout(tmpl)

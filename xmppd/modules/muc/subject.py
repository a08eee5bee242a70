"""Room subject (XEP-0045 §8.1): a groupchat message with a ``<subject/>`` and no
``<body/>`` changes it; with a body it is an ordinary message. Moderators may
always change it, participants when the room allows it, visitors never.

A change arrives with the groupchat messages (``Room.handle_groupchat`` calls
:func:`change` directly: that path has no event). Hooks: a new session gets the
subject last of all (``muc-occupant-session-new``, §7.2.16), and the room info
form shows it (``muc-disco#info``).
"""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from xmppd.moduleapi import LATE
from xmppd.xmpp import forms, ns
from xmppd.xmpp.errors import StanzaError

from .events import DISCO_INFO, OCCUPANT_SESSION_NEW

SUBJECT = ns.q(ns.CLIENT, "subject")
MESSAGE = ns.q(ns.CLIENT, "message")


def setup(m, service) -> None:
    m.hook(OCCUPANT_SESSION_NEW, send_subject, LATE)
    m.hook(DISCO_INFO, info)


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


def message(room, to: str) -> ET.Element:
    """The subject as a session that enters gets it (from whoever set it)."""
    frm = room.occupant_jid(room.subject_from) if room.subject_from else room.jid
    m = ET.Element(MESSAGE, {"type": "groupchat", "from": frm, "to": to, "id": str(uuid.uuid4())})
    ET.SubElement(m, SUBJECT).text = room.subject
    return m


def send_subject(event) -> None:
    event.out.append(message(event.room, event.from_jid))


def info(event) -> None:
    event.fields.append(forms.Field("muc#roominfo_subject", None, event.room.subject,
                                    label="Subject"))

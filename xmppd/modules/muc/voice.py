"""Voice requests (XEP-0045 §7.13, §8.6): in a moderated room a visitor asks for
voice with a ``muc#request`` form; the room passes the request to its moderators as
a form to fill in, and a moderator who answers with ``muc#request_allow`` true gives
the visitor the participant role (the usual role-change presence, reason "Voice
granted"). Requests from occupants who already have voice are ignored.

Hooks the data forms of messages to the room (``muc-room-message/jabber:x:data:x``).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import forms, ns
from xmppd.xmpp.errors import StanzaError

from .events import DISCO_INFO, room_message_event

MESSAGE = ns.q(ns.CLIENT, "message")
FORM_TYPES = ("submit", "form", "result", "cancel")


def setup(m, service) -> None:
    m.hook(room_message_event(ns.DATA, "x"), on_form)
    m.hook(DISCO_INFO, info)


def info(event) -> None:
    event.features.append(ns.MUC_REQUEST)


def on_form(event):
    form = _request(event.payload)
    if form is None:
        return None
    event.out.extend(handle(event.room, event.stanza, event.from_jid, form))
    return HANDLED


def _request(x: ET.Element) -> forms.Submission | None:
    """The form read, if it is a ``muc#request`` form."""
    try:
        sub = forms.read(x, types=FORM_TYPES)
    except StanzaError:   # not a form this feature can read: not a request
        return None
    return sub if sub.form_type == ns.MUC_REQUEST else None


def request_form(stanza: ET.Element) -> forms.Submission | None:
    """The ``muc#request`` data form of a message, if it carries one."""
    for x in stanza.findall(forms.X):
        sub = _request(x)
        if sub is not None:
            return sub
    return None


def handle(room, stanza: ET.Element, from_jid: str, form: forms.Submission) -> list[ET.Element]:
    occ = room.by_jid.get(from_jid)
    if occ is None:
        raise StanzaError("not-acceptable", "only occupants may ask for voice")
    if occ.role == "moderator":
        return _answer(room, occ, form)
    if occ.role != "visitor":
        return []          # already has voice
    msg = ET.Element(MESSAGE, {"from": room.jid, "type": "normal"})
    msg.append(forms.build(ns.MUC_REQUEST, [
        forms.Field("muc#role", "list-single", "participant", label="Requested role",
                    options=("none", "visitor", "participant", "moderator")),
        forms.Field("muc#jid", "jid-single", from_jid, label="User ID"),
        forms.Field("muc#roomnick", "text-single", occ.nick, label="Room nickname"),
        forms.Field("muc#request_allow", "boolean", "false", label="Grant voice to this person?"),
    ], type="form", title="Voice request",
        instructions=f"{occ.nick} asks for voice in {room.jid}: allow it?"))
    return room.fanout(msg, [o for o in room.occupants.values() if o.role == "moderator"])


def _answer(room, moderator, form: forms.Submission) -> list[ET.Element]:
    if (form.get("muc#request_allow") or "") not in ("true", "1"):
        return []
    target = room.by_jid.get(form.get("muc#jid") or "")
    if target is None:
        nick = form.get("muc#roomnick")
        target = room.occupants.get(nick) if nick else None
    if target is None or target.role != "visitor":
        return []
    return room.set_role(target, "participant", actor=moderator.nick, reason="Voice granted")

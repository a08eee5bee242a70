"""Voice requests (XEP-0045 §7.13, §8.6): in a moderated room a visitor asks for
voice with a ``muc#request`` form; the room passes the request to its moderators as
a form to fill in, and a moderator who answers with ``muc#request_allow`` true gives
the visitor the participant role (the usual role-change presence, reason "Voice
granted"). Requests from occupants who already have voice are ignored.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp.errors import StanzaError

from .ns import CLIENT, DATA, REQUEST, q

X = q(DATA, "x")


def request_form(stanza: ET.Element) -> ET.Element | None:
    """The ``muc#request`` data form of a message, if it carries one."""
    for x in stanza.findall(X):
        if _fields(x).get("FORM_TYPE") == REQUEST:
            return x
    return None


def _fields(x: ET.Element) -> dict[str, str]:
    return {f.get("var"): (f.findtext(q(DATA, "value")) or "").strip()
            for f in x.findall(q(DATA, "field")) if f.get("var")}


def _field(form: ET.Element, var: str, type_: str, label: str, value: str | None,
           options: tuple[str, ...] = ()) -> None:
    f = ET.SubElement(form, q(DATA, "field"), {"var": var, "type": type_})
    if label:
        f.set("label", label)
    if value is not None:
        ET.SubElement(f, q(DATA, "value")).text = value
    for o in options:
        ET.SubElement(ET.SubElement(f, q(DATA, "option")), q(DATA, "value")).text = o


def handle(room, stanza: ET.Element, from_jid: str, form: ET.Element) -> list[ET.Element]:
    occ = room.by_jid.get(from_jid)
    if occ is None:
        raise StanzaError("not-acceptable", "only occupants may ask for voice")
    fields = _fields(form)
    if occ.role == "moderator":
        return _answer(room, occ, fields)
    if occ.role != "visitor":
        return []          # already has voice
    msg = ET.Element(q(CLIENT, "message"), {"from": room.jid, "type": "normal"})
    x = ET.SubElement(msg, X, {"type": "form"})
    ET.SubElement(x, q(DATA, "title")).text = "Voice request"
    ET.SubElement(x, q(DATA, "instructions")).text = (
        f"{occ.nick} asks for voice in {room.jid}: allow it?")
    _field(x, "FORM_TYPE", "hidden", "", REQUEST)
    _field(x, "muc#role", "list-single", "Requested role", "participant",
           ("none", "visitor", "participant", "moderator"))
    _field(x, "muc#jid", "jid-single", "User ID", from_jid)
    _field(x, "muc#roomnick", "text-single", "Room nickname", occ.nick)
    _field(x, "muc#request_allow", "boolean", "Grant voice to this person?", "false")
    return room.fanout(msg, [o for o in room.occupants.values() if o.role == "moderator"])


def _answer(room, moderator, fields: dict[str, str]) -> list[ET.Element]:
    if fields.get("muc#request_allow") not in ("true", "1"):
        return []
    target = room.by_jid.get(fields.get("muc#jid", ""))
    if target is None:
        nick = fields.get("muc#roomnick")
        target = room.occupants.get(nick) if nick else None
    if target is None or target.role != "visitor":
        return []
    return room.set_role(target, "participant", actor=moderator.nick, reason="Voice granted")

"""Registering with a room (XEP-0045 §7.10) and one's reserved nickname (§7.12).

A user registers a nickname with ``jabber:iq:register`` (the ``muc#register`` form):
the nickname is reserved for them (nobody else may join under it) and they become a
member (in a members-only room only members may register). ``<remove/>`` gives it
up; losing the membership (an admin sets ``none``, a ban) drops it too. A disco#info
query on the node ``x-roomuser-item`` tells a user their reserved nickname.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp.errors import StanzaError

from . import permissions as perm
from .ns import DATA, DISCO_INFO, q

NS = "jabber:iq:register"
FORM_TYPE = "http://jabber.org/protocol/muc#register"
NICK_FIELD = "muc#register_roomnick"
NODE = "x-roomuser-item"


def holder(room, nick: str) -> str | None:
    """The bare JID that reserved ``nick`` in this room, if any."""
    for bare, reserved in room.nicks.items():
        if reserved == nick:
            return bare
    return None


def get(room, bare: str) -> ET.Element:
    query = ET.Element(q(NS, "query"))
    nick = room.nicks.get(bare)
    if nick is not None:
        ET.SubElement(query, q(NS, "registered"))
        ET.SubElement(query, q(NS, "username")).text = nick
        return query
    _may_register(room, bare)
    ET.SubElement(query, q(NS, "instructions")).text = (
        "Choose the nickname to reserve in this room; you become a member.")
    x = ET.SubElement(query, q(DATA, "x"), {"type": "form"})
    ET.SubElement(x, q(DATA, "title")).text = f"Register with {room.jid}"
    f = ET.SubElement(x, q(DATA, "field"), {"var": "FORM_TYPE", "type": "hidden"})
    ET.SubElement(f, q(DATA, "value")).text = FORM_TYPE
    f = ET.SubElement(x, q(DATA, "field"), {"var": NICK_FIELD, "type": "text-single",
                                           "label": "Nickname"})
    ET.SubElement(f, q(DATA, "required"))
    return query


def _may_register(room, bare: str) -> str:
    aff = room.affiliation(bare)
    if aff == "outcast":
        raise StanzaError("forbidden", "you are banned from this room")
    if room.config.members_only and perm.AFFILIATION_RANK[aff] < perm.AFFILIATION_RANK["member"]:
        raise StanzaError("registration-required", "only members may register in this room")
    return aff


def set_(room, payload: ET.Element, bare: str) -> list[ET.Element]:
    if payload.find(q(NS, "remove")) is not None:
        if room.nicks.pop(bare, None) is None:
            raise StanzaError("item-not-found", "you have no nickname registered here")
        room.dirty = True
        if room.affiliations.get(bare) == "member":
            return room.set_affiliation(bare, "none")
        return []
    aff = _may_register(room, bare)
    x = payload.find(q(DATA, "x"))
    if x is None or x.get("type") == "cancel":
        raise StanzaError("bad-request", "submit the muc#register form")
    values = {f.get("var"): (f.findtext(q(DATA, "value")) or "").strip()
              for f in x.findall(q(DATA, "field"))}
    nick = values.get(NICK_FIELD, "")
    room.check_nick(nick)
    owner = holder(room, nick)
    occupant = room.occupants.get(nick)
    if (owner is not None and owner != bare) or (occupant is not None and occupant.bare != bare):
        raise StanzaError("conflict", "that nickname is taken")
    room.nicks[bare] = nick
    room.dirty = True
    if perm.AFFILIATION_RANK[aff] < perm.AFFILIATION_RANK["member"]:
        return room.set_affiliation(bare, "member")
    return []


def nick_info(room, bare: str) -> ET.Element:
    """disco#info on ``x-roomuser-item``: the user's reserved nickname, if any."""
    query = ET.Element(q(DISCO_INFO, "query"), {"node": NODE})
    nick = room.nicks.get(bare)
    if nick is not None:
        ET.SubElement(query, q(DISCO_INFO, "identity"),
                      {"category": "conference", "type": "text", "name": nick})
    return query

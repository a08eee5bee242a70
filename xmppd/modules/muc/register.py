"""Registering with a room (XEP-0045 §7.10) and one's reserved nickname (§7.12).

A user registers a nickname with ``jabber:iq:register`` (the ``muc#register`` form):
the nickname is reserved for them (nobody else may join under it) and they become a
member (in a members-only room only members may register). ``<remove/>`` gives it
up; losing the membership (an admin sets ``none``, a ban) drops it too. A disco#info
query on the node ``x-roomuser-item`` tells a user their reserved nickname (this
feature hooks the room's disco#info early and takes the queries on that node).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import EARLY
from xmppd.xmpp import disco, forms, ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare as jid_bare

from . import permissions as perm
from .events import DISCO_INFO, room_iq_event


q = ns.q
NS = ns.REGISTER
FORM_TYPE = ns.MUC_REGISTER
NICK_FIELD = "muc#register_roomnick"
NODE = "x-roomuser-item"


def setup(m, service) -> None:
    m.hook(room_iq_event("get", NS, "query"), on_get)
    m.hook(room_iq_event("set", NS, "query"), on_set)
    m.hook(room_iq_event("get", ns.DISCO_INFO, "query"), on_nick_info, EARLY)
    m.hook(DISCO_INFO, info)


def on_get(event):
    return event.reply(get(event.room, jid_bare(event.from_jid)))


def on_set(event):
    return event.reply(None, *set_(event.room, event.payload, jid_bare(event.from_jid)))


def on_nick_info(event):
    if event.payload.get("node") != NODE:
        return None
    return event.reply(nick_info(event.room, jid_bare(event.from_jid)))


def info(event) -> None:
    event.features.append(NS)


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
    query.append(forms.build(FORM_TYPE, [forms.Field(NICK_FIELD, "text-single", label="Nickname",
                                                     required=True)],
                             title=f"Register with {room.jid}"))
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
    x = payload.find(forms.X)
    if x is None or x.get("type") == "cancel":
        raise StanzaError("bad-request", "submit the muc#register form")
    sub = forms.read(x, types=("submit", "form", "result"))
    raw = sub.raw(NICK_FIELD)
    nick = raw[0].strip() if raw else ""
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
    nick = room.nicks.get(bare)
    return disco.info([("conference", "text", nick)] if nick is not None else [], node=NODE)

"""Invitations: mediated (XEP-0045 §7.8.2) through the room, and declines.

Direct invitations (XEP-0249, ``<x xmlns='jabber:x:conference'/>``) go from one
client to another and need nothing from the room; the room's part is to let the
invitee in (a members-only room adds the invitee to the member list when the
inviter may do so).

Hooks the ``<x xmlns='…muc#user'/>`` of messages to the room
(``muc-room-message/http://jabber.org/protocol/muc#user:x``).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split, bare as jid_bare

from . import permissions as perm
from .events import room_message_event


q = ns.q
CLIENT, USER = ns.CLIENT, ns.MUC_USER
INVITE = q(USER, "invite")
DECLINE = q(USER, "decline")
REASON = q(USER, "reason")
CONFERENCE = ns.CONFERENCE


def setup(m, service) -> None:
    m.hook(room_message_event(USER, "x"), on_user_x)


def on_user_x(event):
    if not _invites_or_declines(event.payload):
        return None
    event.out.extend(handle(event.room, event.stanza, event.from_jid, event.payload))
    return HANDLED


def _invites_or_declines(x: ET.Element | None) -> bool:
    return x is not None and (x.find(INVITE) is not None or x.find(DECLINE) is not None)


def may_invite(room, occ) -> bool:
    if occ.role == "moderator":
        return True
    return room.config.allow_invites and perm.has_role_privilege(occ.role, "invite")


def _norm(jid: str) -> str:
    try:
        node, domain, res = jid_split(jid)
    except InvalidJID:
        raise StanzaError("jid-malformed", f"invalid JID {jid!r}") from None
    s = f"{node}@{domain}" if node else domain
    return f"{s}/{res}" if res else s


def handle(room, stanza: ET.Element, from_jid: str, x: ET.Element | None = None) -> list[ET.Element]:
    """The invitations and declines of ``x`` (the message's first muc#user ``<x/>``)."""
    if x is None:
        x = stanza.find(q(USER, "x"))
    out: list[ET.Element] = []
    for inv in x.findall(INVITE):
        out.extend(_invite(room, inv, stanza, from_jid))
    for dec in x.findall(DECLINE):
        out.extend(_decline(room, dec, stanza, from_jid))
    return out


def _invite(room, inv: ET.Element, stanza: ET.Element, from_jid: str) -> list[ET.Element]:
    """§7.8.2: the room passes the invitation on, under the sender's message id,
    saying who invites as far as the room's anonymity lets the invitee know (the
    inviter's occupant JID in a semi-anonymous room, unless the invitee would be a
    moderator there; the real JID otherwise, as Prosody), with the room's password,
    a readable body and a ``jabber:x:conference`` copy (XEP-0249) for clients that
    only know that. A members-only room makes the invitee a member (which its
    occupants are told, §9.3)."""
    occ = room.by_jid.get(from_jid)
    if occ is None:
        raise StanzaError("not-acceptable", "only occupants may invite")
    if not may_invite(room, occ):
        raise StanzaError("forbidden", "you may not invite others to this room")
    to = inv.get("to")
    if not to:
        raise StanzaError("bad-request", "an invitation needs a 'to'")
    to = _norm(to)
    invitee = jid_bare(to)
    inviter_aff = room.affiliation(occ.bare)
    if room.config.members_only and not room.config.allow_invites and \
            not perm.has_affiliation_privilege(inviter_aff, "edit-member-list"):
        # §7.8.2: in a members-only room, inviting is for those who may edit the
        # member list
        raise StanzaError("forbidden", "only admins may invite to this members-only room")
    invitee_aff = room.affiliation(invitee)
    if room.config.anonymous and perm.default_role(invitee_aff) != "moderator":
        shown = room.occupant_jid(occ.nick)
    else:
        shown = from_jid
    reason = inv.findtext(REASON)
    out: list[ET.Element] = []
    if room.config.members_only and invitee_aff == "none":
        out.extend(room.set_affiliation(invitee, "member", reason=f"Invited by {shown}"))
    attrs = {"from": room.jid, "to": to}
    if stanza.get("id"):
        attrs["id"] = stanza.get("id")
    m = ET.Element(q(CLIENT, "message"), attrs)
    ux = ET.SubElement(m, q(USER, "x"))
    out_inv = ET.SubElement(ux, INVITE, {"from": shown})
    if reason:
        ET.SubElement(out_inv, REASON).text = reason
    if room.config.password:
        ET.SubElement(ux, q(USER, "password")).text = room.config.password
    body = stanza.findtext(q(CLIENT, "body"))
    ET.SubElement(m, q(CLIENT, "body")).text = body if body else (
        f"{shown} invited you to the room {room.jid}" + (f" ({reason})" if reason else ""))
    conf = ET.SubElement(m, q(CONFERENCE, "x"), {"jid": room.jid})
    if reason:
        conf.set("reason", reason)
        conf.text = reason   # where the old jabber:x:conference had it
    if room.config.password:
        conf.set("password", room.config.password)
    out.append(m)
    return out


def _decline(room, dec: ET.Element, stanza: ET.Element, from_jid: str) -> list[ET.Element]:
    to = dec.get("to")
    if not to:
        raise StanzaError("bad-request", "a decline needs a 'to'")
    to = _norm(to)
    m = ET.Element(q(CLIENT, "message"), {"from": room.jid, "to": to})
    ux = ET.SubElement(m, q(USER, "x"))
    d = ET.SubElement(ux, DECLINE, {"from": jid_bare(from_jid)})
    reason = dec.findtext(REASON)
    if reason:
        ET.SubElement(d, REASON).text = reason
    if stanza.get("id"):
        m.set("id", stanza.get("id"))
    body = stanza.findtext(q(CLIENT, "body"))
    ET.SubElement(m, q(CLIENT, "body")).text = body if body else (
        f"{jid_bare(from_jid)} declined your invite to the room {room.jid}"
        + (f" ({reason})" if reason else ""))
    if jid_bare(to) == room.jid:
        # to the inviter's occupant JID (how a semi-anonymous room named them): to
        # that occupant's sessions, as Prosody
        occ = room.occupants.get(to.split("/", 1)[1]) if "/" in to else None
        if occ is None:
            raise StanzaError("item-not-found", "no such occupant")
        return room.fanout(m, [occ])
    return [m]

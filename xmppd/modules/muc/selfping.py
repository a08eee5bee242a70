"""MUC self-ping (XEP-0410): a client pings its own occupant JID to learn
whether it is still joined. The room answers for its occupants: a result if the
sender is the occupant (or pings another present occupant), ``not-acceptable``
if the sender is not joined, ``item-not-found`` for an absent nick. Pings to the
room's bare JID and to the service itself (XEP-0199) are answered too.
"""
from __future__ import annotations

from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError

from .events import DISCO_INFO, occupant_iq_event, room_iq_event


def setup(m, service) -> None:
    m.add_feature(ns.PING)
    m.hook_iq("get", ns.PING, "ping", service_ping)
    for iq_type in ("get", "set"):
        m.hook(occupant_iq_event(iq_type, ns.PING, "ping"), occupant_ping)
    m.hook(room_iq_event("get", ns.PING, "ping"), room_ping)
    m.hook(DISCO_INFO, info)


def occupant_ping(event):
    answer(event.room, event.stanza, event.room.by_jid.get(event.from_jid), event.nick)
    return event.reply()


def answer(room, stanza, occ, nick: str) -> None:
    """Raises the error a self-ping gets, if it gets one."""
    if stanza.get("type") != "get":
        raise StanzaError("bad-request")
    if occ is None:
        raise StanzaError("not-acceptable", "you are not an occupant of this room")
    if nick != occ.nick and nick not in room.occupants:
        raise StanzaError("item-not-found", "no such occupant")


def service_ping(event) -> None:
    return None   # the empty result


def room_ping(event):
    return event.reply()


def info(event) -> None:
    event.features += [ns.MUC_SELF_PING, ns.PING]


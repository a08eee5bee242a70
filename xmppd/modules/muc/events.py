"""The room events (Prosody's ``muc-*`` hooks): their names, built here and only
here, and the event object their handlers receive.

They are fired on the component host's event bus (``m.host.events``), so a room
feature hooks them with ``m.hook(name, handler, priority)`` in its ``setup(m,
service)`` and unload undoes it. Two kinds:

* fired by the service, awaited (``bus.fire``/``bus.notify``), for a stanza taken
  from a room's queue; a handler may await storage, appends what is to be sent to
  ``event.out`` and returns ``HANDLED``, or raises ``StanzaError`` (the error reply):

  - ``room_iq_event("get", ns, name)`` ``muc-room-iq-get/<ns>:<name>``: an IQ
    request to the room's bare JID; nobody handles it: ``service-unavailable``;
  - ``occupant_iq_event("get", ns, name)`` ``muc-occupant-iq-get/<ns>:<name>``: an
    IQ request to ``room/nick``; nobody handles it: forwarded to the occupant;
  - ``room_message_event(ns, name)`` ``muc-room-message/<ns>:<name>``: a message
    to the room that is neither groupchat nor an error, once per payload element
    until one is handled (invitations, voice requests); nobody: dropped;
  - ``ROOM_PRE_CREATE`` ``muc-room-pre-create``: a presence is about to create the
    room (``event.room`` is new, not yet listed); raising refuses the creation;
  - ``ROOM_CREATED`` ``muc-room-created`` (notify): the new room has its owner in it.

* fired by the room itself, synchronously (``bus.call``: every handler, errors
  logged), where the room builds what it sends; handlers append to ``event.out``:

  - ``OCCUPANT_SESSION_NEW`` ``muc-occupant-session-new``: a session entered
    (a join, another resource under the same nick, or a rejoin); ``event.from_jid``
    is the session, ``event.stanza`` its join presence (history, then the subject);
  - ``DISCO_INFO`` ``muc-disco#info``: the room's disco#info is being built; a
    handler adds to ``event.features`` and ``event.fields`` (the roominfo form).

Groupchat messages never pass through an event: the service hands them to
``Room.handle_groupchat`` directly, in batches (the fan-out hot path).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import stanza as st


def room_event(what: str) -> str:
    """``muc-room-<what>``: something happened to a room (``pre-create``, ``created``)."""
    return f"muc-room-{what}"


def occupant_event(what: str) -> str:
    """``muc-occupant-<what>``: something happened to an occupant (``session-new``)."""
    return f"muc-occupant-{what}"


def room_iq_event(iq_type: str, xmlns: str, name: str) -> str:
    """``muc-room-iq-get/vcard-temp:vCard``: an IQ request to the room's bare JID."""
    return f"muc-room-iq-{iq_type}/{xmlns}:{name}"


def occupant_iq_event(iq_type: str, xmlns: str, name: str) -> str:
    """``muc-occupant-iq-get/urn:xmpp:ping:ping``: an IQ request to ``room/nick``."""
    return f"muc-occupant-iq-{iq_type}/{xmlns}:{name}"


def room_message_event(xmlns: str, name: str) -> str:
    """``muc-room-message/jabber:x:data:x``: a (non-groupchat) message to the room
    carrying that payload."""
    return f"muc-room-message/{xmlns}:{name}"


def disco_info_event() -> str:
    """``muc-disco#info``: the room's disco#info is being assembled."""
    return "muc-disco#info"


ROOM_PRE_CREATE = room_event("pre-create")
ROOM_CREATED = room_event("created")
OCCUPANT_SESSION_NEW = occupant_event("session-new")
DISCO_INFO = disco_info_event()


class RoomEvent:
    """What a room event's handler receives.

    ``service`` the MucService, ``room`` the Room, ``stanza`` what arrived (for an
    IQ, ``payload`` is its child), ``from_jid`` the sender's real full JID, ``nick``
    the nickname addressed (or the occupant's), ``occupant`` the Occupant concerned
    when there is one, ``origin`` the session it came from, and ``out``: the stanzas
    to send, in order, once the room's storage is written. The events a room fires
    itself carry no ``service`` (None) nor ``origin``."""
    __slots__ = ("service", "room", "stanza", "payload", "from_jid", "nick", "occupant",
                 "origin", "out", "created")

    def __init__(self, service: Any, room: Any, stanza: ET.Element | None = None, *,
                 from_jid: str = "", nick: str = "", occupant: Any = None, origin: Any = None,
                 payload: ET.Element | None = None, out: list | None = None,
                 created: bool = False):
        self.service = service
        self.room = room
        self.stanza = stanza
        self.payload = payload
        self.from_jid = from_jid
        self.nick = nick
        self.occupant = occupant
        self.origin = origin
        self.out: list[ET.Element] = [] if out is None else out
        self.created = created

    def reply(self, payload: ET.Element | None = None, *before: ET.Element) -> bool:
        """Answer the IQ: ``before`` (what the request made the room send), then its
        result (with ``payload``); returns HANDLED."""
        self.out.extend(before)
        self.out.append(st.iq_result(self.stanza, payload))
        return HANDLED

    def __repr__(self) -> str:
        return f"<RoomEvent {getattr(self.room, 'jid', None)} from={self.from_jid} nick={self.nick}>"


class InfoEvent:
    """``muc-disco#info``: features (``var`` strings) and roominfo form fields
    (``forms.Field``) that the room's features add."""
    __slots__ = ("room", "features", "fields")

    def __init__(self, room: Any):
        self.room = room
        self.features: list[str] = []
        self.fields: list = []

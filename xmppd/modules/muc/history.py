"""Discussion history sent on join (XEP-0045 §7.2.15): the room keeps its last
``history_length`` messages and the joining client narrows them with
``<history maxchars= maxstanzas= seconds= since=/>``.

Entries are the broadcast template (``from`` = occupant JID, no ``to``); each
delivered copy gets a ``<delay/>`` stamped by the room. The room adds to its
history as it broadcasts (the groupchat path, no event); a session that enters gets
it on ``muc-occupant-session-new``, before the subject.
"""
from __future__ import annotations

import collections
import datetime as dt
import xml.etree.ElementTree as ET

from xmppd.moduleapi import EARLY, serialize
from xmppd.xmpp import ns

from .events import OCCUPANT_SESSION_NEW

HISTORY = ns.q(ns.MUC, "history")
MUC_X = ns.q(ns.MUC, "x")


def setup(m, service) -> None:
    m.hook(OCCUPANT_SESSION_NEW, send_history, EARLY)


def send_history(event) -> None:
    """The entries the joining session asked for (its ``<history/>``), delayed."""
    room = event.room
    join_x = event.stanza.find(MUC_X) if event.stanza is not None else None
    request = join_x.find(HISTORY) if join_x is not None else None
    for entry in room.history.select(request, room.env.now()):
        event.out.append(delivered(entry, event.from_jid, room.jid))


class Entry:
    __slots__ = ("when", "stanza", "chars", "stanza_id")

    def __init__(self, when: float, stanza: ET.Element, chars: int, stanza_id: str | None):
        self.when = when
        self.stanza = stanza
        self.chars = chars
        self.stanza_id = stanza_id


class History:
    def __init__(self, length: int = 20):
        self.entries: collections.deque[Entry] = collections.deque(maxlen=max(length, 0))

    def resize(self, length: int) -> None:
        length = max(length, 0)
        if self.entries.maxlen != length:
            self.entries = collections.deque(self.entries, maxlen=length)

    def add(self, stanza: ET.Element, when: float, stanza_id: str | None = None) -> None:
        if self.entries.maxlen == 0:
            return
        # maxchars counts the characters of the XML of each stanza (§7.2.15);
        # the size of the serialized template is close enough
        chars = len(serialize(stanza))
        self.entries.append(Entry(when, stanza, chars, stanza_id))

    def remove(self, stanza_id: str) -> bool:
        for e in self.entries:
            if e.stanza_id == stanza_id:
                self.entries.remove(e)
                return True
        return False

    def select(self, request: ET.Element | None, now: float) -> list[Entry]:
        """The entries a joining occupant gets, given its ``<history/>`` element."""
        entries = list(self.entries)
        if request is None:
            return entries
        maxstanzas = _int(request.get("maxstanzas"))
        maxchars = _int(request.get("maxchars"))
        seconds = _int(request.get("seconds"))
        since = parse_stamp(request.get("since"))
        if seconds is not None:
            entries = [e for e in entries if e.when >= now - seconds]
        if since is not None:
            entries = [e for e in entries if e.when > since]
        if maxstanzas is not None:
            entries = entries[-maxstanzas:] if maxstanzas > 0 else []
        if maxchars is not None:
            out, total = [], 0
            for e in reversed(entries):
                total += e.chars
                if total > maxchars:
                    break
                out.append(e)
            entries = out[::-1]
        return entries


def delivered(entry: Entry, to: str, room_jid: str) -> ET.Element:
    """A copy of a history entry for ``to``, with its ``<delay/>``."""
    src = entry.stanza
    el = ET.Element(src.tag, src.attrib)
    el.set("to", to)
    el.extend(list(src))
    ET.SubElement(el, ns.q(ns.DELAY, "delay"), {"from": room_jid, "stamp": stamp(entry.when)})
    return el


def stamp(when: float) -> str:
    """XEP-0082 date-time in UTC."""
    d = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{d.microsecond // 1000:03d}Z" if d.microsecond else "Z")


def parse_stamp(s: str | None) -> float | None:
    if not s:
        return None
    try:
        d = dt.datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


def _int(s: str | None) -> int | None:
    if s is None:
        return None
    try:
        n = int(s)
    except ValueError:
        return None
    return max(n, 0)

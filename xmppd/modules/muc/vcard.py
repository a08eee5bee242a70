"""Room avatars (XEP-0486): the room's vCard-temp, set by its owners.

Anyone may fetch the vCard of a room; when an owner changes it, occupants get a
presence from the room's bare JID carrying the new photo hash
(``vcard-temp:x:update``), and the hash appears in the room info form.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET

from xmppd.xmpp import forms, ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare as jid_bare

from .events import DISCO_INFO, room_iq_event
from .room import PRESENCE

q = ns.q
VCARD, VCARD_UPDATE = ns.VCARD, ns.VCARD_UPDATE
MAX_VCARD_CHARS = 256 * 1024


def setup(m, service) -> None:
    m.hook(room_iq_event("get", VCARD, "vCard"), on_get)
    m.hook(room_iq_event("set", VCARD, "vCard"), on_set)
    m.hook(DISCO_INFO, info)


def on_get(event):
    return event.reply(get(event.room))


def on_set(event):
    return event.reply(None, *set_(event.room, event.payload, event.from_jid))


def info(event) -> None:
    event.features.append(VCARD)
    if event.room.avatar_hash:
        event.fields.append(forms.Field("muc#roominfo_avatarhash", None, event.room.avatar_hash,
                                        label="Avatar hash"))


def get(room) -> ET.Element:
    if room.vcard:
        return ET.fromstring(room.vcard)
    return ET.Element(q(VCARD, "vCard"))


def photo_hash(vcard: ET.Element) -> str | None:
    binval = vcard.findtext(f"{q(VCARD, 'PHOTO')}/{q(VCARD, 'BINVAL')}")
    if not binval:
        return None
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        raise StanzaError("bad-request", "the photo is not valid base64") from None
    return hashlib.sha1(data).hexdigest()


def set_(room, payload: ET.Element, from_jid: str) -> list[ET.Element]:
    if room.affiliation(jid_bare(from_jid)) != "owner":
        raise StanzaError("forbidden", "only owners may change the room's vCard")
    text = ET.tostring(payload, encoding="unicode")
    if len(text) > MAX_VCARD_CHARS:
        raise StanzaError("not-acceptable", "this vCard is too large")
    new_hash = photo_hash(payload)
    room.vcard = text if len(payload) else None
    room.dirty = True
    changed = new_hash != room.avatar_hash
    room.avatar_hash = new_hash
    if not changed:
        return []
    p = ET.Element(PRESENCE, {"from": room.jid})
    x = ET.SubElement(p, q(VCARD_UPDATE, "x"))
    photo = ET.SubElement(x, q(VCARD_UPDATE, "photo"))
    photo.text = new_hash or None
    return room.fanout(p)

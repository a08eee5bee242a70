"""Occupant identifiers (XEP-0421): a stable, opaque id per real bare JID and room.

The id is an HMAC of the occupant's bare JID under a secret the room keeps (and
persists), so it is the same across joins and nick changes, differs between
rooms, and reveals nothing about the JID. Ids that clients put in their own
stanzas are removed before the room adds its own. The room puts the id on every
presence and message it sends (one element per occupant, made on entry, shared by
all the copies): that is the fan-out path, so there is no event there; the
feature only says so in disco#info.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ET

from xmppd.xmpp import ns

from .events import DISCO_INFO

TAG = ns.q(ns.OCCUPANT_ID, "occupant-id")


def setup(m, service) -> None:
    m.hook(DISCO_INFO, info)


def info(event) -> None:
    event.features.append(ns.OCCUPANT_ID)


def new_secret() -> str:
    return secrets.token_hex(16)


def occupant_id(secret: str, bare_jid: str) -> str:
    digest = hmac.new(secret.encode(), bare_jid.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def element(oid: str) -> ET.Element:
    return ET.Element(TAG, {"id": oid})

"""Occupant identifiers (XEP-0421): a stable, opaque id per real bare JID and room.

The id is an HMAC of the occupant's bare JID under a secret the room keeps (and
persists), so it is the same across joins and nick changes, differs between
rooms, and reveals nothing about the JID. Ids that clients put in their own
stanzas are removed before the room adds its own.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ET

from .ns import OCCUPANT_ID, q

TAG = q(OCCUPANT_ID, "occupant-id")


def new_secret() -> str:
    return secrets.token_hex(16)


def occupant_id(secret: str, bare_jid: str) -> str:
    digest = hmac.new(secret.encode(), bare_jid.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def element(oid: str) -> ET.Element:
    return ET.Element(TAG, {"id": oid})

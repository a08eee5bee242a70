"""Tombstones of destroyed rooms (Prosody's ``muc_tombstones``): when a
persistent room is destroyed, its name stays taken for ``muc_tombstone_expiry``
seconds. Anything sent to it in that time, except errors, gets a ``gone`` error
(RFC 6120 §8.3.3.5) with the reason given when it was destroyed and, when an
alternate venue was named, ``xmpp:venue?join`` in the ``<gone/>`` element, so
clients and bookmarks learn where the room went; a server admin's join, or the
first stanza after the expiry, removes the tombstone (and may create the room
anew).

Storage: the ``muc_tombstones`` keyval store, one value per room node:
``{"until": timestamp, "reason": str|None, "alternate": str|None}``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError


class Gone(StanzaError):
    """``gone``, whose element carries the new address (RFC 6120 §8.3.3.5)."""

    def __init__(self, text: str | None, uri: str | None):
        super().__init__("gone", text)
        self.uri = uri

    def to_element(self, by: str | None = None) -> ET.Element:
        el = super().to_element(by)
        if self.uri:
            el.find(f"{{{ns.STANZAS_ERR}}}gone").text = self.uri
        return el


class Tombstones:
    def __init__(self, store, ttl: float, now):
        self.store = store
        self.ttl = ttl
        self.now = now

    async def leave(self, room) -> None:
        """A persistent room was destroyed: its tombstone."""
        await self.store.set(room.node, {"until": self.now() + self.ttl,
                                         "reason": room.destroy_reason,
                                         "alternate": room.destroy_alternate})

    async def check(self, node: str, stanza: ET.Element, bare: str, admins) -> None:
        """Raise :class:`Gone` for a stanza to the tombstone of ``node``; an expired
        tombstone, or one a server admin joins, is removed."""
        t = await self.store.get(node)
        if t is None:
            return
        admin_join = (bare in admins and stanza.tag == ns.q(ns.CLIENT, "presence")
                      and stanza.get("type") is None)
        if t.get("until", 0) <= self.now() or admin_join:
            await self.store.delete(node)
            return
        alternate = t.get("alternate")
        raise Gone(t.get("reason"), f"xmpp:{alternate}?join" if alternate else None)

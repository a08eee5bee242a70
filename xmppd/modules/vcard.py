"""vcard-temp (XEP-0054): each account's vCard, stored as XML.

* get with no 'to' (or 'to' the own bare JID): the own vCard, or an empty
  ``<vCard/>`` when none is stored;
* get to another account's bare JID: its vCard, ``item-not-found`` when it has
  none (or does not exist);
* set: own vCard only (``forbidden`` otherwise); an empty ``<vCard/>`` is stored
  as it is, as Prosody does, so whoever reads it next gets that empty vCard (a
  client that clears a profile and reads it back gets what it set, not
  ``item-not-found``); larger than ``vcard_max_size`` → ``not-acceptable``.
* get to the server: ``item-not-found`` (the server has no vCard).

What other modules use (``m.depends("vcard", soft=True).get()``) is a
:class:`VCards`: the accounts' vCards as elements. A module that wants to see
a vCard an account sets before it is stored (pep publishes its photo as the
avatar) adds an item of kind :data:`BEFORE_SET`: ``func(user, vcard)``,
awaited once the vCard has been accepted. An account with no stored vCard
may still have a profile elsewhere (pep's vCard4, nickname and avatar, as
Prosody's ``vcard_legacy`` keeps them): items of kind :data:`FALLBACK`,
``func(user, requester_jid)`` → a ``<vCard/>`` or None, answer the get then.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial

from xmppd.moduleapi import Option
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.stanza import from_xml, to_xml

PROTOCOLS = ["XEP-0054"]
OPTIONS = [
    Option("vcard_max_size", "integer", 32768, "both",
           "Largest vCard (serialized, in bytes) an account may store; photos count.", min=0, limit=True),
]
STORE = "vcard"
VCARD = ns.q(ns.VCARD, "vCard")
BEFORE_SET = "vcard-before-set"
FALLBACK = "vcard-fallback"


def is_empty(vcard: ET.Element) -> bool:
    return len(vcard) == 0 and not (vcard.text or "").strip()


class VCards:
    """The accounts' vCards (the ``vcard`` keyval store of the host)."""

    def __init__(self, m):
        self.m = m
        self.store = m.open_store(STORE, "keyval")

    async def get(self, user: str) -> ET.Element | None:
        """The stored vCard of ``user``, None when there is none."""
        stored = await self.store.get(user)
        return from_xml(stored) if stored is not None else None

    async def set(self, user: str, vcard: ET.Element) -> None:
        """Store ``vcard`` as ``user``'s (an empty one too). No size check: that is
        for what clients send."""
        await self.store.set(user, to_xml(vcard))

    async def delete(self, user: str) -> None:
        await self.store.delete(user)


# -- IQ handlers -------------------------------------------------------------------

async def get_vcard(vcards: VCards, event):
    vcard = await vcards.get(event.user)
    if vcard is not None:
        return vcard
    for fallback in vcards.m.items(FALLBACK):
        vcard = await fallback(event.user, event.from_bare)
        if vcard is not None:
            return vcard
    if event.own:
        return ET.Element(VCARD)
    raise StanzaError("item-not-found")


async def set_vcard(vcards: VCards, event):
    """The account's own vCard (the own-account check is declared at the hook)."""
    vcard = event.payload
    if not is_empty(vcard):
        limit = vcards.m.get_option("vcard_max_size")
        if len(to_xml(vcard).encode()) > limit:
            raise StanzaError("not-acceptable", f"vCard larger than {limit} bytes")
    for before in vcards.m.items(BEFORE_SET):
        await before(event.user, vcard)
    await vcards.set(event.user, vcard)
    return None


def host_vcard(event):
    raise StanzaError("item-not-found")


def setup(m) -> None:
    vcards = VCards(m)
    m.provide(vcards)
    m.add_feature(ns.VCARD)
    m.add_feature(ns.VCARD, to="account")
    m.hook_iq("get", ns.VCARD, "vCard", partial(get_vcard, vcards), to=("bare",))
    m.hook_iq("set", ns.VCARD, "vCard", partial(set_vcard, vcards), to=("bare",),
              own_account=True)
    m.hook_iq("get", ns.VCARD, "vCard", host_vcard)

"""Offline message storage (XEP-0160) with delay stamps (XEP-0203).

Chat and normal messages for an account that has no available resource with a
non-negative priority are appended, in order, to the user's ``offline`` archive
store with a ``<delay xmlns='urn:xmpp:delay'/>`` stamp. They are sent, in the
same order, when a resource of the account sends its initial presence with a
non-negative priority, and then deleted. Beyond ``offline_max_messages`` a
message is not stored and the sender gets ``service-unavailable`` (from the
message module's fallback).

Not stored: errors, groupchat, headline (never reach ``message/offline``),
messages carrying the XEP-0334 ``<no-store/>`` hint (bounced), and body-less
chat-state notifications (XEP-0085 §5.6: silently dropped).
"""
from __future__ import annotations

import math
import time

from xmppd.moduleapi import EARLY, HANDLED, InlineFeature, Option, stanza_event
from xmppd.xmpp import ns
from xmppd.xmpp.stanza import add_delay, copy as copy_element, from_xml, has_body, parse_priority, to_xml

DRAIN_EVERY = 50   # messages sent before waiting for the client to take them
PROTOCOLS = ["XEP-0160", "XEP-0203", "XEP-0334"]
OPTIONS = [
    Option("offline_max_messages", "integer", 1000, "both",
           "Most offline messages stored per account; beyond it messages are bounced "
           "with service-unavailable. 0 stores none.", min=0, limit=True),
]
STORE = "offline"
NO_STORE = f"{{{ns.HINTS}}}no-store"
_CHATSTATE = "{" + ns.CHATSTATES + "}"


def storable(stanza) -> bool | None:
    """True: store; False: bounce; None: drop silently."""
    t = stanza.get("type") or "normal"
    if t not in ("chat", "normal"):
        return False
    if stanza.find(NO_STORE) is not None:
        return False
    if not has_body(stanza):
        if any(child.tag.startswith(_CHATSTATE) for child in stanza):
            return None
    return True


class Offline:
    """One host's offline messages: stored in order, delivered in order."""

    def __init__(self, host, store, option, log):
        self.host = host
        self.store = store
        self.option = option      # option(name) -> its value on this host
        self.log = log

    async def store_message(self, sev):
        """``message/offline``: nobody can take the message now."""
        stanza = sev.stanza
        verdict = storable(stanza)
        if verdict is None:
            return HANDLED
        if not verdict or not sev.to_node:
            return None
        limit = self.option("offline_max_messages")
        if await self.store.count(sev.to_node) >= limit:
            self.log.info("offline quota (%d) reached for %s@%s", limit, sev.to_node, self.host.name)
            return None
        now = time.time()
        out = add_delay(copy_element(stanza), self.host.name, now)
        await self.store.append(sev.to_node, to_xml(out), with_jid=sev.from_bare or None, when=now)
        return HANDLED

    async def deliver(self, session) -> None:
        """``resource-available``: the stored messages, oldest first, then deleted."""
        if session.priority < 0 or session.closing:
            return
        user = session.username
        store = self.store
        items = await store.query(user)
        if not items:
            return
        for i, item in enumerate(items, 1):
            try:
                session.send(from_xml(item.value))
            except Exception:  # a damaged item must not stop the others
                self.log.exception("offline message %s of %s is unreadable; dropped", item.key, user)
            if i % DRAIN_EVERY == 0:
                await session.drained()   # a long backlog goes as fast as the client reads
                if session.closing:
                    return
        if session.closing:
            return  # gone while we read: keep them for the next login
        # Everything read is older than anything appended from now on.
        await store.delete(user, before_when=math.nextafter(items[-1].when, math.inf))

    async def bound(self, session, _el) -> None:
        """A Bind 2 binding (XEP-0386): the client catches up from the archive, so
        the stored messages the archive has (those stamped with the account's
        ``<stanza-id/>``) go without being sent; the others wait for presence."""
        user = session.username
        items = await self.store.query(user)
        archived = f"{{{ns.SID}}}stanza-id"
        gone = 0
        for item in items:
            try:
                el = from_xml(item.value)
            except Exception:
                continue
            if any(sid.get("by") == session.bare_jid for sid in el.iter(archived)):
                await self.store.delete(user, key=item.key)
                gone += 1
        if gone:
            self.log.debug("%s: %d offline messages left to the archive", session.bare_jid, gone)
        return None

    def priority_raised(self, sev):
        """An available resource going from a negative to a non-negative priority
        gets the stored messages too (as at an initial presence)."""
        sess = sev.origin
        if (getattr(sess, "kind", None) != "c2s" or sev.stanza.get("type") is not None
                or not sess.available or sess.priority >= 0):
            return None
        if parse_priority(sev.stanza) >= 0:
            # runs once the presence module has recorded the new priority
            self.host.server.spawn(self.deliver(sess))
        return None


def setup(m) -> None:
    offline = Offline(m.host, m.open_store(STORE, "archive"), m.get_option, m.log)
    m.add_feature(ns.MSGOFFLINE)
    m.hook("message/offline", offline.store_message)
    m.hook("resource-available", offline.deliver)
    m.hook(stanza_event("presence", "broadcast"), offline.priority_raised, EARLY)
    m.add_item("inline-feature", InlineFeature(ns.MSGOFFLINE, "bound", offline.bound))

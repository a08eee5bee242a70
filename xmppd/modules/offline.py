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

import asyncio
import math
import time

from xmppd.config.options import Option
from xmppd.core import events as ev

from xmppd.xmpp.stanza import add_delay, copy as copy_element, from_xml, parse_priority, to_xml

PROTOCOLS = ["XEP-0160", "XEP-0203", "XEP-0334"]
OPTIONS = [
    Option("offline_max_messages", "integer", 1000, "both",
           "Most offline messages stored per account; beyond it messages are bounced "
           "with service-unavailable. 0 stores none.", min=0),
]
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
STORE = "offline"


def _storable(stanza) -> bool | None:
    """True: store; False: bounce; None: drop silently."""
    t = stanza.get("type") or "normal"
    if t not in ("chat", "normal"):
        return False
    if stanza.find(f"{{{NS_HINTS}}}no-store") is not None:
        return False
    if stanza.find("{jabber:client}body") is None and stanza.find("body") is None:
        if any(child.tag.startswith(f"{{{NS_CHATSTATES}}}") for child in stanza):
            return None
    return True


def setup(m) -> None:
    host = m.host
    store = m.open_store(STORE, "archive")
    m.add_feature("msgoffline")

    async def store_message(sev):
        stanza = sev.stanza
        verdict = _storable(stanza)
        if verdict is None:
            return ev.HANDLED
        if not verdict or not sev.to_node:
            return None
        limit = m.get_option("offline_max_messages")
        if await store.count(sev.to_node) >= limit:
            m.log.info("offline quota (%d) reached for %s@%s", limit, sev.to_node, host.name)
            return None
        now = time.time()
        out = add_delay(copy_element(stanza), host.name, now)
        await store.append(sev.to_node, to_xml(out), with_jid=sev.from_bare or None, when=now)
        return ev.HANDLED

    async def deliver(session):
        if session.priority < 0 or session.closing:
            return
        user = session.username
        items = await store.query(user)
        if not items:
            return
        for item in items:
            try:
                session.send(from_xml(item.value))
            except Exception:  # a damaged item must not stop the others
                m.log.exception("offline message %s of %s is unreadable; dropped", item.key, user)
        if session.closing:
            return  # gone while we read: keep them for the next login
        # Everything read is older than anything appended from now on.
        await store.delete(user, before_when=math.nextafter(items[-1].when, math.inf))

    def priority_raised(sev):
        # An available resource going from a negative to a non-negative priority
        # gets the stored messages too (as at an initial presence).
        sess = sev.origin
        if (getattr(sess, "kind", None) != "c2s" or sev.stanza.get("type") is not None
                or not sess.available or sess.priority >= 0):
            return None
        if parse_priority(sev.stanza) >= 0:
            # runs once the presence module has recorded the new priority
            asyncio.get_running_loop().create_task(deliver(sess))
        return None

    m.hook("message/offline", store_message)
    m.hook("resource-available", deliver)
    m.hook(ev.stanza_event("presence", "broadcast"), priority_raised, ev.EARLY)

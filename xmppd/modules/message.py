"""Message delivery to local accounts (RFC 6121 §8.5).

Runs last on ``message/bare`` and ``message/full`` so that feature modules
(offline storage, carbons, archives) can act first. When nobody is online the
``message/offline`` event is fired; a module that stores the message returns
HANDLED, otherwise the sender gets ``service-unavailable``.

What a resource that went offline never took (``resource-undelivered``: the
unacknowledged queue of stream management, or what a client that did not read was
never able to read) is delivered again: a message as if addressed to the bare JID
(another resource, or offline storage), with a delay stamp; an IQ request gets
``recipient-unavailable``; the rest is dropped.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED, LAST, stanza_event
from xmppd.xmpp import ns, stanza as st
from xmppd.xmpp.errors import StanzaError

# copies and results whose originals are elsewhere: never delivered again
NOT_REDELIVERED = (f"{{{ns.CARBONS}}}", "{" + ns.MAM.rpartition(":")[0] + ":")

PROTOCOLS = ["RFC 6121 §8.5"]
OPTIONS: list = []


async def to_bare(sev):
    """``message/bare`` (last): RFC 6121 §8.5.2 for a local account."""
    host = sev.host
    stanza = sev.stanza
    t = stanza.get("type") or "normal"
    if t == "error":
        return HANDLED
    # a connected account exists: skip the storage lookup on the hot path
    if not host.sessions.get(sev.to_node) and not await host.server.accounts.exists(host.name, sev.to_node):
        if t != "headline":
            raise StanzaError("service-unavailable")
        return HANDLED
    sessions = host.deliverable_sessions(sev.to_node)
    if t == "groupchat":
        raise StanzaError("service-unavailable")
    if sessions:
        if t == "headline":
            sessions = [s for s in host.sessions_of(sev.to_node).values() if s.available and s.priority >= 0]
        for s in sessions:
            s.send(stanza)
        return HANDLED
    if t == "headline":
        return HANDLED
    if await host.events.fire("message/offline", sev):
        return HANDLED
    raise StanzaError("service-unavailable")


def to_full(sev):
    """``message/full`` (last). The hot path: a plain function (no coroutine) when
    the resource is online."""
    sess = sev.host.get_session(sev.to_node, sev.to_resource)
    if sess is not None:
        sess.send(sev.stanza)
        return HANDLED
    return to_absent_resource(sev)


async def to_absent_resource(sev):
    """RFC 6121 §8.5.3.2: a chat goes to the bare JID, the rest is refused or dropped."""
    t = sev.stanza.get("type") or "normal"
    if t == "chat":
        return await to_bare(sev)
    if t in ("normal", "groupchat"):
        raise StanzaError("service-unavailable")
    return HANDLED  # headline, error: silently ignored


def redelivery(stanza: ET.Element, bare_jid: str, domain: str, when: float) -> ET.Element | None:
    """What an undelivered message becomes: a copy to the bare JID with a delay
    stamp; None when it is not delivered again (errors, groupchat, headlines,
    carbon copies, archive results)."""
    t = stanza.get("type") or "normal"
    if t in ("error", "groupchat", "headline"):
        return None
    if any(c.tag.startswith(NOT_REDELIVERED) for c in stanza):
        return None
    out = st.copy(stanza, to=bare_jid)
    if out.find(f"{{{ns.DELAY}}}delay") is None:
        st.add_delay(out, domain, when)
    return out


async def undelivered(host, event: dict) -> None:
    """``resource-undelivered``: ``{"session", "stanzas", "when"?}``."""
    session = event["session"]
    when = event.get("when") or time.time()
    router = host.server.router
    for stanza in event["stanzas"]:
        kind = st.kind_of(stanza)
        if kind == "message":
            out = redelivery(stanza, session.bare_jid, host.name, when)
            if out is not None:
                await router.route(out, host)
        elif kind == "iq" and stanza.get("type") in ("get", "set"):
            await router.bounce(stanza, StanzaError("recipient-unavailable"))


def setup(m) -> None:
    m.hook(stanza_event("message", "bare"), to_bare, LAST)
    m.hook(stanza_event("message", "full"), to_full, LAST)
    m.hook("resource-undelivered", lambda event: undelivered(m.host, event))

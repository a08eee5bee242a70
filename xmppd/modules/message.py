"""Message delivery to local accounts (RFC 6121 §8.5).

Runs last on ``message/bare`` and ``message/full`` so that feature modules
(offline storage, carbons, archives) can act first. When nobody is online the
``message/offline`` event is fired; a module that stores the message returns
HANDLED, otherwise the sender gets ``service-unavailable``.
"""
from __future__ import annotations

from xmppd.moduleapi import HANDLED, LAST, stanza_event
from xmppd.xmpp.errors import StanzaError

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


def setup(m) -> None:
    m.hook(stanza_event("message", "bare"), to_bare, LAST)
    m.hook(stanza_event("message", "full"), to_full, LAST)

"""The router: every stanza, from a client, a module or a peer, goes through ``route``.

It parses the envelope (to/from/type) once, picks the target (local host,
component, or remote), and fires ``<kind>/<to_type>`` on the target host. What no
handler takes gets the RFC 6120 default: IQ requests are dispatched by payload
(``iq-get/host/urn:xmpp:ping:ping``) and answered with ``service-unavailable``
if nobody handles them; nothing ever answers an error or a result.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from ..xmpp.errors import StanzaError
from ..xmpp.jid import InvalidJID, split as jid_split
from . import events as ev
from ..xmpp import stanza as st
from .events import HandlerCrashed

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("xmppd.router")


class StanzaEv:
    """What stanza handlers receive. Addresses are normalised strings."""
    __slots__ = ("stanza", "origin", "host", "kind", "to_type", "to_node", "to_domain",
                 "to_resource", "to_bare", "from_jid", "from_bare", "payload")

    def __init__(self, stanza, origin, host, kind, to_type, node, domain, resource, from_jid, from_bare):
        self.stanza = stanza
        self.origin = origin
        self.host = host
        self.kind = kind
        self.to_type = to_type
        self.to_node = node
        self.to_domain = domain
        self.to_resource = resource
        self.to_bare = f"{node}@{domain}" if node else domain
        self.from_jid = from_jid
        self.from_bare = from_bare
        self.payload = None

    def __repr__(self) -> str:
        return f"<StanzaEv {self.kind}/{self.to_type} to={self.to_bare}/{self.to_resource} from={self.from_jid}>"


# event names per (kind, to_type), built once by the helpers in events.py
_TO_TYPES = ("host", "bare", "full", "broadcast", "remote")
_EVENTS = {(k, t): ev.stanza_event(k, t) for k in st.KINDS for t in _TO_TYPES}
_PRE_EVENTS = {(k, t): ev.stanza_event(k, t, pre=True) for k in st.KINDS for t in _TO_TYPES}


class Router:
    def __init__(self, server: "Server"):
        self.server = server

    async def route(self, stanza: ET.Element, origin: Any = None) -> None:
        """Deliver ``stanza``; errors in handling become error replies to its sender."""
        kind = st.kind_of(stanza)
        if kind is None:
            log.debug("dropping non-stanza %s", stanza.tag)
            return
        to = stanza.get("to")
        from_jid = stanza.get("from") or ""
        if from_jid:
            try:
                fn, fd, _ = jid_split(from_jid)
                from_bare = f"{fn}@{fd}" if fn else fd
            except InvalidJID:
                return  # a stanza with a bad from can't be answered; drop it
        else:
            from_bare = ""
        if not to:
            # RFC 6120 §10.3: no 'to' means the sender's own account (or the server
            # for an IQ from a peer). Presence without 'to' is a broadcast.
            if not from_bare:
                return
            node, domain, resource = fn, fd, ""
            to_type = "broadcast" if kind == "presence" else ("bare" if fn else "host")
        else:
            try:
                node, domain, resource = jid_split(to)
            except InvalidJID:
                await self.bounce(stanza, StanzaError("jid-malformed"), origin)
                return
            to_type = "full" if resource else ("bare" if node else "host")

        host = self.server.hosts.get(domain)
        sev = StanzaEv(stanza, origin, host, kind, to_type, node, domain, resource, from_jid, from_bare)
        try:
            # Outbound: the sender's own host sees the stanza first
            # (``pre-message/bare`` ...): blocking, carbons of sent messages, archives.
            if getattr(origin, "kind", None) == "c2s":
                bus = origin.host.events
                name = _PRE_EVENTS[kind, to_type]
                if bus.has(name) and await bus.fire(name, sev):
                    return
            if host is None:
                await self.route_remote(sev)
                return
            bus = host.events
            name = _EVENTS[kind, to_type]
            if bus.has(name) and await bus.fire(name, sev):
                return
            await self.default(sev)
        except StanzaError as err:
            await self.bounce(stanza, err, origin)
        except HandlerCrashed:
            await self.bounce(stanza, StanzaError("internal-server-error"), origin)

    async def default(self, sev: StanzaEv) -> None:
        stanza = sev.stanza
        if sev.kind == "iq":
            t = stanza.get("type")
            if t in ("get", "set"):
                if sev.to_type != "full":
                    payload = st.first_child(stanza)
                    if payload is None:
                        raise StanzaError("bad-request", "IQ request without payload")
                    xmlns, name = st.split_tag(payload.tag)
                    sev.payload = payload
                    if await sev.host.events.fire(ev.iq_event(t, sev.to_type, xmlns, name), sev):
                        return
                    raise StanzaError("service-unavailable")
                sess = sev.host.get_session(sev.to_node, sev.to_resource)
                if sess is None:
                    raise StanzaError("service-unavailable")
                sess.send(stanza)
                return
            if t in ("result", "error") and sev.to_type == "full":
                sess = sev.host.get_session(sev.to_node, sev.to_resource)
                if sess is not None:
                    sess.send(stanza)
                return
            if t not in ("get", "set", "result", "error"):
                raise StanzaError("bad-request", "invalid IQ type")
            return
        if sev.to_type == "full":
            sess = sev.host.get_session(sev.to_node, sev.to_resource)
            if sess is not None:
                sess.send(stanza)
                return
        if sev.kind == "message" and stanza.get("type") not in ("error", "headline", "groupchat"):
            raise StanzaError("service-unavailable")
        # presence and the rest: silently dropped when nobody takes them

    async def route_remote(self, sev: StanzaEv) -> None:
        """Stanzas for domains not served here: s2s takes them when it is loaded."""
        sev.to_type = "remote"
        if await self.server.events.fire("route/remote", sev):
            return
        await self.bounce(sev.stanza, StanzaError("remote-server-not-found"), sev.origin)

    async def bounce(self, stanza: ET.Element, err: StanzaError, origin: Any = None) -> None:
        """Send the error reply for ``stanza``, unless it may not be answered. A stanza
        with no 'to' was handled on behalf of the sender's account (RFC 6120 §10.3):
        its error has no 'from' either (§8.1.2.1), so a client that checks who
        answered accepts it."""
        if not st.may_answer_with_error(stanza) or not stanza.get("from"):
            return
        await self.route(st.error_reply(stanza, err), None)

"""External components (XEP-0114, ``jabber:component:accept``).

A component (a gateway, a bot, a push app server) connects to
``component_ports`` (default 5347, on ``component_interfaces``, loopback by
default), names its domain in the stream header and proves it knows the
``component_secret`` with a SHA-1 handshake over the stream id. Then every
stanza for that domain goes to it, and it may send from any address in it.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET

from ..xmpp import ns
from ..xmpp import stanza as st
from ..xmpp.errors import StreamError
from ..xmpp.jid import InvalidJID, nameprep, split
from ..core import trace as _trace
from ..stream import StreamOpen
from .c2s import C2SSession

log = logging.getLogger("xmppd.component")

HANDSHAKE = f"{{{ns.COMPONENT}}}handshake"
_MESSAGE, _PRESENCE, _IQ = "{jabber:client}message", "{jabber:client}presence", "{jabber:client}iq"


class ComponentSession(C2SSession):
    kind = "component"
    stream_ns = ns.COMPONENT

    def __repr__(self) -> str:
        return f"<Component {self.host.name if self.host else '?'} {self.id}>"

    async def _on_stream_open(self, so: StreamOpen) -> None:
        to = so.attrs.get("to")
        host = None
        try:
            host = self.server.hosts.get(nameprep(to)) if to else None
        except InvalidJID:
            pass
        if host is None or host.kind != "component" or host.component_module:
            self._send_header(None)
            raise StreamError("host-unknown", f"no external component {to!r} is configured here")
        self.host = host
        self._send_header(host.name)
        if so.default_ns != ns.COMPONENT:
            raise StreamError("invalid-namespace", "expected jabber:component:accept")

    def trace_identity(self) -> tuple | None:
        return (None, (self.host.name,), None) if self.authenticated else None

    async def _on_element(self, el: ET.Element) -> None:
        if self.trace is not None:
            _trace.received(self, el, ns.COMPONENT)
        if not self.authenticated:
            if el.tag != HANDSHAKE:
                raise StreamError("not-authorized", "handshake first")
            secret = self.host.get_option("component_secret")
            if not secret:
                raise StreamError("not-authorized", "no component_secret is configured for this component")
            expected = hashlib.sha1((self.id + str(secret)).encode()).hexdigest()
            if not hmac.compare_digest(expected, (el.text or "").strip().lower()):
                raise StreamError("not-authorized", "wrong handshake")
            # the component module takes the connection (or says it has one already)
            if not await self.host.events.fire("component-connected", self):
                raise StreamError("internal-server-error", "nothing takes this component's stanzas")
            self.authenticated = True
            if self._timeout:
                self._timeout.cancel()
                self._timeout = None
            self.send_nonza(ET.Element(HANDSHAKE))
            log.info("component %s connected from %s", self.host.name, self.peer)
            self.server.tracer.attach(self)
            return
        if st.kind_of(el) is None:
            raise StreamError("unsupported-stanza-type", f"unknown element {el.tag}")
        st.to_client_ns(el, ns.COMPONENT)
        tag = el.tag
        if tag == _MESSAGE:
            self.counts.message_in += 1
        elif tag == _PRESENCE:
            self.counts.presence_in += 1
        elif tag == _IQ:
            self.counts.iq_in += 1
        frm = el.get("from")
        try:
            if not frm or split(frm)[1] != self.host.name:
                raise StreamError("invalid-from", f"components send from {self.host.name}")
        except InvalidJID:
            raise StreamError("invalid-from", "malformed from") from None
        if not el.get("to"):
            raise StreamError("improper-addressing", "a stanza from a component needs a 'to'")
        await self.server.router.route(el, self)

    def _overflow(self) -> None:
        """A component that does not read: what it never took is bounced."""
        untaken = self._untaken()
        super()._overflow()
        self._undeliverable(untaken)

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        if self.host is not None and self.authenticated:
            self.host.events.call("component-disconnected", self)
            log.info("component %s disconnected", self.host.name)


def register(server) -> None:
    """The listener for external components: ``component_ports`` (5347) on
    ``component_interfaces`` (loopback), when a Component without a module is configured."""
    from ..core.modules import Listener
    server.add_item("listener", Listener(
        "component", lambda: ComponentSession(server), "component_ports", [5347],
        interfaces_option="component_interfaces", default_interfaces=["127.0.0.1", "::1"],
        when=lambda srv: any(h.kind == "component" and not h.component_module
                             for h in srv.hosts.values())))

"""Client-to-server streams (RFC 6120): negotiation state machine on an asyncio Protocol.

Bytes go to the sans-I/O ``StreamParser``; its events are queued and handled in
order by one drain task per session (never a task per stanza). Reading pauses
while the queue is long. Writes are coalesced per event-loop turn.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
import secrets
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ..xmpp import ns
from ..xmpp.errors import SASLFailure, StanzaError, StreamError
from ..xmpp.jid import InvalidJID, nameprep, resourceprep, split as jid_split
from ..core import events as ev
from ..core import trace as _trace
from ..xmpp import stanza as st
from ..stream import StanzaEvent, StreamClose, StreamOpen, StreamParser, serialize, stream_header
from .base import XMLStreamProtocol
from . import sasl2 as _sasl2

if TYPE_CHECKING:
    from ..core.host import Host
    from ..core.server import Server

log = logging.getLogger("xmppd.c2s")

MAX_SASL_FAILURES = 5


_MESSAGE = "{jabber:client}message"
_PRESENCE = "{jabber:client}presence"
_IQ = "{jabber:client}iq"
_SESSION = f"{{{ns.SESSION}}}session"


def _redeliverable(el: ET.Element) -> bool:
    """A stanza that goes elsewhere if the client never takes it (a one-to-one
    message, an IQ request); presence, groupchat and headlines do not."""
    tag = el.tag
    if tag == _MESSAGE:
        return el.get("type") not in ("groupchat", "headline", "error")
    return tag == _IQ and el.get("type") in ("get", "set")


class C2SSession(XMLStreamProtocol):
    """One client connection and, once bound, one resource of an account."""

    kind = "c2s"
    stream_ns = ns.CLIENT
    can_starttls = True     # not over WebSocket: the HTTP connection has its TLS
    # typed fields only (and less memory per idle connection)
    __slots__ = (
        "server", "direct_tls", "transport", "parser", "id", "peer", "host", "lang", "tls",
        "header_sent", "authenticated", "username", "resource", "full_jid", "bare_jid", "sasl",
        "sasl_mechanism", "sasl_failures", "closed", "closing", "available", "presence",
        "priority", "directed", "interested", "state", "send_filters", "delivery_hooks",
        "inbound_hooks", "lost_hooks", "hibernating", "replaced", "clean_close",
        "closed_by_server", "_queue", "_drainer", "_out", "_flush_scheduled", "_paused",
        "_timeout", "address", "_bucket", "_held", "_counted", "_out_size", "_written",
        "_write_paused", "_send_limit", "_track", "_prune_handle", "_since_check", "_over_since",
        "delivery_tracked", "trace", "counts", "sasl2", "user_agent", "_holding",
        "_gone", "_untaken_stanzas", "__weakref__",
    )

    def __init__(self, server: "Server", *, direct_tls: bool = False):
        self.server = server
        self.direct_tls = direct_tls
        self._init_io()
        self.parser = StreamParser(max_stanza_size=server.c2s_stanza_size_limit)
        self.id = secrets.token_hex(8)
        self.host: Host | None = None
        self.lang = "en"
        self.tls = direct_tls
        self.header_sent = False
        self.authenticated = False
        self.username: str | None = None
        self.resource: str | None = None
        self.full_jid: str | None = None
        self.bare_jid: str | None = None
        self.sasl = None
        self.sasl_mechanism: str | None = None
        self.sasl_failures = 0
        self.sasl2 = None          # an exchange of the extensible profile (protocol/sasl2.py)
        self.user_agent: dict | None = None   # what the client said it is (XEP-0388)
        self._holding: list | None = None     # stanzas held while a SASL2 success is built
        self.closed = False
        # presence state (RFC 6121), set by the presence module
        self.available = False
        self.presence: ET.Element | None = None
        self.priority = 0
        self.directed: set[str] = set()
        self.interested = False
        # module-owned per-session state, keyed by module name
        self.state: dict[str, object] = {}
        # Extension points (empty on a plain session, so the hot path stays a
        # length check): outgoing filters may hold a stanza back (return None);
        # delivery hooks see every stanza actually delivered; inbound hooks see
        # every stanza received from the client; lost hooks may keep a session
        # alive after its connection dropped (return True).
        self.send_filters: list = []
        self.delivery_hooks: list = []
        self.inbound_hooks: list = []
        self.lost_hooks: list = []
        self.hibernating = False
        self.replaced = False
        self.clean_close = False
        self.closed_by_server = False
        self._timeout: asyncio.TimerHandle | None = None
        self._counted = False     # in the per-address connection counts
        # a module (stream management) answers for what the client never
        # acknowledged; otherwise the session tracks what TCP did not (overflow)
        self.delivery_tracked = False
        self._gone = False        # the resource's end (or hibernation) is handled
        self._untaken_stanzas: list = []
        # the xmppctl traces following this session (core/trace.py), None when none:
        # set after authentication only, so SASL never shows in a trace
        self.trace: tuple | None = None
        # stanzas in and out, by kind, for the metrics (plain integer fields)
        self.counts = server.metrics.stanza_counts(self.kind)

    def __repr__(self) -> str:
        return f"<C2S {self.full_jid or self.peer} {self.id}>"

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connected(transport)
        self.server.c2s_sessions.add(self)
        self._timeout = asyncio.get_running_loop().call_later(self.server.c2s_timeout, self._negotiation_timeout)
        log.debug("%s connected from %s%s", self.id, self.peer, " (direct TLS)" if self.direct_tls else "")
        limits = self.server.limits
        self._bucket = limits.bucket(self.kind)
        self._limit_sending(limits.send_buffer(self.kind))
        refused = limits.connect(self.kind, self.address)
        self._counted = True
        if refused:
            log.info("%s: refused: %s", self.id, refused)
            self.stream_error(StreamError("policy-violation", refused))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.closing = True
        self.transport = None
        self._out.clear()
        if self._timeout:
            self._timeout.cancel()
        self._queue.clear()
        self.server.c2s_sessions.discard(self)
        if self._counted:
            self._counted = False
            self.server.limits.disconnect(self.kind, self.address, authenticated=self.authenticated)
        if self._prune_handle is not None:
            self._prune_handle.cancel()
            self._prune_handle = None
        log.debug("%s closed (%s)", self.id, exc or "clean")
        if not (self.replaced or self.resource is None or self.host is None or self._gone):
            self._resource_lost(exc)
        if self.trace is not None:
            self.server.tracer.closed(self)

    def _resource_lost(self, exc: Exception | None) -> None:
        """The connection is gone (or given up on): hibernate, or end the resource."""
        self._gone = True
        if not self.clean_close and not self.closed_by_server:
            for hook in self.lost_hooks:
                if hook(self, exc):
                    self.hibernating = True
                    log.info("%s: connection lost; %s hibernates", self.id, self.full_jid)
                    return
        self.end_session(exc)

    def end_session(self, exc: Exception | None = None) -> None:
        """The resource is gone for good: unregister it and tell the modules."""
        if self.resource is None or self.host is None or self.replaced:
            return
        self.hibernating = False
        self.host.remove_session(self)
        if self.trace is not None:
            self.server.tracer.closed(self)
        self.server.spawn(self.host.events.notify("resource-unbind", (self, exc)))
        if self._untaken_stanzas:
            # what the client never took goes where it would go now it is offline
            untaken, self._untaken_stanzas = self._untaken_stanzas, []
            self.server.spawn(self.host.events.notify(
                "resource-undelivered", {"session": self, "stanzas": untaken}))

    def adopt(self, old: "C2SSession") -> None:
        """Take over ``old``'s resource and state (stream resumption): this new
        connection becomes that resource; ``old`` is retired silently."""
        for name in ("resource", "full_jid", "available", "presence", "priority",
                     "directed", "interested", "state", "send_filters", "delivery_hooks",
                     "inbound_hooks", "lost_hooks"):
            setattr(self, name, getattr(old, name))
        old.replaced = True
        old.hibernating = False
        if old.transport is not None:
            old.closing = True
            old.transport.abort()
        self.host.add_session(self)
        if self._timeout:
            self._timeout.cancel()
            self._timeout = None
        if old.trace is not None:
            self.server.tracer.forget(old)
        self.server.tracer.attach(self)

    def trace_identity(self) -> tuple | None:
        """Who this session is for ``xmppctl trace`` (None before authentication)."""
        if not self.authenticated or self.host is None:
            return None
        return (self.username, (self.host.name,), self.resource)

    # -- the ordered event queue -------------------------------------------
    async def _handle(self, item) -> None:
        if isinstance(item, StanzaEvent):
            await self._on_element(item.element)
        elif isinstance(item, StreamOpen):
            await self._on_stream_open(item)
        elif isinstance(item, StreamClose):
            self._on_stream_close()

    # -- output ---------------------------------------------------------------
    def send(self, el: ET.Element) -> None:
        """Send a stanza to the client (filters may hold it back); written at the
        end of this loop turn."""
        if self.send_filters:
            for f in self.send_filters:
                el = f(self, el)
                if el is None:
                    return
        self.deliver(el)

    def deliver(self, el: ET.Element) -> None:
        """Send a stanza past the filters (what a filter calls to release one)."""
        if self._holding is not None:
            self._holding.append(el)
            return
        if self.delivery_hooks:
            for hook in self.delivery_hooks:
                hook(self, el)
        if self.closing:
            return
        tag = el.tag
        if tag == _MESSAGE:
            self.counts.message_out += 1
        elif tag == _PRESENCE:
            self.counts.presence_out += 1
        elif tag == _IQ:
            self.counts.iq_out += 1
        data = serialize(el)
        self._write(data)
        if self.trace is not None:
            _trace.sent(self, data)
        if self._track is not None:
            self._sent(el if not self.delivery_tracked and _redeliverable(el) else None)

    def send_nonza(self, el: ET.Element) -> None:
        """A protocol element that is not a stanza (not counted, never held)."""
        if self.closing:
            return
        data = serialize(el)
        self._write(data)
        if self.trace is not None:
            _trace.sent(self, data)

    def _send_header(self, from_: str | None) -> None:
        if self.header_sent:
            return
        self.header_sent = True
        self._write(self._stream_start(from_))

    # what opens and ends the stream on the wire (RFC 7395 frames them otherwise)
    def _stream_start(self, from_: str | None) -> str:
        return stream_header(self.stream_ns, from_=from_, id=self.id, lang=self.lang)

    def _stream_end(self) -> str:
        return "</stream:stream>"

    def stream_error(self, err: StreamError) -> None:
        """Send ``<stream:error/>``, close the stream and the connection."""
        if self.closing:
            return
        log.info("%s: stream error %s", self.id, err)
        self._send_header(self.host.name if self.host else None)
        data = serialize(err.to_element())
        self._write(data)
        if self.trace is not None:
            _trace.sent(self, data)
        self.close()

    def close(self) -> None:
        if self.closing:
            return
        self._send_header(self.host.name if self.host else None)
        self._write(self._stream_end())
        self._flush(force=True)
        self.closing = True
        self.closed_by_server = not self.clean_close
        self._queue.clear()
        self._close_transport()

    def _overflow(self) -> None:
        """The client does not read: more than ``send_buffer`` waits for it. The
        stream ends with an error; the resource goes as if the connection had
        dropped (stream management hibernates it), and what the client never took
        goes where it would go for a resource that went offline."""
        untaken = [] if self.delivery_tracked else self._untaken()
        log.warning("%s: %s does not read what it is sent (%d characters waiting); closing",
                    self.id, self.full_jid or self.peer, self._out_size)
        self._out.clear()
        self._out_size = 0
        err = StreamError("policy-violation", "too much unread data: you do not read what you are sent")
        self._write(serialize(err.to_element()))
        self._write(self._stream_end())
        self._flush(force=True)
        self.closing = True
        self._queue.clear()
        self._close_transport()
        if self.resource is not None and self.host is not None and not self.replaced and not self._gone:
            self._untaken_stanzas = untaken
            self._resource_lost(None)
        elif untaken:
            self._undeliverable(untaken)

    def _undeliverable(self, stanzas: list) -> None:
        """Stanzas nothing will take (not a bound resource): bounced."""
        router = self.server.router
        for el in stanzas:
            self.server.spawn(router.bounce(el, StanzaError("recipient-unavailable")))

    def _negotiation_timeout(self) -> None:
        if self.resource is None and not self.closing:
            self.stream_error(StreamError("connection-timeout", "negotiation took too long"))

    # -- stream negotiation ------------------------------------------------
    async def _on_stream_open(self, so: StreamOpen) -> None:
        attrs = so.attrs
        lang = so.lang
        if lang:
            self.lang = lang
        to = attrs.get("to")
        host = None
        if to:
            try:
                host = self.server.hosts.get(nameprep(to))
            except InvalidJID:
                host = None
        if self.host is None:
            if host is None or not host.is_virtualhost:
                self._send_header(to if to and host else None)
                raise StreamError("host-unknown", f"this server does not serve {to}" if to else "no 'to' in stream header")
            self.host = host
        elif host is not self.host:
            raise StreamError("host-unknown", "the host changed during negotiation")
        self.header_sent = False
        self._send_header(self.host.name)
        if so.default_ns != ns.CLIENT:
            raise StreamError("invalid-namespace", "expected jabber:client")
        version = attrs.get("version", "0.9")
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise StreamError("unsupported-version") from None
        if major < 1:
            raise StreamError("unsupported-version", "XMPP 1.0 streams only")
        self.send(await self._features())

    async def _features(self) -> ET.Element:
        feats = ET.Element(f"{{{ns.STREAM}}}features")
        host = self.host
        if not self.authenticated:
            if not self.tls and self.can_starttls and self.server.certs_for(host.name):
                tls = ET.SubElement(feats, f"{{{ns.TLS}}}starttls")
                if self.server.c2s_require_encryption(host):
                    ET.SubElement(tls, f"{{{ns.TLS}}}required")
            if self.tls or not self.server.c2s_require_encryption(host):
                mechs = ET.SubElement(feats, f"{{{ns.SASL}}}mechanisms")
                for m in self._mechanisms():
                    ET.SubElement(mechs, f"{{{ns.SASL}}}mechanism").text = m
                authentication = _sasl2.feature(self, self._mechanisms())
                if authentication is not None:
                    feats.append(authentication)
                if self.tls and self._end_point() is not None:
                    cb = ET.SubElement(feats, "{urn:xmpp:sasl-cb:0}sasl-channel-binding")
                    ET.SubElement(cb, "{urn:xmpp:sasl-cb:0}channel-binding", {"type": "tls-server-end-point"})
            stage = "pre-auth"
        else:
            if self.resource is None:   # not bound inside the authentication (XEP-0386)
                ET.SubElement(feats, f"{{{ns.BIND}}}bind")
                sess = ET.SubElement(feats, f"{{{ns.SESSION}}}session")
                ET.SubElement(sess, f"{{{ns.SESSION}}}optional")
            stage = "bound"
        for func in host.stream_features.get(stage, ()):
            el = func(self)
            if el is not None:
                feats.append(el)
        return feats

    def _mechanisms(self) -> list[str]:
        from .sasl import offered_mechanisms
        accounts = self.server.accounts
        return offered_mechanisms(tls=self.tls, channel_binding_available=self.tls and self._end_point() is not None,
                                  sha256=accounts is None or self.host is None
                                  or accounts.offers_sha256(self.host.name))

    def channel_binding(self, kind: str) -> bytes | None:
        """This TLS connection's channel-binding data of *kind* (RFC 5929), or None:
        ``tls-server-end-point`` only."""
        return self._end_point() if kind == "tls-server-end-point" else None

    def _end_point(self) -> bytes | None:
        if not self.tls or self.host is None:
            return None
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        if ssl_object is None:
            return None
        return self.server.certs.end_point_hash_for(ssl_object)

    def _on_stream_close(self) -> None:
        self.clean_close = True
        self.close()

    async def _on_element(self, el: ET.Element) -> None:
        if self.trace is not None:
            _trace.received(self, el)
        if self.resource is not None:
            await self._on_stanza(el)
            return
        tag = el.tag
        if not self.authenticated:
            if tag in _sasl2.ELEMENTS:
                await _sasl2.on_element(self, el)
            elif self.sasl2 is not None:
                _sasl2.out_of_turn(self, el)
            elif tag == f"{{{ns.TLS}}}starttls":
                await self._starttls()
            elif tag == f"{{{ns.SASL}}}auth":
                await self._sasl_auth(el)
            elif tag == f"{{{ns.SASL}}}response":
                await self._sasl_response(el)
            elif tag == f"{{{ns.SASL}}}abort":
                self.sasl = None
                self.send(SASLFailure("aborted").to_element())
            elif tag == "{jabber:client}iq" and await self.host.events.fire(
                    ev.element_event(*st.split_tag(tag), bound=False), (self, el)):
                pass  # e.g. in-band registration (XEP-0077) before authentication
            else:
                raise StreamError("not-authorized", "authenticate first")
            return
        # authenticated, not yet bound
        if tag == "{jabber:client}iq" and el.get("type") == "set":
            child = st.first_child(el)
            if child is not None and child.tag == f"{{{ns.BIND}}}bind":
                await self._bind(el, child)
                return
            if child is not None and child.tag == f"{{{ns.SESSION}}}session":
                self.send(st.iq_result(el))
                return
        if await self.host.events.fire(ev.element_event(*st.split_tag(tag), bound=False), (self, el)):
            return
        raise StreamError("not-authorized", "bind a resource first")

    # -- STARTTLS (RFC 6120 §5) ------------------------------------------------
    async def _starttls(self) -> None:
        if self.tls or not self.can_starttls or not self.server.certs_for(self.host.name):
            self._write(f"<failure xmlns='{ns.TLS}'/>")
            self.close()
            return
        ctx = self.server.certs.context_for(self.host.name)
        self._queue.clear()
        self.parser.reset()
        self._write(f"<proceed xmlns='{ns.TLS}'/>")
        self._flush()
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self.transport, self, ctx, server_side=True,
                                             ssl_handshake_timeout=30)
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            log.info("%s: TLS handshake failed: %s", self.id, exc)
            if self.transport is not None:
                self.transport.abort()
            return
        if transport is None:
            return
        self.transport = transport
        self.tls = True
        self.header_sent = False
        log.debug("%s: TLS established", self.id)

    # -- SASL (RFC 6120 §6) ------------------------------------------------------
    async def _sasl_auth(self, el: ET.Element) -> None:
        from .sasl import SASLServer
        if not self.tls and self.server.c2s_require_encryption(self.host):
            self.send(SASLFailure("encryption-required").to_element())
            return
        mech = el.get("mechanism", "")
        host = self.host
        accounts = self.server.accounts
        banned = self.server.limits.banned(self.address)
        if banned is not None:
            await self._sasl_failed(SASLFailure(
                "temporary-auth-failure", f"too many failed logins from {self.address}; "
                f"try again in {int(banned) + 1} seconds"))
            return
        cb = self._end_point()
        try:
            self.sasl = SASLServer(
                mech, offered=self._mechanisms(), host=host.name,
                get_credentials=lambda user: accounts.get_credentials(host.name, user),
                channel_binding=("tls-server-end-point", cb) if cb else None,
            )
        except SASLFailure as f:
            await self._sasl_failed(f)
            return
        await self._sasl_step(el.text or "")

    async def _sasl_response(self, el: ET.Element) -> None:
        if self.sasl is None:
            await self._sasl_failed(SASLFailure("malformed-request", "no exchange in progress"))
            return
        await self._sasl_step(el.text or "")

    async def _sasl_step(self, text: str) -> None:
        text = text.strip()
        try:
            data = b"" if text in ("", "=") else base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            await self._sasl_failed(SASLFailure("incorrect-encoding"))
            return
        try:
            step = await self.sasl.step(data)
        except SASLFailure as f:
            await self._sasl_failed(f)
            return
        if step.kind == "challenge":
            c = ET.Element(f"{{{ns.SASL}}}challenge")
            c.text = base64.b64encode(step.data).decode() if step.data else "="
            self.send(c)
            return
        if not await self.server.accounts.is_enabled(self.host.name, step.username):
            # the right credentials of a disabled account (Prosody 13 answers the same)
            await self._sasl_failed(SASLFailure("account-disabled", "this account is disabled"))
            return
        self.sasl_mechanism = self.sasl.mechanism
        self.sasl = None
        self.authenticated = True
        self.username = step.username
        self.bare_jid = f"{step.username}@{self.host.name}"
        limits = self.server.limits
        limits.authenticated(self.kind, self.address)
        limits.auth_succeeded(self.address, self.bare_jid)
        self._queue.clear()
        self.parser.reset()
        self.header_sent = False
        s = ET.Element(f"{{{ns.SASL}}}success")
        if step.data:
            s.text = base64.b64encode(step.data).decode()
        self.send(s)
        log.info("%s: authenticated as %s", self.id, self.bare_jid)
        self.server.tracer.attach(self)   # after <success/>: SASL is never traced

    async def _sasl_failed(self, f: SASLFailure, *, tried: str | None = None,
                           mechanism: str | None = None, element: ET.Element | None = None) -> None:
        """A failed exchange: logged, counted, answered with ``f`` (``element``: its
        form in the extensible profile, whose caller names the account and mechanism)."""
        if element is None:
            tried = self.sasl.tried() if self.sasl is not None else None
            mechanism = self.sasl.mechanism if self.sasl is not None else None
        else:
            self.sasl_mechanism = None
        account = f"{tried}@{self.host.name}" if tried else None
        mech = mechanism
        self.sasl = None
        self.sasl_failures += 1
        # one line per failure, with the account and the address (fail2ban reads it)
        log.warning("authentication failed for %s from %s (%s%s)", account or "(unknown)",
                    self.address, f.condition, f", {mech}" if mech else "")
        if f.condition != "aborted":
            delay = self.server.limits.auth_failed(self.address, account)
            if delay > 0:
                await asyncio.sleep(delay)   # the session waits too: nothing else is read
                if self.closing:
                    return
        self.send(f.to_element() if element is None else element)
        if self.sasl_failures >= MAX_SASL_FAILURES:
            self.stream_error(StreamError("policy-violation", "too many failed authentication attempts"))

    # -- resource binding (RFC 6120 §7) -----------------------------------------
    async def _bind(self, iq: ET.Element, bind: ET.Element) -> None:
        res_el = bind.find(f"{{{ns.BIND}}}resource")
        requested = (res_el.text or "").strip() if res_el is not None else ""
        if requested:
            try:
                resource = resourceprep(requested)
            except InvalidJID:
                self.send(st.error_reply(iq, StanzaError("bad-request", "invalid resource")))
                return
        else:
            resource = secrets.token_urlsafe(6)
        self._take_resource(resource)
        self.server.tracer.attach(self)   # a trace of this resource starts here
        payload = ET.Element(f"{{{ns.BIND}}}bind")
        ET.SubElement(payload, f"{{{ns.BIND}}}jid").text = self.full_jid
        self.send(st.iq_result(iq, payload))
        log.info("%s: bound %s", self.id, self.full_jid)
        await self.host.events.notify("resource-bind", self)

    def _take_resource(self, resource: str) -> None:
        """This session becomes ``resource`` of its account (an existing session of
        that resource is replaced: RFC 6120 §7.7.2.2, the new session wins)."""
        old = self.host.get_session(self.username, resource)
        if old is not None and old is not self:
            log.info("%s: resource conflict for %s/%s; closing %s", self.id, self.username, resource, old.id)
            self.host.remove_session(old)
            old.resource_conflict()
        self.resource = resource
        self.full_jid = f"{self.bare_jid}/{resource}"
        self.host.add_session(self)
        if self._timeout:
            self._timeout.cancel()
            self._timeout = None

    # -- success of the extensible profile (XEP-0388), binding inside it (XEP-0386) --
    async def _sasl2_success(self, exchange) -> None:
        """Authenticated: the ``inline-feature`` items answer what the request asked
        (stage ``auth``; one may resume a resource), a resource is bound if asked and
        none was resumed (stage ``bind`` and ``bound``), then ``<success/>`` and the
        features of the authenticated stream, with no stream restart."""
        q = _sasl2.q
        request = exchange.request
        self.sasl2 = None
        self.sasl = None
        self.authenticated = True
        self.username = exchange.username
        self.bare_jid = f"{exchange.username}@{self.host.name}"
        limits = self.server.limits
        limits.authenticated(self.kind, self.address)
        limits.auth_succeeded(self.address, self.bare_jid)
        self._holding = []
        success = ET.Element(q(ns.SASL2, "success"))
        if exchange.additional:
            ET.SubElement(success, q(ns.SASL2, "additional-data")).text = \
                base64.b64encode(exchange.additional).decode("ascii")
        aid = ET.SubElement(success, q(ns.SASL2, "authorization-identifier"))
        after: list = []
        items = self.host.items("inline-feature")
        for item in items:
            if item.stage == "auth":
                for child in _children_in(request, item.namespace):
                    await self._inline(item, child, success, after)
        bind = request.find(q(ns.BIND2, "bind"))
        new_resource = None
        if self.resource is None and bind is not None:
            new_resource = _sasl2.resource_for(bind.findtext(q(ns.BIND2, "tag")),
                                               (self.user_agent or {}).get("id"), self.bare_jid)
            # the features are enabled before the resource exists (nobody can reach
            # it yet; ``resource`` stays None until it is registered)
            self.full_jid = f"{self.bare_jid}/{new_resource}"
            bound = ET.SubElement(success, q(ns.BIND2, "bound"))
            for item in items:
                if item.stage == "bind":
                    for child in _children_in(bind, item.namespace):
                        await self._inline(item, child, bound, after)
                elif item.stage == "bound":
                    await self._inline(item, None, bound, after)
            if self.closed:     # gone meanwhile: what the features set up ends here
                self._holding = None
                self.resource = new_resource
                self._gone = True
                await self.host.events.notify("resource-unbind", (self, None))
                self.resource = None
                return
            self._take_resource(new_resource)
            self._replace_same_client()
        if self.closed:     # a resumed resource hibernates again: its hooks keep these
            held, self._holding = self._holding, None
            for el in held:
                self.deliver(el)
            return
        aid.text = self.full_jid or self.bare_jid
        self.send_nonza(success)
        held, self._holding = self._holding, None
        for func in after:
            func()
        for el in held:
            self.deliver(el)
        log.info("%s: authenticated as %s%s", self.id, self.bare_jid,
                 f", bound {self.full_jid}" if new_resource else "")
        self.server.tracer.attach(self)   # after <success/>: SASL is never traced
        self.send_nonza(await self._features())
        if new_resource is not None:
            await self.host.events.notify("resource-bind", self)

    def _replace_same_client(self) -> None:
        """XEP-0386 §3.2: a binding ends the earlier sessions of the same client (the
        same user-agent id), whatever resource they have."""
        ua_id = (self.user_agent or {}).get("id")
        if not ua_id:
            return
        for other in list(self.host.sessions_of(self.username).values()):
            if other is not self and (other.user_agent or {}).get("id") == ua_id:
                log.info("%s: %s is the same client again; closing %s", self.id, self.full_jid, other.id)
                self.host.remove_session(other)
                other.resource_conflict()

    async def _inline(self, item, child, parent: ET.Element, after: list) -> None:
        try:
            result = item.handle(self, child)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("%s: inline feature %s failed", self.id, item.namespace)
            return
        if isinstance(result, tuple):
            result, func = result
            after.append(func)
        if result is not None:
            parent.append(result)

    def resource_conflict(self) -> None:
        """Another session took this resource (RFC 6120 §7.7.2.2)."""
        if self.resource is not None:
            self.server.spawn(self.host.events.notify("resource-unbind", (self, None)))
            self.resource = None
        self.stream_error(StreamError("conflict", "replaced by a new session"))

    # -- stanzas from a bound client ---------------------------------------------
    async def _on_stanza(self, el: ET.Element) -> None:
        tag = el.tag
        if tag == _MESSAGE:
            self.counts.message_in += 1
        elif tag == _PRESENCE:
            self.counts.presence_in += 1
        elif tag == _IQ:
            self.counts.iq_in += 1
        else:
            if await self.host.events.fire(ev.element_event(*st.split_tag(el.tag)), (self, el)):
                return
            raise StreamError("unsupported-stanza-type", f"unknown element {el.tag}")
        frm = el.get("from")
        if frm and frm != self.full_jid and frm != self.bare_jid:
            try:
                node, dom, res = jid_split(frm)
                ok = f"{node}@{dom}" == self.bare_jid and res in ("", self.resource)
            except InvalidJID:
                ok = False
            if not ok:
                raise StreamError("invalid-from", "that is not your address")
        el.set("from", self.full_jid)
        if self.lang and ns.XML_LANG not in el.attrib:
            el.set(ns.XML_LANG, self.lang)  # RFC 6120 §8.1.5: the stream's language
        if self.inbound_hooks:
            for hook in self.inbound_hooks:
                hook(self, el)
        if tag == _IQ:
            t = el.get("type")
            # the errors come from where the IQ went (no 'from' if it had no 'to':
            # handled on behalf of the account, RFC 6120 §8.1.2.1)
            if t not in ("get", "set", "result", "error") or not el.get("id"):
                if t != "error":
                    self.send(st.error_reply(el, StanzaError("bad-request", "IQ needs an id and a valid type")))
                return
            if t in ("get", "set") and len(el) != 1:
                self.send(st.error_reply(el, StanzaError("bad-request", "an IQ request has exactly one payload")))
                return
            if t == "set" and el[0].tag == _SESSION and el.get("to") in (None, self.host.name):
                # RFC 3921 session establishment, which clients (Strophe.js, so
                # Converse.js) still send after bind: nothing to do, as RFC 6121 says
                self.send(st.iq_result(el))
                return
        await self.server.router.route(el, self)


def _children_in(el: ET.Element, namespace: str) -> list:
    prefix = f"{{{namespace}}}"
    return [child for child in el if child.tag.startswith(prefix)]


def register(server: "Server") -> None:
    """The client listeners: ``c2s_ports`` (STARTTLS) and ``c2s_direct_tls_ports``
    (XEP-0368, ALPN ``xmpp-client``), on ``c2s_interfaces`` or ``interfaces``."""
    from ..core.modules import Listener
    server.add_item("listener", Listener(
        "c2s", lambda: C2SSession(server), "c2s_ports", [5222], interfaces_option="c2s_interfaces"))
    server.add_item("listener", Listener(
        "c2s_direct_tls", lambda: C2SSession(server, direct_tls=True), "c2s_direct_tls_ports", [],
        interfaces_option="c2s_interfaces",
        ssl_context=lambda srv: srv.certs.default_context(alpn=["xmpp-client"])))

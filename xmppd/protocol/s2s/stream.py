"""What both directions of a server-to-server stream share (RFC 6120).

A stream runs on an asyncio Protocol like a client stream: bytes go to the sans-I/O
``StreamParser``, events are handled in order by one drain task, writes are
coalesced per event-loop turn. :class:`~.incoming.IncomingStream` (a peer
connected to us) and :class:`~.outgoing.OutgoingStream` (one connection attempt of
an outgoing link) are the two state machines on top.

Features that are not RFC 6120 hook events the streams fire on the local host
(``xmppd/core/events.py`` builds the names): a non-stanza element is
``s2s-in-element/<ns>:<name>`` or ``s2s-out-element/<ns>:<name>`` with
``(stream, element)``; an outgoing stream fires ``s2s-out-features`` (notify) and
``s2s-authenticate`` (first handler wins) when SASL EXTERNAL is not possible; an
incoming pre-1.0 stream fires ``s2s-legacy-stream``. Dialback and bidirectional
streams are modules that hook these.

Namespaces: stanzas travel as ``jabber:server`` on the wire but are
``{jabber:client}message`` etc. inside the server. Incoming stanzas are renamed
after parsing (:func:`to_client_ns`); outgoing ones are serialized with the default
namespace ``jabber:client`` under a header declaring ``jabber:server``, so they are
written without any ``xmlns`` and take the stream's.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ...core import trace as _trace
from ...net.peercert import identity_matches, peer_cert_der
from ...stream import StanzaEvent, StreamClose, StreamOpen, StreamParser, serialize, stream_header
from ...xmpp import ns
from ...xmpp.errors import StreamError
from ...xmpp.jid import InvalidJID, split as jid_split
from ..base import XMLStreamProtocol

if TYPE_CHECKING:
    from .manager import S2SManager

log = logging.getLogger("xmppd.s2s")

# Every server stream header declares the dialback prefix, as other servers' do: old
# peers look for it, and elements in that namespace are written with it.
PREFIXES = {ns.DIALBACK: "db"}
SERVER_KINDS = {"{jabber:server}message", "{jabber:server}presence", "{jabber:server}iq"}
_S = "{jabber:server}"
_C = "{jabber:client}"
_MESSAGE, _PRESENCE, _IQ = _C + "message", _C + "presence", _C + "iq"
_S_MESSAGE, _S_PRESENCE, _S_IQ = _S + "message", _S + "presence", _S + "iq"


def to_client_ns(el: ET.Element) -> ET.Element:
    """Rename ``{jabber:server}x`` tags to ``{jabber:client}x`` in place (whole tree)."""
    for e in el.iter():
        tag = e.tag
        if tag.__class__ is str and tag.startswith(_S):
            e.tag = _C + tag[len(_S):]
    return el


class S2SFailure(Exception):
    """An outgoing attempt failed before authentication.

    ``retry_insecure``: the certificate chain did not validate and the domain may use
    dialback: the same address is tried again without checking the chain.
    ``final``: no other candidate would do better (e.g. the peer refused to
    authenticate us): stop trying.
    """

    def __init__(self, reason: str, *, retry_insecure: bool = False, final: bool = False,
                 timeout: bool = False):
        super().__init__(reason)
        self.retry_insecure = retry_insecure
        self.final = final
        self.timeout = timeout


class S2SStream(XMLStreamProtocol):
    """One server-to-server connection, either direction."""

    direction = "?"
    kind = "s2s"

    def __init__(self, manager: "S2SManager", *, local: str | None = None,
                 remote: str | None = None, direct_tls: bool = False):
        self.manager = manager
        self.server = manager.server
        self._init_io()
        self.local = local            # our domain (in: the stream's 'to')
        self.remote = remote          # the peer's domain (in: the stream's 'from', if any)
        self.direct_tls = direct_tls
        self.id = secrets.token_hex(8)
        self.stream_id: str | None = None   # in: ours; out: the peer's (dialback keys)
        self.parser = StreamParser(max_stanza_size=manager.stanza_size_limit)
        self.tls = direct_tls
        self.cert_der: bytes | None = None
        self.cert_chain_valid = False        # the peer's chain validated (CA store)
        self.header_sent = False
        self.peer_version = (1, 0)
        self.peer_namespaces: dict[str, str] = {}   # prefixes the peer's header declared
        self.auth_method: str | None = None  # "sasl-external", "dialback", ...
        self.authenticated = False           # out: we may send stanzas
        self.pairs: set[tuple[str, str]] = set()  # (remote, local) the peer may send for
        self.bidi = False                    # stanzas flow both ways on this stream
        self.closed = False
        self.created = time.monotonic()
        self.last_activity = self.created
        self.counters = {"in": 0, "out": 0}
        self.counts = self.server.metrics.stanza_counts(self.kind)   # by kind, for the metrics
        self.state: dict[str, object] = {}   # module-owned per-stream state (session slots)
        self._tasks: set[asyncio.Task] = set()
        self._unflushed: list[ET.Element] = []  # stanzas in _out, handed back if never written
        self._timeout: asyncio.TimerHandle | None = None
        self._counted = False          # in the per-address connection counts
        self._auth_counted = False     # counted as authenticated there
        self.trace: tuple | None = None   # xmppctl traces following it (after authentication)

    def __repr__(self) -> str:
        return f"<S2S{self.direction} {self.local}{'→' if self.direction == 'out' else '←'}{self.remote} {self.id}>"

    @property
    def host(self):
        """The local host this stream serves (None before the stream header)."""
        return self.server.hosts.get(self.local or "")

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport) -> None:
        self._connected(transport)
        self._timeout = asyncio.get_running_loop().call_later(self.manager.timeout, self._negotiation_timeout)
        self.manager.add_session(self)
        log.debug("%r connected (%s)", self, self.peer)
        limits = self.server.limits
        self._bucket = limits.bucket(self.kind)
        self._limit_sending(limits.send_buffer(self.kind))
        refused = limits.connect(self.kind, self.address)
        self._counted = True
        if refused:
            log.info("%r: refused: %s", self, refused)
            self.stream_error(StreamError("policy-violation", refused))

    def data_received(self, data: bytes) -> None:
        if not self.closing:
            self.last_activity = time.monotonic()
        super().data_received(data)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.closing = True
        if self._timeout:
            self._timeout.cancel()
        self._queue.clear()
        self._fail(S2SFailure(f"connection lost{': ' + str(exc) if exc else ''}"))
        for t in self._tasks:
            t.cancel()
        if self._prune_handle is not None:
            self._prune_handle.cancel()
            self._prune_handle = None
        if self._counted:
            self._counted = False
            self.server.limits.disconnect(self.kind, self.address, authenticated=self._auth_counted)
        host = self.host
        if host is not None:
            host.events.call("s2s-stream-closed", self)
        self.manager.remove_session(self)
        if self.trace is not None:
            self.server.tracer.closed(self)
        log.debug("%r closed (%s)", self, exc or "clean")

    def spawn(self, coro) -> asyncio.Task:
        """A task that belongs to this stream: cancelled when the connection goes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the ordered event queue -------------------------------------------
    async def _handle(self, item) -> None:
        try:
            if isinstance(item, StanzaEvent):
                self.counters["in"] += 1
                if self.trace is not None:
                    _trace.received(self, item.element, ns.SERVER)
                await self._on_element(item.element)
            elif isinstance(item, StreamOpen):
                self.peer_namespaces = dict(item.namespaces)
                await self._on_stream_open(item)
            elif isinstance(item, StreamClose):
                self._fail(S2SFailure("the peer closed the stream"))
                self.close()
        except S2SFailure as f:
            self._fail(f)
            self.close()

    async def _on_stream_open(self, so: StreamOpen) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _on_element(self, el: ET.Element) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def fire_element(self, el: ET.Element) -> bool:
        """Give a non-stanza element to the module that hooked it on the local host."""
        host = self.host
        if host is None:
            return False
        from ...core import events as ev
        xmlns, name = (el.tag[1:].split("}", 1) if el.tag[:1] == "{" else ("", el.tag))
        return await host.events.fire(ev.s2s_element_event(self.direction, xmlns, name), (self, el))

    async def receive_stanza(self, el: ET.Element) -> None:
        """Route a stanza the peer sent, if its domains are a pair authenticated here."""
        tag = el.tag
        if tag == _S_MESSAGE:
            self.counts.message_in += 1
        elif tag == _S_PRESENCE:
            self.counts.presence_in += 1
        elif tag == _S_IQ:
            self.counts.iq_in += 1
        frm, to = el.get("from"), el.get("to")
        if not frm or not to:
            raise StreamError("improper-addressing", "a stanza between servers needs 'from' and 'to'")
        try:
            from_domain = jid_split(frm)[1]
        except InvalidJID:
            raise StreamError("invalid-from", "malformed 'from'") from None
        try:
            to_domain = jid_split(to)[1]
        except InvalidJID:
            raise StreamError("improper-addressing", "malformed 'to'") from None
        if (from_domain, to_domain) not in self.pairs:
            if to_domain not in self.server.hosts:
                raise StreamError("host-unknown", f"this server does not serve {to_domain}")
            if not self.pairs:
                raise StreamError("not-authorized", "authenticate first")
            raise StreamError("invalid-from", f"{from_domain} is not authenticated for {to_domain} on this stream")
        self.last_activity = time.monotonic()
        await self.server.router.route(to_client_ns(el), self)

    # -- output ---------------------------------------------------------------
    def send(self, el: ET.Element) -> None:
        """Queue one element (a stanza in ``jabber:client`` or a nonza)."""
        if self.closing:
            return
        self.counters["out"] += 1
        self.last_activity = time.monotonic()
        tag = el.tag
        stanza = True
        if tag == _MESSAGE:
            self.counts.message_out += 1
        elif tag == _PRESENCE:
            self.counts.presence_out += 1
        elif tag == _IQ:
            self.counts.iq_out += 1
        else:
            stanza = False
        if stanza:
            self._unflushed.append(el)
        data = serialize(el, ns.CLIENT, PREFIXES)
        self._write(data)
        if self.trace is not None:
            _trace.sent(self, data)
        if stanza and self._track is not None:
            self._sent(el)

    def _wrote(self) -> None:
        self._unflushed.clear()

    def _overflow(self) -> None:
        """The peer does not read: more than ``send_buffer`` waits for it. The stream
        ends with an error; what the peer never took is handed back to the link
        (``take_unsent``), which connects again and sends it, or bounces it."""
        untaken = self._untaken()
        log.warning("%r: the peer does not read (%d characters waiting); closing", self, self._out_size)
        self._unflushed = untaken or list(self._unflushed)
        self._out.clear()
        self._out_size = 0
        self._write(serialize(StreamError("policy-violation", "too much unread data").to_element(),
                              ns.CLIENT, PREFIXES) + "</stream:stream>")
        self._flush(force=True)
        self._fail(S2SFailure("the peer does not read"))
        self.closing = True
        self._queue.clear()
        self._close_transport()

    def take_unsent(self) -> list[ET.Element]:
        """Stanzas queued on this stream that never reached the socket (it closed
        first); the manager sends them again over a new link."""
        unsent, self._unflushed = self._unflushed, []
        return unsent

    def _send_header(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _header(self, **attrs) -> str:
        return stream_header(ns.SERVER, from_=self.local, to=self.remote,
                             extra_ns={p: u for u, p in PREFIXES.items()}, **attrs)

    def stream_error(self, err: StreamError) -> None:
        if self.closing:
            return
        log.info("%r: stream error %s", self, err)
        self._fail(S2SFailure(f"stream error {err}"))
        self._send_header()
        data = serialize(err.to_element(), ns.CLIENT, PREFIXES)
        self._write(data)
        if self.trace is not None:
            _trace.sent(self, data)
        self.close()

    def close(self) -> None:
        if self.closing:
            return
        self._send_header()
        self._write("</stream:stream>")
        self._flush(force=True)
        self.closing = True
        self._queue.clear()
        self._close_transport()

    def _negotiation_timeout(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fail(self, f: S2SFailure) -> None:
        """The outgoing attempt is over (incoming streams have nothing waiting)."""

    def _authenticated(self) -> None:
        if self._timeout:
            self._timeout.cancel()
            self._timeout = None
        if self._counted and not self._auth_counted:
            self._auth_counted = True
            self.server.limits.authenticated(self.kind, self.address)
        self.server.tracer.attach(self)

    def trace_identity(self) -> tuple | None:
        """The peer's domains for ``xmppctl trace`` (None before authentication)."""
        if not self.authenticated and not self.pairs:
            return None
        domains = {r for r, _l in self.pairs}
        if self.remote:
            domains.add(self.remote)
        return (None, tuple(sorted(domains)), None)

    # -- TLS ---------------------------------------------------------------------
    def _got_tls(self) -> None:
        """TLS is up: note the peer's certificate and whether it validated."""
        self.tls = True
        self.cert_der = peer_cert_der(self.transport)
        ctx = self.transport.get_extra_info("ssl_object")
        verified = ctx is not None and ctx.context.verify_mode != ssl.CERT_NONE
        self.cert_chain_valid = bool(self.cert_der) and verified

    def cert_identity_valid(self, domain: str | None) -> bool:
        """The peer's certificate chain validated and names ``domain``."""
        return bool(domain) and self.cert_chain_valid and identity_matches(self.cert_der, domain)

    async def _start_tls(self, ctx: ssl.SSLContext, server_side: bool) -> bool:
        loop = asyncio.get_running_loop()
        self._queue.clear()
        self.parser.reset()
        try:
            transport = await loop.start_tls(self.transport, self, ctx, server_side=server_side,
                                             server_hostname=None if server_side else self.remote,
                                             ssl_handshake_timeout=self.manager.timeout)
        except ssl.SSLCertVerificationError as exc:
            self._tls_verify_failed(exc)
            if self.transport is not None:
                self.transport.abort()
            return False
        except (OSError, ConnectionError, asyncio.TimeoutError, ssl.SSLError) as exc:
            log.info("%r: TLS handshake failed: %s", self, exc)
            self._fail(S2SFailure(f"TLS handshake failed: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return False
        if transport is None:
            return False
        self.transport = transport
        self.header_sent = False
        self._got_tls()
        return not self.closing

    def _tls_verify_failed(self, exc: ssl.SSLCertVerificationError) -> None:
        self._fail(S2SFailure(f"certificate of {self.remote} does not validate: {exc.verify_message}"))

    def _require_tls_first(self) -> None:
        """Nothing but STARTTLS before TLS, where TLS is required and possible."""
        if (not self.tls and self.manager.require_encryption(self.local)
                and self.manager.can_tls(self.local)):
            raise StreamError("policy-violation", "use TLS first")

    def describe(self) -> dict:
        """This stream for ``xmppctl s2s``."""
        now = time.monotonic()
        return {"direction": self.direction, "local": self.local, "remote": self.remote,
                "auth": self.auth_method, "tls": self.tls, "bidi": self.bidi, "peer": self.peer,
                "pairs": sorted(self.pairs), "age": int(now - self.created),
                "idle": int(now - self.last_activity),
                "stanzas_in": self.counters["in"], "stanzas_out": self.counters["out"]}


def sasl_failure(condition: str, text: str | None = None) -> ET.Element:
    el = ET.Element(f"{{{ns.SASL}}}failure")
    ET.SubElement(el, f"{{{ns.SASL}}}{condition}")
    if text:
        ET.SubElement(el, f"{{{ns.SASL}}}text").text = text
    return el


def first_local(el: ET.Element) -> str | None:
    for child in el:
        if child.tag.endswith("}text"):
            continue
        return child.tag.rpartition("}")[2]
    return None

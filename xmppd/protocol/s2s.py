"""Server-to-server streams (RFC 6120, XEP-0178 SASL EXTERNAL, XEP-0220 dialback).

One class, :class:`S2SSession`, runs both directions on an asyncio Protocol, like
``c2s.py``: bytes go to the sans-I/O ``StreamParser``, events are handled in order
by one drain task, writes are coalesced per event-loop turn.

* ``direction == "in"`` (``kind = "s2sin"``): a peer connected to us. We offer
  STARTTLS, then SASL EXTERNAL when its client certificate is valid for the domain in
  its stream header, and dialback (XEP-0220, ``modules/dialback.py``) when that module
  is loaded on the local host. Every stanza's ``from`` domain and ``to`` host must be
  a pair authenticated on this stream; stanzas are routed with this session as
  origin.
* ``direction == "out"`` (``kind = "s2sout"``): one connection attempt to one
  address, made by the outgoing link in ``core/s2s.py``, which retries other
  candidates on failure. It negotiates STARTTLS (or starts with TLS, XEP-0368), checks
  the peer's certificate (chain and RFC 6125 identity), authenticates with SASL
  EXTERNAL when offered, otherwise with dialback, and resolves ``ready``.

Bidirectional streams (XEP-0288), where the ``s2s_bidi`` module is loaded on the
local host: an incoming stream offers ``<bidi xmlns='urn:xmpp:features:bidi'/>``
after TLS; a peer that sends ``<bidi xmlns='urn:xmpp:bidi'/>`` may then receive our
stanzas on it, for the reverse of each authenticated pair (the manager registers the
stream as the link for them). An outgoing stream whose peer offers the feature
sends the request before authenticating and then accepts stanzas for (peer, us).

Namespaces: stanzas travel as ``jabber:server`` on the wire but are
``{jabber:client}message`` etc. inside the server. Incoming stanzas are renamed here,
after parsing (:func:`to_client_ns`); outgoing ones are serialized with the default
namespace ``jabber:client`` under a stream header declaring ``jabber:server``, so
they are written without any ``xmlns`` and take the stream's.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import ssl
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .. import namespaces as ns
from ..errors import StreamError
from ..jid import InvalidJID, nameprep, split as jid_split
from ..net.peercert import identity_matches, peer_cert_der
from ..stream import StanzaEvent, StreamClose, StreamOpen, StreamParser, serialize, stream_header
from .base import XMLStreamProtocol

if TYPE_CHECKING:
    from ..core.s2s import S2SManager

log = logging.getLogger("xmppd.s2s")

DB = "jabber:server:dialback"
DB_FEATURE = "urn:xmpp:features:dialback"
BIDI = "urn:xmpp:bidi"                     # XEP-0288: the request
BIDI_FEATURE = "urn:xmpp:features:bidi"    # XEP-0288: the stream feature
PREFIXES = {DB: "db"}
SERVER_KINDS = {"{jabber:server}message", "{jabber:server}presence", "{jabber:server}iq"}
CLIENT_KINDS = {"{jabber:client}message", "{jabber:client}presence", "{jabber:client}iq"}
_S = "{jabber:server}"
_C = "{jabber:client}"


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


class S2SSession(XMLStreamProtocol):
    def __init__(self, manager: "S2SManager", direction: str, *, local: str | None = None,
                 remote: str | None = None, direct_tls: bool = False, verify_chain: bool = True,
                 target: str = ""):
        self.manager = manager
        self.server = manager.server
        self._init_io()
        self.direction = direction
        self.kind = "s2sin" if direction == "in" else "s2sout"
        self.local = local            # our domain (in: the stream's 'to')
        self.remote = remote          # the peer's domain (in: the stream's 'from', if any)
        self.direct_tls = direct_tls
        self.verify_chain = verify_chain
        self.target = target
        self.id = secrets.token_hex(8)
        self.stream_id: str | None = None   # in: ours; out: the peer's (dialback keys)
        self.parser = StreamParser(max_stanza_size=manager.stanza_size_limit)
        self.tls = direct_tls
        self.cert_der: bytes | None = None
        self.cert_chain_valid = False        # the peer's chain validated (CA store)
        self.header_sent = False
        self.peer_version = (1, 0)
        self.peer_dialback = False           # peer declared xmlns:db or the feature
        self.auth_method: str | None = None  # "sasl-external" / "dialback"
        self.authenticated = False           # out: we may send stanzas
        self.pairs: set[tuple[str, str]] = set()  # (remote, local) the peer may send for
        self.bidi = False                    # XEP-0288 negotiated on this stream
        self.closed = False
        self.created = time.monotonic()
        self.last_activity = self.created
        self.counters = {"in": 0, "out": 0}
        # out: resolved on authentication (or failure); stream_ready once the stream
        # is usable for dialback verification (after TLS)
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.stream_ready: asyncio.Future = loop.create_future()
        self.verify_waiters: dict[tuple[str, str, str], asyncio.Future] = {}
        self.db_tasks: set[asyncio.Task] = set()
        self._unflushed: list[ET.Element] = []  # stanzas in _out, handed back if never written
        self._sasl_started = False
        self._dialback_started = False
        self._timeout: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<S2S{self.direction} {self.local}{'→' if self.direction == 'out' else '←'}{self.remote} {self.id}>"

    def describe(self) -> str:
        return (f"{self.direction:3} {self.local} {'->' if self.direction == 'out' else '<-'} "
                f"{self.remote or '?'} {self.auth_method or 'unauthenticated'}"
                f"{' tls' if self.tls else ''} {self.peer}")

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport) -> None:
        self._connected(transport)
        self._timeout = asyncio.get_running_loop().call_later(self.manager.timeout, self._negotiation_timeout)
        self.manager.add_session(self)
        if self.direction == "in":
            if self.direct_tls:
                self._got_tls()
        else:
            if self.direct_tls:
                self._got_tls()
                if self.closing:
                    return
            self._open_out_stream()
        log.debug("%r connected (%s)", self, self.peer)

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
        for fut in self.verify_waiters.values():
            if not fut.done():
                fut.set_result(False)
        for t in self.db_tasks:
            t.cancel()
        self.manager.remove_session(self)
        log.debug("%r closed (%s)", self, exc or "clean")

    # -- the ordered event queue -------------------------------------------
    async def _handle(self, item) -> None:
        try:
            if isinstance(item, StanzaEvent):
                await self._on_element(item.element)
            elif isinstance(item, StreamOpen):
                await self._on_stream_open(item)
            elif isinstance(item, StreamClose):
                self._fail(S2SFailure("the peer closed the stream"))
                self.close()
        except S2SFailure as f:
            self._fail(f)
            self.close()

    # -- output ---------------------------------------------------------------
    def send(self, el: ET.Element) -> None:
        """Queue one element (a stanza in ``jabber:client`` or a nonza)."""
        if self.closing:
            return
        self.counters["out"] += 1
        self.last_activity = time.monotonic()
        if el.tag in CLIENT_KINDS:
            self._unflushed.append(el)
        self._write(serialize(el, ns.CLIENT, PREFIXES))

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write("".join(self._out).encode())
            self._unflushed.clear()
        self._out.clear()

    def take_unsent(self) -> list[ET.Element]:
        """Stanzas queued on this stream that never reached the socket (it closed
        first); the manager sends them again over a new link."""
        unsent, self._unflushed = self._unflushed, []
        return unsent

    def _send_header(self) -> None:
        if self.header_sent:
            return
        self.header_sent = True
        if self.direction == "in":
            self._write(stream_header(ns.SERVER, from_=self.local, to=self.remote, id=self.stream_id,
                                      extra_ns={"db": DB}))
        else:
            self._write(stream_header(ns.SERVER, from_=self.local, to=self.remote, extra_ns={"db": DB}))

    def stream_error(self, err: StreamError) -> None:
        if self.closing:
            return
        log.info("%r: stream error %s", self, err)
        self._fail(S2SFailure(f"stream error {err}"))
        if self.direction == "in" and self.stream_id is None:
            self.stream_id = self.id
        self._send_header()
        self._write(serialize(err.to_element(), ns.CLIENT, PREFIXES))
        self.close()

    def close(self) -> None:
        if self.closing:
            return
        if self.direction == "in" and self.stream_id is None:
            self.stream_id = self.id
        self._send_header()
        self._write("</stream:stream>")
        self._flush()
        self.closing = True
        self._queue.clear()
        if self.transport is not None:
            self.transport.close()

    def _negotiation_timeout(self) -> None:
        if self.closing:
            return
        if self.direction == "out" and not self.authenticated:
            self._fail(S2SFailure("timed out while connecting", timeout=True))
            self.stream_error(StreamError("connection-timeout", "negotiation took too long"))
        elif self.direction == "in" and not self.pairs:
            self.stream_error(StreamError("connection-timeout", "negotiation took too long"))

    def _fail(self, f: S2SFailure) -> None:
        for fut in (self.ready, self.stream_ready):
            if not fut.done():
                fut.set_exception(f)
                fut.exception()  # retrieved: no "never retrieved" warning if unused

    # -- TLS ---------------------------------------------------------------------
    def _got_tls(self) -> None:
        """TLS is up: note the peer's certificate and whether it validated."""
        self.tls = True
        self.cert_der = peer_cert_der(self.transport)
        ctx = self.transport.get_extra_info("ssl_object")
        verified = ctx is not None and ctx.context.verify_mode != ssl.CERT_NONE
        self.cert_chain_valid = bool(self.cert_der) and verified
        if self.direction == "out":
            if not self.cert_identity_valid(self.remote):
                if self.manager.secure_required(self.local, self.remote):
                    why = ("its certificate is not valid for the domain" if self.cert_chain_valid
                           else "its certificate does not validate")
                    self._fail(S2SFailure(f"{self.remote}: {why}", final=True))
                    self.close()
                    return
                log.info("%r: certificate of %s not valid; dialback only", self, self.remote)

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
            insecure = not self.manager.secure_required(self.local, self.remote)
            self._fail(S2SFailure(f"certificate of {self.remote} does not validate: {exc.verify_message}",
                                  retry_insecure=insecure and self.verify_chain, final=not insecure))
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

    # -- dispatch ----------------------------------------------------------------
    async def _on_stream_open(self, so: StreamOpen) -> None:
        if self.direction == "in":
            await self._in_stream_open(so)
        else:
            await self._out_stream_open(so)

    async def _on_element(self, el: ET.Element) -> None:
        self.counters["in"] += 1
        if self.direction == "in":
            await self._in_element(el)
        else:
            await self._out_element(el)

    def _dialback(self):
        from ..modules import dialback
        return dialback

    def dialback_enabled(self, local: str | None) -> bool:
        host = self.server.hosts.get(local or "")
        return host is not None and "dialback" in host.modules

    def bidi_enabled(self, local: str | None) -> bool:
        host = self.server.hosts.get(local or "")
        return host is not None and "s2s_bidi" in host.modules

    # ============================== incoming =====================================
    async def _in_stream_open(self, so: StreamOpen) -> None:
        attrs = so.attrs
        if self.stream_id is None or self.header_sent is False:
            self.stream_id = secrets.token_hex(12)
        to = attrs.get("to")
        frm = attrs.get("from")
        self.peer_dialback = so.namespaces.get("db") == DB
        try:
            local = nameprep(to) if to else None
        except InvalidJID:
            local = None
        if frm:
            try:
                self.remote = nameprep(frm)
            except InvalidJID:
                self.local = local if local in self.server.hosts else None
                self._send_header()
                raise StreamError("invalid-from", "bad 'from' in the stream header") from None
        if local is None or local not in self.server.hosts:
            self._send_header()
            raise StreamError("host-unknown", f"this server does not serve {to}" if to else "no 'to' in stream header")
        if self.local is not None and local != self.local:
            self._send_header()
            raise StreamError("host-unknown", "the host changed during negotiation")
        self.local = local
        self.header_sent = False
        self._send_header()
        if so.default_ns != ns.SERVER:
            raise StreamError("invalid-namespace", "expected jabber:server")
        version = attrs.get("version")
        if not version:
            # pre-1.0 peer: no features; only dialback is possible
            self.peer_version = (0, 9)
            if not self.peer_dialback or not self.dialback_enabled(local):
                raise StreamError("unsupported-version", "XMPP 1.0 streams only")
            return
        self.send(self._in_features())

    def _in_features(self) -> ET.Element:
        feats = ET.Element(f"{{{ns.STREAM}}}features")
        host = self.server.hosts[self.local]
        can_tls = self.manager.can_tls(self.local)
        if not self.tls and can_tls:
            tls = ET.SubElement(feats, f"{{{ns.TLS}}}starttls")
            if self.manager.require_encryption(self.local):
                ET.SubElement(tls, f"{{{ns.TLS}}}required")
        if self.tls or not self.manager.require_encryption(self.local) or not can_tls:
            if self.auth_method != "sasl-external" and self.remote and self.cert_identity_valid(self.remote):
                mechs = ET.SubElement(feats, f"{{{ns.SASL}}}mechanisms")
                ET.SubElement(mechs, f"{{{ns.SASL}}}mechanism").text = "EXTERNAL"
            for func in host.stream_features.get("s2s", ()):
                el = func(self)
                if el is not None:
                    feats.append(el)
        return feats

    async def _in_element(self, el: ET.Element) -> None:
        tag = el.tag
        if tag in SERVER_KINDS:
            await self._in_stanza(el)
            return
        if tag == f"{{{ns.TLS}}}starttls":
            if self.tls or not self.manager.can_tls(self.local):
                self._write(f"<failure xmlns='{ns.TLS}'/>")
                self.close()
                return
            ctx = self.manager.server_tls_context(self.local)
            self._write(f"<proceed xmlns='{ns.TLS}'/>")
            self._flush()
            await self._start_tls(ctx, server_side=True)
            return
        if tag == f"{{{ns.SASL}}}auth":
            self._in_sasl(el)
            return
        if tag == f"{{{ns.SASL}}}abort":
            self.send(_sasl_failure("aborted"))
            return
        if tag == f"{{{BIDI}}}bidi":
            if not self.bidi_enabled(self.local):
                raise StreamError("unsupported-stanza-type", "bidirectional streams are not enabled here")
            if not self.tls and self.manager.require_encryption(self.local) and self.manager.can_tls(self.local):
                raise StreamError("policy-violation", "use TLS first")
            self.bidi = True
            for remote, local in self.pairs:  # requested after authentication: fine too
                self.manager.bidi_incoming(self, local, remote)
            return
        if tag in (f"{{{DB}}}result", f"{{{DB}}}verify"):
            if not self.dialback_enabled(self.local):
                raise StreamError("unsupported-stanza-type", "dialback is not enabled on this host")
            if not self.tls and self.manager.require_encryption(self.local) and self.manager.can_tls(self.local):
                raise StreamError("policy-violation", "use TLS first")
            await self._dialback().incoming(self, el)
            return
        raise StreamError("unsupported-stanza-type", f"unexpected element {tag}")

    def _in_sasl(self, el: ET.Element) -> None:
        if el.get("mechanism") != "EXTERNAL" or self.auth_method == "sasl-external":
            self.send(_sasl_failure("invalid-mechanism"))
            return
        text = (el.text or "").strip()
        try:
            authzid = base64.b64decode(text, validate=True).decode() if text not in ("", "=") else ""
        except (binascii.Error, ValueError, UnicodeDecodeError):
            self.send(_sasl_failure("incorrect-encoding"))
            return
        domain = authzid or self.remote
        try:
            domain = nameprep(domain) if domain else None
        except InvalidJID:
            domain = None
        if domain is None:
            self.send(_sasl_failure("invalid-authzid"))
            return
        if self.remote and domain != self.remote:
            self.send(_sasl_failure("invalid-authzid", "the stream is from another domain"))
            return
        if not self.cert_identity_valid(domain):
            self.send(_sasl_failure("not-authorized", "your certificate is not valid for this domain"))
            return
        self.remote = domain
        self.auth_method = "sasl-external"
        self.pairs.add((domain, self.local))
        self._authenticated_in()
        if self.bidi:
            self.manager.bidi_incoming(self, self.local, domain)
        self._queue.clear()
        self.parser.reset()
        self.header_sent = False
        self.send(ET.Element(f"{{{ns.SASL}}}success"))
        log.info("%r: %s authenticated with SASL EXTERNAL", self, domain)

    def add_pair(self, remote: str, local: str, method: str) -> None:
        """Dialback authenticated ``remote`` for ``local`` on this incoming stream."""
        self.pairs.add((remote, local))
        if self.auth_method is None:
            self.auth_method = method
        if self.remote is None:
            self.remote = remote
        self._authenticated_in()
        log.info("%r: %s authenticated for %s with %s", self, remote, local, method)
        if self.bidi:
            self.manager.bidi_incoming(self, local, remote)

    def _authenticated_in(self) -> None:
        if self._timeout:
            self._timeout.cancel()
            self._timeout = None

    async def _in_stanza(self, el: ET.Element) -> None:
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

    # ============================== outgoing =====================================
    def _open_out_stream(self) -> None:
        self.header_sent = False
        self._send_header()

    async def _out_stream_open(self, so: StreamOpen) -> None:
        if so.default_ns != ns.SERVER:
            raise StreamError("invalid-namespace", "expected jabber:server")
        self.stream_id = so.attrs.get("id")
        self.peer_dialback = so.namespaces.get("db") == DB
        if not so.attrs.get("version"):
            # a pre-1.0 server sends no features: dialback straight away
            self.peer_version = (0, 9)
            await self._out_features(ET.Element(f"{{{ns.STREAM}}}features"))

    async def _out_element(self, el: ET.Element) -> None:
        tag = el.tag
        if tag == f"{{{ns.STREAM}}}features":
            await self._out_features(el)
        elif tag == f"{{{ns.TLS}}}proceed":
            ctx = self.manager.client_tls_context(self.local, verify=self.verify_chain)
            if await self._start_tls(ctx, server_side=False):
                self._open_out_stream()
        elif tag == f"{{{ns.TLS}}}failure":
            raise S2SFailure("the peer refused STARTTLS")
        elif tag == f"{{{ns.SASL}}}success":
            self.auth_method = "sasl-external"
            self._queue.clear()
            self.parser.reset()
            self._open_out_stream()
        elif tag == f"{{{ns.SASL}}}failure":
            log.info("%r: SASL EXTERNAL refused (%s)", self, _first_local(el))
            self._try_dialback(sasl_failed=True)
        elif tag in (f"{{{DB}}}result", f"{{{DB}}}verify"):
            await self._dialback().outgoing(self, el)
        elif tag in SERVER_KINDS:
            if not self.bidi:
                # RFC 6120 allows nothing inbound here without XEP-0288
                raise StreamError("unsupported-stanza-type", "stanzas go over our incoming stream")
            await self._in_stanza(el)
        elif tag == f"{{{ns.STREAM}}}error":
            cond = _first_local(el) or "undefined-condition"
            text = el.findtext(f"{{{ns.STREAMS_ERR}}}text")
            self._fail(S2SFailure(f"stream error from {self.remote}: {cond}{' (' + text + ')' if text else ''}",
                                  final=cond in ("host-unknown", "not-authorized", "policy-violation")))
            self.close()
        else:
            log.debug("%r: ignoring %s", self, tag)

    async def _out_features(self, feats: ET.Element) -> None:
        if self.auth_method == "sasl-external":
            self._out_authenticated()
            return
        if feats.find(f"{{{DB_FEATURE}}}dialback") is not None:
            self.peer_dialback = True
        if not self.tls:
            starttls = feats.find(f"{{{ns.TLS}}}starttls")
            if starttls is not None and self.manager.can_tls_out(self.local):
                self._write(f"<starttls xmlns='{ns.TLS}'/>")
                return
            if self.manager.require_encryption(self.local):
                raise S2SFailure(f"{self.remote} does not offer TLS", final=True)
            if self.manager.secure_required(self.local, self.remote):
                raise S2SFailure(f"{self.remote} does not offer TLS, so it cannot be authenticated", final=True)
        if not self.stream_ready.done():
            self.stream_ready.set_result(self)
        if (not self.bidi and feats.find(f"{{{BIDI_FEATURE}}}bidi") is not None
                and self.bidi_enabled(self.local)):
            # XEP-0288: no answer comes; authentication goes on at once
            self.bidi = True
            self.send(ET.Element(f"{{{BIDI}}}bidi"))
        mechs = [m.text for m in feats.iter(f"{{{ns.SASL}}}mechanism")]
        if (self.tls and "EXTERNAL" in mechs and not self._sasl_started
                and self.manager.has_certificate(self.local)):
            self._sasl_started = True
            auth = ET.Element(f"{{{ns.SASL}}}auth", {"mechanism": "EXTERNAL"})
            auth.text = base64.b64encode(self.local.encode()).decode()
            self.send(auth)
            return
        self._try_dialback()

    def _try_dialback(self, sasl_failed: bool = False) -> None:
        if self._dialback_started:
            return
        if not self.dialback_enabled(self.local):
            raise S2SFailure(f"{self.remote} did not accept our certificate and dialback is not enabled"
                             if sasl_failed else f"{self.remote} offers no way to authenticate", final=True)
        if not self.peer_dialback:
            raise S2SFailure(f"{self.remote} supports neither SASL EXTERNAL for us nor dialback", final=True)
        self._dialback_started = True
        self._dialback().start(self)

    def dialback_succeeded(self) -> None:
        self.auth_method = self.auth_method or "dialback"
        self._out_authenticated()

    def _out_authenticated(self) -> None:
        self.authenticated = True
        if self.bidi:
            self.pairs.add((self.remote, self.local))  # the peer may answer on this stream
        if self._timeout:
            self._timeout.cancel()
            self._timeout = None
        if not self.stream_ready.done():
            self.stream_ready.set_result(self)
        if not self.ready.done():
            self.ready.set_result(self)
        log.info("%r: authenticated to %s (%s)", self, self.remote, self.auth_method)

    async def request_verify(self, receiving: str, originating: str, stream_id: str, key: str) -> bool:
        """Dialback: ask the authoritative server (our peer) whether ``key`` is right."""
        fut = asyncio.get_running_loop().create_future()
        k = (originating, receiving, stream_id)
        old = self.verify_waiters.get(k)
        if old is not None and not old.done():
            old.set_result(False)
        self.verify_waiters[k] = fut
        el = ET.Element(f"{{{DB}}}verify", {"from": receiving, "to": originating, "id": stream_id})
        el.text = key
        self.send(el)
        try:
            return await asyncio.wait_for(fut, self.manager.timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            if self.verify_waiters.get(k) is fut:
                del self.verify_waiters[k]


def _sasl_failure(condition: str, text: str | None = None) -> ET.Element:
    el = ET.Element(f"{{{ns.SASL}}}failure")
    ET.SubElement(el, f"{{{ns.SASL}}}{condition}")
    if text:
        ET.SubElement(el, f"{{{ns.SASL}}}text").text = text
    return el


def _first_local(el: ET.Element) -> str | None:
    for child in el:
        if child.tag.endswith("}text"):
            continue
        return child.tag.rpartition("}")[2]
    return None

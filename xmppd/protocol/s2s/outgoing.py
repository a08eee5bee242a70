"""Outgoing server-to-server streams: one connection attempt to one address, made by
an outgoing link (``manager.py``), which tries other candidates when it fails.

The stream negotiates STARTTLS (or starts with TLS, XEP-0368), checks the peer's
certificate (chain and RFC 6125 identity), lets the local host's modules look at
the peer's features (``s2s-out-features``: bidi asks for its stream there), then
authenticates with SASL EXTERNAL when offered and we have a certificate, otherwise
through the first module that takes ``s2s-authenticate`` (dialback), and resolves
``ready``. Answers to a module's elements come back as ``s2s-out-element/...``.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import xml.etree.ElementTree as ET

from ...stream import StreamOpen
from ...xmpp import ns
from ...xmpp.errors import StreamError
from .stream import SERVER_KINDS, S2SFailure, S2SStream, first_local

log = logging.getLogger("xmppd.s2s")


class OutgoingStream(S2SStream):
    direction = "out"
    kind = "s2sout"

    def __init__(self, manager, *, local: str, remote: str, direct_tls: bool = False,
                 verify_chain: bool = True, target: str = ""):
        super().__init__(manager, local=local, remote=remote, direct_tls=direct_tls)
        self.verify_chain = verify_chain
        self.target = target
        self.features: ET.Element | None = None   # the peer's latest stream features
        # resolved on authentication (or failure); stream_ready once the stream is
        # usable for a module's own exchanges, e.g. dialback verification (after TLS)
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.stream_ready: asyncio.Future = loop.create_future()
        self._sasl_started = False
        self._auth_started = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.direct_tls:
            self._got_tls()
            if self.closing:
                return
        self._open()

    def _send_header(self) -> None:
        if self.header_sent:
            return
        self.header_sent = True
        self._write(self._header())

    def _open(self) -> None:
        self.header_sent = False
        self._send_header()

    def _negotiation_timeout(self) -> None:
        if not self.closing and not self.authenticated:
            self._fail(S2SFailure("timed out while connecting", timeout=True))
            self.stream_error(StreamError("connection-timeout", "negotiation took too long"))

    def _fail(self, f: S2SFailure) -> None:
        for fut in (self.ready, self.stream_ready):
            if not fut.done():
                fut.set_exception(f)
                fut.exception()  # retrieved: no "never retrieved" warning if unused

    def give_up(self, reason: str, *, final: bool = True) -> None:
        """A module ends the attempt (e.g. the peer refused our dialback key)."""
        self._fail(S2SFailure(reason, final=final))
        self.close()

    # -- TLS ---------------------------------------------------------------------
    def _got_tls(self) -> None:
        super()._got_tls()
        if not self.cert_identity_valid(self.remote):
            if self.manager.secure_required(self.local, self.remote):
                why = ("its certificate is not valid for the domain" if self.cert_chain_valid
                       else "its certificate does not validate")
                self._fail(S2SFailure(f"{self.remote}: {why}", final=True))
                self.close()
                return
            log.info("%r: certificate of %s not valid; dialback only", self, self.remote)

    def _tls_verify_failed(self, exc: ssl.SSLCertVerificationError) -> None:
        insecure = not self.manager.secure_required(self.local, self.remote)
        self._fail(S2SFailure(f"certificate of {self.remote} does not validate: {exc.verify_message}",
                              retry_insecure=insecure and self.verify_chain, final=not insecure))

    # -- negotiation ----------------------------------------------------------------
    async def _on_stream_open(self, so: StreamOpen) -> None:
        if so.default_ns != ns.SERVER:
            raise StreamError("invalid-namespace", "expected jabber:server")
        self.stream_id = so.attrs.get("id")
        if not so.attrs.get("version"):
            # a pre-1.0 server sends no features: authenticate straight away
            self.peer_version = (0, 9)
            await self._on_features(ET.Element(f"{{{ns.STREAM}}}features"))

    async def _on_element(self, el: ET.Element) -> None:
        tag = el.tag
        if tag == f"{{{ns.STREAM}}}features":
            await self._on_features(el)
        elif tag == f"{{{ns.TLS}}}proceed":
            ctx = self.manager.client_tls_context(self.local, verify=self.verify_chain)
            if await self._start_tls(ctx, server_side=False):
                self._open()
        elif tag == f"{{{ns.TLS}}}failure":
            raise S2SFailure("the peer refused STARTTLS")
        elif tag == f"{{{ns.SASL}}}success":
            self.auth_method = "sasl-external"
            self._queue.clear()
            self.parser.reset()
            self._open()
        elif tag == f"{{{ns.SASL}}}failure":
            log.info("%r: SASL EXTERNAL refused (%s)", self, first_local(el))
            await self._authenticate_otherwise(sasl_failed=True)
        elif tag in SERVER_KINDS:
            if not self.bidi:
                # RFC 6120 allows nothing inbound here without bidirectional streams
                raise StreamError("unsupported-stanza-type", "stanzas go over our incoming stream")
            await self.receive_stanza(el)
        elif tag == f"{{{ns.STREAM}}}error":
            cond = first_local(el) or "undefined-condition"
            text = el.findtext(f"{{{ns.STREAMS_ERR}}}text")
            self._fail(S2SFailure(f"stream error from {self.remote}: {cond}{' (' + text + ')' if text else ''}",
                                  final=cond in ("host-unknown", "not-authorized", "policy-violation")))
            self.close()
        elif not await self.fire_element(el):
            log.debug("%r: ignoring %s", self, tag)

    async def _on_features(self, feats: ET.Element) -> None:
        self.features = feats
        if self.auth_method == "sasl-external":
            self.authenticated_by("sasl-external")
            return
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
        await self.host.events.notify("s2s-out-features", (self, feats))
        mechs = [m.text for m in feats.iter(f"{{{ns.SASL}}}mechanism")]
        if (self.tls and "EXTERNAL" in mechs and not self._sasl_started
                and self.manager.has_certificate(self.local)):
            self._sasl_started = True
            auth = ET.Element(f"{{{ns.SASL}}}auth", {"mechanism": "EXTERNAL"})
            auth.text = base64.b64encode(self.local.encode()).decode()
            self.send(auth)
            return
        await self._authenticate_otherwise()

    async def _authenticate_otherwise(self, sasl_failed: bool = False) -> None:
        """No SASL EXTERNAL: the first module that can authenticate us takes over."""
        if self._auth_started:
            return
        self._auth_started = True
        if await self.host.events.fire("s2s-authenticate", self):
            return
        raise S2SFailure(f"{self.remote} did not accept our certificate and no other way to "
                         f"authenticate is enabled" if sasl_failed
                         else f"{self.remote} offers no way to authenticate that is enabled here",
                         final=True)

    def authenticated_by(self, method: str) -> None:
        """We may send stanzas now (``method``: how we proved who we are)."""
        self.auth_method = self.auth_method or method
        self.authenticated = True
        if self.bidi:
            self.pairs.add((self.remote, self.local))  # the peer may answer on this stream
        self._authenticated()
        if not self.stream_ready.done():
            self.stream_ready.set_result(self)
        if not self.ready.done():
            self.ready.set_result(self)
        log.info("%r: authenticated to %s (%s)", self, self.remote, self.auth_method)

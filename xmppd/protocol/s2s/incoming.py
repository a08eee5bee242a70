"""Incoming server-to-server streams: a peer connected to us (RFC 6120, XEP-0178).

We offer STARTTLS, then SASL EXTERNAL when the peer's client certificate is valid
for the domain in its stream header, plus whatever the local host's modules add
(``stream_features["s2s"]``: dialback, bidi). Elements that are neither stanzas nor
RFC 6120 negotiation go to the module that hooked them
(``s2s-in-element/<ns>:<name>``); one that nobody hooked is
``unsupported-stanza-type``. Every stanza's ``from`` domain and ``to`` host must be a
pair authenticated on this stream; stanzas are routed with the stream as origin.
"""
from __future__ import annotations

import base64
import binascii
import logging
import secrets
import xml.etree.ElementTree as ET

from ...stream import StreamOpen
from ...xmpp import ns
from ...xmpp.errors import StreamError
from ...xmpp.jid import InvalidJID, nameprep
from .stream import SERVER_KINDS, S2SStream, sasl_failure

log = logging.getLogger("xmppd.s2s")


class IncomingStream(S2SStream):
    direction = "in"
    kind = "s2sin"

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.direct_tls:
            self._got_tls()

    def _send_header(self) -> None:
        if self.header_sent:
            return
        self.header_sent = True
        if self.stream_id is None:
            self.stream_id = self.id
        self._write(self._header(id=self.stream_id))

    def _negotiation_timeout(self) -> None:
        if not self.closing and not self.pairs:
            self.stream_error(StreamError("connection-timeout", "negotiation took too long"))

    # -- the stream header ------------------------------------------------------------
    async def _on_stream_open(self, so: StreamOpen) -> None:
        attrs = so.attrs
        if self.stream_id is None or self.header_sent is False:
            self.stream_id = secrets.token_hex(12)
        to = attrs.get("to")
        frm = attrs.get("from")
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
        if not attrs.get("version"):
            # a pre-1.0 peer sends no features: only a module may take it (dialback)
            self.peer_version = (0, 9)
            if not await self.host.events.fire("s2s-legacy-stream", self):
                raise StreamError("unsupported-version", "XMPP 1.0 streams only")
            return
        self.send(self._features())

    def _features(self) -> ET.Element:
        feats = ET.Element(f"{{{ns.STREAM}}}features")
        host = self.host
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

    # -- elements -----------------------------------------------------------------------
    async def _on_element(self, el: ET.Element) -> None:
        tag = el.tag
        if tag in SERVER_KINDS:
            await self.receive_stanza(el)
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
            self._sasl(el)
            return
        if tag == f"{{{ns.SASL}}}abort":
            self.send(sasl_failure("aborted"))
            return
        self._require_tls_first()
        if await self.fire_element(el):
            return
        raise StreamError("unsupported-stanza-type", f"unexpected element {tag}")

    def _sasl(self, el: ET.Element) -> None:
        if el.get("mechanism") != "EXTERNAL" or self.auth_method == "sasl-external":
            self.send(sasl_failure("invalid-mechanism"))
            return
        text = (el.text or "").strip()
        try:
            authzid = base64.b64decode(text, validate=True).decode() if text not in ("", "=") else ""
        except (binascii.Error, ValueError, UnicodeDecodeError):
            self.send(sasl_failure("incorrect-encoding"))
            return
        domain = authzid or self.remote
        try:
            domain = nameprep(domain) if domain else None
        except InvalidJID:
            domain = None
        if domain is None:
            self.send(sasl_failure("invalid-authzid"))
            return
        if self.remote and domain != self.remote:
            self.send(sasl_failure("invalid-authzid", "the stream is from another domain"))
            return
        if not self.cert_identity_valid(domain):
            self.send(sasl_failure("not-authorized", "your certificate is not valid for this domain"))
            return
        self.remote = domain
        self.auth_method = "sasl-external"
        self._queue.clear()
        self.parser.reset()
        self.header_sent = False
        self.send(ET.Element(f"{{{ns.SASL}}}success"))
        # authenticated once <success/> is sent (a trace starts after it)
        self.add_pair(domain, self.local, "sasl-external", quiet=True)
        log.info("%r: %s authenticated with SASL EXTERNAL", self, domain)

    def add_pair(self, remote: str, local: str, method: str, *, quiet: bool = False) -> None:
        """``remote`` is authenticated for sending to ``local`` on this stream."""
        self.pairs.add((remote, local))
        if self.auth_method is None:
            self.auth_method = method
        if self.remote is None:
            self.remote = remote
        self._authenticated()
        if not quiet:
            log.info("%r: %s authenticated for %s with %s", self, remote, local, method)
        if self.bidi:
            self.manager.bidi_incoming(self, local, remote)

    def enable_bidi(self) -> None:
        """The peer asked to receive our stanzas on this stream too (XEP-0288): for
        the reverse of each pair authenticated, now or later."""
        self.bidi = True
        for remote, local in self.pairs:
            self.manager.bidi_incoming(self, local, remote)

"""TLS for server-to-server links: contexts that check the peer, and RFC 6125 identity.

Chain validation is OpenSSL's, against ``ssl.cafile``/``ssl.capath`` or the system
store. Python's ``ssl`` cannot finish a handshake with an invalid certificate while
requesting one, so:

* outgoing: :func:`client_context` with ``verify=True`` first; if the chain does not
  validate and the domain may use dialback, the link reconnects with ``verify=False``
  and the certificate counts as invalid (dialback only);
* incoming: :func:`server_context` asks for a client certificate (``CERT_OPTIONAL``)
  only where every peer must have a valid one anyway (``s2s_secure_auth`` on and no
  ``s2s_insecure_domains``): a peer without a certificate still connects, one with an
  invalid certificate is refused at the handshake. Elsewhere no certificate is asked
  for and peers authenticate with dialback.

:func:`identity_matches` is the RFC 6125 / RFC 6120 §13.7.2 check of a validated
certificate against a domain: SRV-ID ``_xmpp-server.DOMAIN``, DNS-ID (``*.`` for one
left label), id-on-xmppAddr; the CN only when the certificate has no subjectAltName.
"""
from __future__ import annotations

import logging
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

from .tls import CIPHERS, ID_ON_XMPPADDR, _norm, name_matches

log = logging.getLogger("xmppd.tls")

ALPN_S2S = "xmpp-server"
ID_ON_DNSSRV = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")


def _load_trust(ctx: ssl.SSLContext, cafile: str | None, capath: str | None) -> None:
    if cafile or capath:
        ctx.load_verify_locations(cafile=cafile or None, capath=capath or None)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH if ctx.verify_mode is ssl.CERT_REQUIRED
                               else ssl.Purpose.CLIENT_AUTH)


def client_context(cert: str | None, key: str | None, *, verify: bool, cafile: str | None = None,
                   capath: str | None = None, direct_tls: bool = False) -> ssl.SSLContext:
    """Outgoing: our certificate as client certificate (XEP-0178), the peer's chain
    checked when ``verify`` (the name is checked afterwards, by :func:`identity_matches`:
    RFC 6125 rules differ from HTTPS's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_ciphers(CIPHERS)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if verify:
        _load_trust(ctx, cafile, capath)
    if cert and key:
        ctx.load_cert_chain(str(cert), str(key))
    if direct_tls:
        ctx.set_alpn_protocols([ALPN_S2S])
    return ctx


def server_context(cert: str, key: str, *, request_cert: bool, cafile: str | None = None,
                   capath: str | None = None, direct_tls: bool = False) -> ssl.SSLContext:
    from .tls import make_server_context
    ctx = make_server_context(cert, key, alpn=[ALPN_S2S] if direct_tls else None)
    if request_cert:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        _load_trust(ctx, cafile, capath)
    return ctx


def peer_cert_der(transport) -> bytes | None:
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return None
    try:
        return sslobj.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return None


def _decode_utf8string(der: bytes) -> str | None:
    """The value of a DER UTF8String (tag 0x0c) or IA5String (0x16); None otherwise."""
    if len(der) < 2 or der[0] not in (0x0C, 0x16):
        return None
    n = der[1]
    off = 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(der[2:2 + k], "big")
        off = 2 + k
    try:
        return der[off:off + n].decode("utf-8")
    except UnicodeDecodeError:
        return None


def cert_identities(cert_der: bytes) -> dict[str, list[str]]:
    """{"dns": [...], "srv": [...], "xmpp": [...], "cn": [...]} of a certificate."""
    cert = x509.load_der_x509_certificate(cert_der)
    out: dict[str, list[str]] = {"dns": [], "srv": [], "xmpp": [], "cn": []}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        out["dns"] = [_norm(n) for n in san.get_values_for_type(x509.DNSName)]
        for other in san.get_values_for_type(x509.OtherName):
            value = _decode_utf8string(other.value)
            if value is None:
                continue
            if other.type_id == ID_ON_XMPPADDR:
                out["xmpp"].append(value)
            elif other.type_id == ID_ON_DNSSRV:
                out["srv"].append(value)
    out["cn"] = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    return out


def identity_matches(cert_der: bytes, domain: str) -> bool:
    """Is this (already chain-validated) certificate for the XMPP service ``domain``?"""
    domain = _norm(domain)
    try:
        ids = cert_identities(cert_der)
    except ValueError:
        return False
    for srv in ids["srv"]:
        service, _, name = srv.partition(".")
        if service.lower() == "_xmpp-server" and name_matches(name, domain):
            return True
    if any(name_matches(n, domain) for n in ids["dns"]):
        return True
    if any(_norm(a) == domain for a in ids["xmpp"] if "@" not in a and "/" not in a):
        return True
    if not (ids["dns"] or ids["srv"] or ids["xmpp"]):
        return any(name_matches(cn, domain) for cn in ids["cn"])
    return False

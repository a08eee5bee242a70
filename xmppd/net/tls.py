"""TLS contexts per host (SNI), certificates on disk, and channel-binding data.

- :func:`make_server_context` builds one server-side :class:`ssl.SSLContext` (TLS 1.2+,
  AEAD ciphers with forward secrecy, no compression, optional ALPN).
- :class:`CertificateStore` holds one certificate per set of names and picks the right
  context from the SNI name, so a single listener serves every VirtualHost and Component.
- :func:`tls_server_end_point` computes the RFC 5929 §4.1 ``tls-server-end-point``
  channel-binding data used by SCRAM-*-PLUS.
- :func:`generate_self_signed` and :func:`find_certificate` serve ``xmppctl`` and first
  start-up: a throw-away certificate, and Prosody's lookup of a ``certificates`` directory.

Nothing here does network I/O.
"""
from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

__all__ = [
    "CertificateStore", "CIPHERS", "ID_ON_XMPPADDR", "cert_names", "end_point_hash_of",
    "find_certificate", "generate_self_signed", "private_file", "write_private", "load_cert_der",
    "make_server_context", "name_matches", "tls_server_end_point",
]

# Mozilla "intermediate" TLS 1.2 suites (TLS 1.3 suites are not configurable here and
# are all AEAD): ECDHE/DHE key exchange only, AES-GCM and ChaCha20-Poly1305 only.
CIPHERS = ("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"
           ":!aNULL:!eNULL:!MD5:!DSS:!SHA1:!PSK:!SRP")

# RFC 6120 §13.7.1.4: otherName id-on-xmppAddr
ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")


# --- channel binding ----------------------------------------------------------------

def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 §4.1 ``tls-server-end-point`` data: a hash of the DER certificate.

    The hash is the certificate signature's hash, except that MD5 and SHA-1 are
    replaced by SHA-256. Raises ValueError when the signature uses no single hash
    (Ed25519, Ed448): the binding is undefined there, so -PLUS must not be offered.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    algo = cert.signature_hash_algorithm
    if algo is None:
        raise ValueError("tls-server-end-point is undefined for a signature without a hash")
    if isinstance(algo, (hashes.MD5, hashes.SHA1)):
        algo = hashes.SHA256()
    digest = hashes.Hash(algo)
    digest.update(cert_der)
    return digest.finalize()


def end_point_hash_of(cert_der: bytes) -> bytes | None:
    """:func:`tls_server_end_point`, or None when it is undefined for this certificate."""
    try:
        return tls_server_end_point(cert_der)
    except ValueError:
        return None


# --- certificates on disk -----------------------------------------------------------

def _load_certs(cert_path) -> list[x509.Certificate]:
    data = Path(cert_path).read_bytes()
    if b"-----BEGIN" in data:
        certs = x509.load_pem_x509_certificates(data)
    else:
        certs = [x509.load_der_x509_certificate(data)]
    if not certs:
        raise ValueError(f"{cert_path}: no certificate found")
    return certs


def load_cert_der(cert_path) -> bytes:
    """The first certificate of a PEM chain (or a DER file), as DER bytes."""
    return _load_certs(cert_path)[0].public_bytes(serialization.Encoding.DER)


def cert_names(cert_path_or_der) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName dNSNames, else its CN.

    Accepts a path or DER bytes; names are lower-cased, in certificate order.
    """
    if isinstance(cert_path_or_der, (bytes, bytearray)):
        cert = x509.load_der_x509_certificate(bytes(cert_path_or_der))
    else:
        cert = _load_certs(cert_path_or_der)[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    return [_norm(n) for n in names]


def _utf8string_der(text: str) -> bytes:
    data = text.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + data


@contextlib.contextmanager
def private_file(path: Path, mode: int, *, text: bool = False):
    """A file written atomically: the block writes to a temporary file made with
    *mode* next to *path* (parent dirs created), which is fsynced and renamed to
    *path* when the block ends, and removed if it raises. Certificates, keys,
    exports: anything a reader must never see half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w" if text else "wb", encoding="utf-8" if text else None) as f:
            os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_private(path: Path, data: bytes, mode: int) -> None:
    """Write *data* to *path* atomically with *mode* (see :func:`private_file`)."""
    with private_file(path, mode) as f:
        f.write(data)


def generate_self_signed(domain: str, cert_path, key_path, *, days: int = 3650,
                         extra_names: Iterable[str] = (), wildcard: bool = False) -> None:
    """Write a self-signed certificate and its EC P-256 key (PEM) for *domain*.

    subjectAltName: dNSName for *domain*, each of *extra_names* (e.g. its components,
    ``conference.<domain>``) and ``*.<domain>`` if *wildcard*; plus an id-on-xmppAddr
    otherName for each non-wildcard name (RFC 6120 §13.7.1.4). Usable for both server
    and client authentication (s2s). The key file is created with mode 0600, the
    certificate with 0644; missing parent directories are created.
    """
    domain = _norm(domain)
    names = [domain] + [_norm(n) for n in extra_names]
    if wildcard:
        names.append(f"*.{domain}")
    names = list(dict.fromkeys(n for n in names if n))  # de-duplicate, keep order
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            continue
        except ValueError:
            pass
        alt.append(x509.DNSName(n))
    alt += [x509.OtherName(ID_ON_XMPPADDR, _utf8string_der(n))
            for n in names if not n.startswith("*.")]
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_private(Path(key_path), key_pem, 0o600)
    write_private(Path(cert_path), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def find_certificate(domain: str, certificates_dir, *, parents: bool = True
                     ) -> tuple[Path, Path] | None:
    """Prosody's ``certificates`` directory convention: ``(cert, key)`` or None.

    For *domain*, tried in order: ``DOMAIN.crt`` + ``DOMAIN.key``;
    ``DOMAIN/fullchain.pem`` + ``DOMAIN/privkey.pem`` (certbot layout); ``DOMAIN.pem``
    holding both. With *parents* (Prosody does this too) the parent domains are tried
    next, so ``conference.example.com`` may use ``example.com``'s files; whether that
    certificate really covers the name is for :func:`cert_names` / ``xmppctl check certs``.
    """
    base = Path(certificates_dir)
    name = _norm(domain)
    while name:
        for crt, key in ((f"{name}.crt", f"{name}.key"),
                         (f"{name}/fullchain.pem", f"{name}/privkey.pem"),
                         (f"{name}.pem", f"{name}.pem")):
            if (base / crt).is_file() and (base / key).is_file():
                return base / crt, base / key
        if not parents or "." not in name:
            break
        name = name.split(".", 1)[1]
    return None


# --- contexts -----------------------------------------------------------------------

def make_server_context(cert_path, key_path, *, alpn: list[str] | None = None,
                        password: str | None = None) -> ssl.SSLContext:
    """A server-side context: TLS >= 1.2, :data:`CIPHERS`, no compression, no
    renegotiation, server cipher preference, ALPN protocols if *alpn* is given
    (e.g. ``["xmpp-client"]`` for XEP-0368 direct TLS). Raises ``ssl.SSLError`` /
    ``OSError`` if the certificate or key cannot be loaded or do not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.set_ciphers(CIPHERS)
    ctx.load_cert_chain(str(cert_path), str(key_path), password=password)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _not_after(der: bytes) -> str | None:
    """The end of a certificate's validity, ISO 8601 in UTC."""
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.isoformat()
    except (ValueError, AttributeError):
        return None


def _norm(name: str) -> str:
    """Lower-case, no trailing dot, IDNA A-label when possible (SNI sends A-labels)."""
    name = name.strip().rstrip(".").lower()
    if name and not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return name


def name_matches(pattern: str, name: str) -> bool:
    """Certificate name matching (RFC 6125 §6.4.3): exact, or ``*.`` for one left label."""
    pattern, name = _norm(pattern), _norm(name)
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


@dataclass(eq=False)
class _Entry:
    names: list[str]
    cert_path: Path
    key_path: Path
    cert_der: bytes
    end_point_hash: bytes | None
    contexts: dict[tuple[str, ...], ssl.SSLContext] = field(default_factory=dict)


class CertificateStore:
    """Certificates by name; picks the context for an SNI name.

    ``store.add([], cert, key)`` takes the names from the certificate. Lookup:
    exact name, then a wildcard entry, then the default (the first certificate added).
    ``default_context()`` is what a listener wraps its sockets with: its SNI callback
    swaps in the chosen host's context during the handshake.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._exact: dict[str, _Entry] = {}
        self._wild: dict[str, _Entry] = {}       # "example.com" for "*.example.com"
        self._by_ctx: dict[int, _Entry] = {}     # id(context) -> entry (contexts kept alive)
        self._listener_contexts: list[ssl.SSLContext] = []

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, names: Iterable[str], cert_path, key_path, *, password: str | None = None
            ) -> None:
        """Register a certificate for *names* (its own DNS names if *names* is empty).

        Loads it at once, so a bad path, key or mismatch fails here and not at the first
        handshake. A later ``add`` for a name already present replaces it.
        """
        cert_path, key_path = Path(cert_path), Path(key_path)
        der = load_cert_der(cert_path)
        names = [_norm(n) for n in names] or cert_names(der)
        if not names:
            raise ValueError(f"{cert_path}: no names given and none in the certificate")
        entry = _Entry(names, cert_path, key_path, der, end_point_hash_of(der))
        self._context(entry, None, password=password)  # validate now
        old = next((e for e in self._entries if e.names == names), None)
        if old is None:
            self._entries.append(entry)
        else:   # other files for the same names: new handshakes get them
            for k in old.contexts:
                self._context(entry, list(k) or None, password=password)
            self._entries[self._entries.index(old)] = entry
            for lctx in self._listener_contexts:
                if self._by_ctx.get(id(lctx)) is old:
                    lctx.load_cert_chain(str(cert_path), str(key_path), password=password)
                    self._by_ctx[id(lctx)] = entry
        for n in names:
            if n.startswith("*."):
                self._wild[n[2:]] = entry
            else:
                self._exact[n] = entry

    def _context(self, entry: _Entry, alpn, *, password: str | None = None) -> ssl.SSLContext:
        k = tuple(alpn or ())
        ctx = entry.contexts.get(k)
        if ctx is None:
            ctx = make_server_context(entry.cert_path, entry.key_path, alpn=list(k) or None,
                                      password=password)
            entry.contexts[k] = ctx
            self._by_ctx[id(ctx)] = entry
        return ctx

    def _entry_for(self, server_name: str | None) -> _Entry:
        if not self._entries:
            raise LookupError("no certificate configured")
        if server_name:
            name = _norm(server_name)
            entry = self._exact.get(name)
            if entry is None and "." in name:
                entry = self._wild.get(name.split(".", 1)[1])
            if entry is not None:
                return entry
        return self._entries[0]

    def names(self) -> list[str]:
        """Every name registered, in order of addition."""
        return [n for e in self._entries for n in e.names]

    def has_name(self, server_name: str) -> bool:
        """True if *server_name* has its own certificate (exact or wildcard)."""
        name = _norm(server_name)
        return name in self._exact or ("." in name and name.split(".", 1)[1] in self._wild)

    def context_for(self, server_name: str | None, *, alpn: list[str] | None = None
                    ) -> ssl.SSLContext:
        """The context for *server_name*: exact match, wildcard, then the default."""
        return self._context(self._entry_for(server_name), alpn)

    def default_context(self, *, alpn: list[str] | None = None) -> ssl.SSLContext:
        """The listener's context: the default certificate, with an SNI callback that
        switches each connection to its host's context (same ALPN list)."""
        default = self._entry_for(None)
        for entry in self._entries:  # build now: no file I/O inside a handshake later
            self._context(entry, alpn)
        # A context of its own: the callback must not leak into context_for() results.
        ctx = make_server_context(default.cert_path, default.key_path, alpn=alpn)
        self._by_ctx[id(ctx)] = default
        self._listener_contexts.append(ctx)  # keeps id(ctx) valid for _by_ctx

        def sni_callback(sslobj, server_name, _ctx):
            try:
                target = self.context_for(server_name, alpn=alpn)
            except Exception:  # never abort a handshake from here; keep the default
                log.exception("SNI: no context for %r", server_name)
                return None
            # always the host's current context: after reload() it has the new certificate
            if target is not sslobj.context:
                sslobj.context = target
            return None

        ctx.sni_callback = sni_callback
        return ctx

    def reload(self) -> list[dict]:
        """Read every certificate and key again from their files (certbot renewed
        them): new handshakes get the new certificate, established connections keep
        theirs (and their channel-binding data). A pair that cannot be loaded (missing,
        unreadable, key and certificate not matching) keeps the old one.

        Returns one report per certificate: ``{"names", "certificate", "key",
        "changed", "not_after", "error"}``.
        """
        reports = []
        for entry in self._entries:
            report = {"names": list(entry.names), "certificate": str(entry.cert_path),
                      "key": str(entry.key_path), "changed": False, "not_after": None,
                      "error": None}
            reports.append(report)
            try:
                der = load_cert_der(entry.cert_path)
                if der != entry.cert_der:
                    fresh = {k: make_server_context(entry.cert_path, entry.key_path,
                                                    alpn=list(k) or None)
                             for k in (entry.contexts or {(): None})}
            except (OSError, ValueError, ssl.SSLError) as exc:
                report["error"] = f"{type(exc).__name__}: {exc}"
                der = entry.cert_der
            report["not_after"] = _not_after(der)
            if report["error"] or der == entry.cert_der:
                continue
            # connections made with the old contexts keep answering with the old data
            old = _Entry(entry.names, entry.cert_path, entry.key_path, entry.cert_der,
                         entry.end_point_hash, dict(entry.contexts))
            for ctx in entry.contexts.values():
                self._by_ctx[id(ctx)] = old
            entry.cert_der, entry.end_point_hash = der, end_point_hash_of(der)
            entry.contexts = fresh
            for ctx in fresh.values():
                self._by_ctx[id(ctx)] = entry
            # a listener's own context (clients without SNI) is reloaded in place
            for lctx in self._listener_contexts:
                if self._by_ctx.get(id(lctx)) is entry:
                    lctx.load_cert_chain(str(entry.cert_path), str(entry.key_path))
            report["changed"] = True
            log.info("certificate for %s reloaded from %s", ", ".join(entry.names), entry.cert_path)
        return reports

    def end_point_hash(self, server_name: str | None) -> bytes | None:
        """``tls-server-end-point`` data for the certificate served to *server_name*
        (None when undefined for that certificate, e.g. Ed25519)."""
        return self._entry_for(server_name).end_point_hash

    def end_point_hash_for(self, ssl_object) -> bytes | None:
        """``tls-server-end-point`` data for an established server-side connection
        (``ssl.SSLObject`` / ``ssl.SSLSocket``), from the context it ended up with;
        the server side cannot ask OpenSSL for its own certificate otherwise."""
        entry = self._by_ctx.get(id(ssl_object.context))
        return entry.end_point_hash if entry is not None else None

    def files_for(self, server_name: str | None) -> tuple[Path, Path]:
        """``(certificate, key)`` paths served to *server_name* (s2s builds its own
        contexts from them: they request and check the peer's certificate)."""
        entry = self._entry_for(server_name)
        return entry.cert_path, entry.key_path

    def cert_der_for(self, server_name: str | None) -> bytes:
        """The DER certificate served to *server_name*."""
        return self._entry_for(server_name).cert_der

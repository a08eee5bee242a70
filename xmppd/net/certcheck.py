"""What is wrong with a certificate, in words an admin can act on.

- :func:`inspect` reads a certificate file and its key and says whether the key
  belongs to the certificate, which of the names it must serve it covers, whether
  its chain leads to a CA this machine trusts, and when it expires. ``xmppctl check
  certs``, ``check config`` and the daemon (at start, and daily for expiry) use it.
- :func:`index_certificates` finds the certificates in directories such as certbot's
  ``/etc/letsencrypt/live`` by the names inside them (``xmppctl cert import``).

Only local files are read; nothing here does network I/O.
"""
from __future__ import annotations

import datetime
import functools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .tls import _load_certs, _norm, cert_names, name_matches

__all__ = ["Finding", "Inspection", "index_certificates", "inspect", "pick_for",
           "EXPIRY_ERROR_DAYS", "EXPIRY_WARNING_DAYS"]

# Prosody's `check certs`: expired or within a day is an error, within a week or a
# month a warning.
EXPIRY_ERROR_DAYS = 1
EXPIRY_WARNING_DAYS = (7, 31)

_SHA256 = hashes.SHA256()
SYSTEM_CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


@dataclass
class Finding:
    level: str            # "error" (unusable or refused by peers), "warning", "info"
    text: str


@dataclass
class Inspection:
    cert_path: Path
    key_path: Path
    names: list[str] = field(default_factory=list)        # what the certificate is for
    issuer: str | None = None
    self_signed: bool = False
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    days_left: float | None = None
    usable: bool = False     # loaded, key matches: a TLS context can be made of it
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, text: str) -> None:
        self.findings.append(Finding(level, text))

    @property
    def errors(self) -> list[str]:
        return [f.text for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.text for f in self.findings if f.level == "warning"]


def _unreadable(path: Path, what: str) -> str | None:
    if not path.exists():
        return f"the {what} file {path} does not exist"
    if not path.is_file():
        return f"the {what} {path} is not a file"
    if not os.access(path, os.R_OK):
        return f"the {what} file {path} is not readable by this user (uid {os.geteuid()})"
    return None


def _load_key(path: Path):
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except TypeError:   # "Password was not given but private key is encrypted"
        raise ValueError("the key is encrypted with a passphrase, which xmppd cannot be given") from None


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _short_name(name: x509.Name) -> str:
    cn = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    org = name.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    text = cn[0].value if cn else name.rfc4514_string()
    if org and org[0].value != text:
        text += f" ({org[0].value})"
    return str(text)


def inspect(cert_path, key_path, names: Iterable[str] = (), *,
            now: datetime.datetime | None = None, ca_file: str | None = None) -> Inspection:
    """Everything :mod:`xmppctl check certs` says about one certificate and key that
    must serve ``names``. ``ca_file`` is the trust store for the chain check (the
    system's by default)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    r = Inspection(Path(cert_path), Path(key_path))
    problem = _unreadable(r.cert_path, "certificate")
    if problem:
        r.add("error", problem)
        return r
    try:
        chain = _load_certs(r.cert_path)
    except (ValueError, OSError) as exc:
        r.add("error", f"{r.cert_path} is not a PEM or DER certificate ({exc})")
        return r
    leaf = chain[0]
    r.names = cert_names(leaf.public_bytes(serialization.Encoding.DER))
    r.issuer = _short_name(leaf.issuer)
    r.self_signed = leaf.issuer == leaf.subject
    r.not_before, r.not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    r.days_left = (r.not_after - now).total_seconds() / 86400

    problem = _unreadable(r.key_path, "key")
    if problem:
        r.add("error", problem)
    else:
        try:
            key = _load_key(r.key_path)
        except ValueError as exc:
            msg = str(exc)
            if "encrypted" not in msg:
                msg = f"{r.key_path} is not a private key in PEM or DER ({msg})"
            else:
                msg = f"{r.key_path}: {msg}"
            r.add("error", msg)
        else:
            if _public_der(key.public_key()) != _public_der(leaf.public_key()):
                r.add("error", f"the key {r.key_path} does not belong to the certificate "
                      f"{r.cert_path} (a key from another certificate, or an old one)")
            else:
                r.usable = True

    for name in names:
        if not any(name_matches(p, name) for p in r.names):
            r.add("error", f"the certificate is for {', '.join(r.names) or 'no name'}, not "
                  f"{_norm(name)}: clients and servers connecting to {_norm(name)} will refuse it")

    if now < r.not_before:
        r.add("error", f"the certificate is not valid before {r.not_before:%Y-%m-%d %H:%M} UTC")
    if r.days_left < 0:
        r.add("error", f"the certificate expired on {r.not_after:%Y-%m-%d}")
    elif r.days_left < EXPIRY_ERROR_DAYS:
        r.add("error", f"the certificate expires within a day ({r.not_after:%Y-%m-%d %H:%M} UTC)")
    elif r.days_left < EXPIRY_WARNING_DAYS[0]:
        r.add("warning", f"the certificate expires within a week ({r.not_after:%Y-%m-%d})")
    elif r.days_left < EXPIRY_WARNING_DAYS[1]:
        r.add("warning", f"the certificate expires within a month ({r.not_after:%Y-%m-%d})")

    if r.self_signed:
        r.add("info", "self-signed: clients must accept it by hand, and servers on the public "
              "XMPP network refuse it (use a certificate from a CA, e.g. Let's Encrypt)")
    else:
        _check_chain(r, chain, names, now, ca_file)
    return r


def _check_chain(r: Inspection, chain: list[x509.Certificate], names, now, ca_file) -> None:
    """Whether the certificates in the file lead, signature by signature, to a CA of
    ``ca_file``: the mistake seen in practice is a file without the intermediate."""
    if not hasattr(chain[0], "verify_directly_issued_by"):   # cryptography < 40
        r.add("info", "chain not checked (needs python3-cryptography 40 or later)")
        return
    ca_file = ca_file or next((f for f in SYSTEM_CA_FILES if os.path.isfile(f)), None)
    if ca_file is None:
        r.add("info", "chain not checked: no CA bundle on this machine (apt-get install ca-certificates)")
        return
    try:
        roots = _ca_certificates(ca_file)
    except (OSError, ValueError) as exc:
        r.add("info", f"chain not checked: cannot read {ca_file} ({exc})")
        return
    problem = _chain_problem(chain, roots, now)
    if problem is None:
        return
    hint = ""
    if len(chain) == 1:
        hint = (" — the file holds no intermediate certificate: use the full chain "
                "(certbot's fullchain.pem, not cert.pem)")
    r.add("warning", f"the chain from {r.issuer} does not lead to a CA this machine "
          f"trusts ({ca_file}): {problem}{hint}")


def _chain_problem(chain: list[x509.Certificate], roots: list[x509.Certificate], now) -> str | None:
    from cryptography.exceptions import InvalidSignature
    root_set = {c.fingerprint(_SHA256) for c in roots}
    current, pool = chain[0], chain[1:] + roots
    for _ in range(8):
        if current.fingerprint(_SHA256) in root_set:
            return None
        issuer = None
        for c in pool:
            if c.subject != current.issuer or c is current:
                continue
            try:
                current.verify_directly_issued_by(c)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = c
            break
        if issuer is None:
            return (f"{_short_name(current.subject)} is signed by {_short_name(current.issuer)}, "
                    f"which is neither in the file nor a trusted CA")
        if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc \
                and issuer.fingerprint(_SHA256) not in root_set:
            return f"the intermediate {_short_name(issuer.subject)} is not valid now " \
                   f"(until {issuer.not_valid_after_utc:%Y-%m-%d})"
        if issuer.fingerprint(_SHA256) in root_set:
            return None
        current = issuer
    return "the chain is too long"


@functools.lru_cache(maxsize=4)
def _ca_certificates(ca_file: str) -> list[x509.Certificate]:
    with warnings.catch_warnings():   # old CAs in the bundle with non-positive serials
        warnings.simplefilter("ignore")
        return x509.load_pem_x509_certificates(Path(ca_file).read_bytes())


# -- finding certificates by the names inside them (cert import) ------------------------

_KEY_NAMES = ("privkey.pem", "key.pem")


def _candidates(directory: Path):
    """``(certificate, key)`` pairs in *directory* and its sub-directories: certbot's
    ``live/NAME/{fullchain,privkey}.pem``, ``NAME.crt`` + ``NAME.key``, ``NAME.pem``
    with both."""
    dirs = [directory] + sorted(p for p in directory.iterdir() if p.is_dir()) \
        if directory.is_dir() else []
    for d in dirs:
        try:
            files = {p.name: p for p in d.iterdir() if p.is_file()}
        except OSError:
            continue
        for key_name in _KEY_NAMES:
            if key_name in files:
                for cert_name in ("fullchain.pem", "cert.pem"):
                    if cert_name in files:
                        yield files[cert_name], files[key_name]
                        break
        for name, path in sorted(files.items()):
            stem, ext = os.path.splitext(name)
            if ext == ".crt" and f"{stem}.key" in files:
                yield path, files[f"{stem}.key"]
            elif ext == ".pem" and name not in ("fullchain.pem", "cert.pem", "chain.pem") \
                    and name not in _KEY_NAMES and f"{stem}.key" in files:
                yield path, files[f"{stem}.key"]


def index_certificates(directories: Iterable) -> list[tuple[Path, Path, list[str], datetime.datetime]]:
    """Every readable certificate with a key in *directories*: ``(cert, key, names,
    not_after)``. Unreadable or broken files are skipped."""
    out = []
    seen = set()
    for d in directories:
        for cert, key in _candidates(Path(d)):
            real = cert.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                leaf = _load_certs(cert)[0]
            except (OSError, ValueError):
                continue
            out.append((cert, key, cert_names(leaf.public_bytes(serialization.Encoding.DER)),
                        leaf.not_valid_after_utc))
    return out


def pick_for(index, host: str):
    """The best certificate of :func:`index_certificates` for *host*: one naming it
    exactly before a wildcard, then the one valid longest. None if none covers it."""
    host = _norm(host)
    best = None
    for cert, key, names, not_after in index:
        if host in names:
            rank = (1, not_after)
        elif any(name_matches(n, host) for n in names):
            rank = (0, not_after)
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, (cert, key))
    return best[1] if best else None

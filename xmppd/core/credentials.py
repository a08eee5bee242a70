"""Passwords stored only as SCRAM credentials (RFC 5802 §3, RFC 7677).

A password is never stored: an account keeps one salt and iteration count and, per
hash, the SCRAM ``StoredKey`` and ``ServerKey``. That is enough to run SCRAM-SHA-1(-PLUS)
and SCRAM-SHA-256(-PLUS) as a server, and to check a PLAIN password by deriving the
keys again (PBKDF2) and comparing in constant time.

The record is JSON-serialisable::

    {"iterations": 10000, "salt": "<b64>",
     "scram-sha-1":   {"stored_key": "<b64>", "server_key": "<b64>"},
     "scram-sha-256": {"stored_key": "<b64>", "server_key": "<b64>"}}

The keys are made by scramp's ``ScramMechanism.make_auth_info`` so the SCRAM exchange
in :mod:`xmppd.protocol.sasl` (also scramp) verifies them byte for byte. The password
is SASLprep'd (RFC 4013) by scramp before PBKDF2.

PBKDF2 is deliberately slow: use the ``*_async`` variants from the event loop, they run
it in a worker thread.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets

from scramp import ScramException, ScramMechanism
from scramp.utils import saslprep

__all__ = [
    "DEFAULT_ITERATIONS", "MIN_ITERATIONS", "HASHES", "SCRAM_KEYS",
    "make_credentials", "make_credentials_async",
    "verify_password", "verify_password_async", "scram_auth_info", "keys_from_salted_password",
]

# Prosody (mod_auth_internal_hashed, 0.12 and later) creates accounts with
# ``default_iteration_count`` = 10000 (minimum 4096); releases before 0.12 hard-coded 4096.
DEFAULT_ITERATIONS = 10000
# RFC 5802 §5.1 / RFC 7677 §4: at least 4096 (scramp refuses fewer).
MIN_ITERATIONS = 4096
SALT_BYTES = 16

# record key -> scramp mechanism name (the -PLUS variants use the same keys)
SCRAM_KEYS = {"scram-sha-1": "SCRAM-SHA-1", "scram-sha-256": "SCRAM-SHA-256"}
HASHES = tuple(SCRAM_KEYS)

_MECHS = {key: ScramMechanism(name) for key, name in SCRAM_KEYS.items()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _prepare(password: str) -> str:
    """SASLprep (RFC 4013) or ValueError; an empty result is refused too."""
    if not isinstance(password, str):
        raise TypeError("password must be a str")
    try:
        prepared = saslprep(password)
    except ScramException as e:
        raise ValueError(f"password refused by SASLprep: {e}") from None
    if not prepared:
        raise ValueError("empty password")
    return prepared


def make_credentials(password: str, iterations: int = DEFAULT_ITERATIONS) -> dict:
    """SCRAM credentials for *password* (SHA-1 and SHA-256, one shared salt).

    Raises ValueError for a password SASLprep refuses (or empty) and for fewer than
    :data:`MIN_ITERATIONS` iterations. Blocking (two PBKDF2 runs).
    """
    prepared = _prepare(password)
    if not isinstance(iterations, int) or iterations < MIN_ITERATIONS:
        raise ValueError(f"iterations must be an int >= {MIN_ITERATIONS}")
    salt = secrets.token_bytes(SALT_BYTES)
    creds: dict = {"iterations": iterations, "salt": _b64(salt)}
    for key, mech in _MECHS.items():
        try:
            _salt, stored_key, server_key, _i = mech.make_auth_info(prepared, iterations, salt)
        except ScramException as e:  # e.g. iteration count above scramp's DoS guard
            raise ValueError(str(e)) from None
        creds[key] = {"stored_key": _b64(stored_key), "server_key": _b64(server_key)}
    return creds


def scram_auth_info(creds: dict, hash_key: str) -> tuple[bytes, bytes, bytes, int] | None:
    """``(salt, stored_key, server_key, iterations)`` for scramp's auth_fn, or None.

    *hash_key* is ``"scram-sha-1"`` or ``"scram-sha-256"``. None when the record lacks
    that hash or is damaged (the caller then treats the user as unknown).
    """
    try:
        keys = creds[hash_key]
        return (_unb64(creds["salt"]), _unb64(keys["stored_key"]),
                _unb64(keys["server_key"]), int(creds["iterations"]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


_DIGESTS = {"scram-sha-1": hashlib.sha1, "scram-sha-256": hashlib.sha256}


def keys_from_salted_password(hash_key: str, salted_password: bytes) -> dict:
    """The record's keys for *hash_key* from a client's SaltedPassword (RFC 5802
    §3: ``StoredKey = H(HMAC(SP, "Client Key"))``, ``ServerKey = HMAC(SP, "Server
    Key")``), for a record gaining a hash without the password being sent.
    ValueError for an unknown hash or a SaltedPassword of the wrong length."""
    digest = _DIGESTS.get(hash_key)
    if digest is None:
        raise ValueError(f"unknown hash {hash_key!r}")
    if not isinstance(salted_password, bytes) or len(salted_password) != digest().digest_size:
        raise ValueError("a SaltedPassword has the hash's length")
    client_key = hmac.new(salted_password, b"Client Key", digest).digest()
    server_key = hmac.new(salted_password, b"Server Key", digest).digest()
    return {"stored_key": _b64(digest(client_key).digest()), "server_key": _b64(server_key)}


def verify_password(creds: dict | None, password: str) -> bool:
    """True if *password* matches *creds*. Blocking (one PBKDF2 run).

    Uses the strongest hash present; both StoredKey and ServerKey are compared in
    constant time. A damaged record or a password SASLprep refuses gives False.
    """
    if not creds or not isinstance(password, str):
        return False
    try:
        prepared = _prepare(password)
    except ValueError:
        return False
    for key in reversed(HASHES):  # strongest first
        info = scram_auth_info(creds, key)
        if info is None:
            continue
        salt, stored_key, server_key, iterations = info
        try:
            _s, new_stored, new_server, _i = _MECHS[key].make_auth_info(prepared, iterations, salt)
        except ScramException:
            return False
        ok_stored = hmac.compare_digest(new_stored, stored_key)
        ok_server = hmac.compare_digest(new_server, server_key)
        return ok_stored & ok_server
    return False


async def make_credentials_async(password: str, iterations: int = DEFAULT_ITERATIONS) -> dict:
    """:func:`make_credentials` in a worker thread (never blocks the event loop)."""
    return await asyncio.to_thread(make_credentials, password, iterations)


async def verify_password_async(creds: dict | None, password: str) -> bool:
    """:func:`verify_password` in a worker thread (never blocks the event loop)."""
    return await asyncio.to_thread(verify_password, creds, password)

"""Server-side SASL, sans-I/O (RFC 6120 §6; RFC 5802, RFC 7677, RFC 4616, RFC 5929).

Mechanisms: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS (channel binding
``tls-server-end-point``), SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN (offered only over TLS).

The caller owns the XML: it base64-decodes the ``<auth/>`` / ``<response/>`` text
(:func:`decode_payload`), awaits :meth:`SASLServer.step`, and sends a ``<challenge/>``
or ``<success/>`` carrying :func:`encode_payload` of ``SASLStep.data``; a
:class:`~xmppd.xmpp.errors.SASLFailure` becomes ``<failure/>``. A failed exchange is over:
start a new :class:`SASLServer` for the client's next ``<auth/>``.

SCRAM is scramp's server. scramp's ``auth_fn`` is synchronous, so the username is
parsed out of the client-first message here, the stored credentials are awaited, and
scramp gets an ``auth_fn`` returning what was fetched. An unknown user gets made-up
credentials (a salt stable per name) and fails at the proof like a wrong password:
both answer ``not-authorized`` at the same step, so user names cannot be probed.

Usernames are normalised with nodeprep (RFC 6122 Appendix A) by :func:`nodeprep`,
which uses ``slixmpp.jid.JID`` (its Rust core applies nodeprep to the localpart).
Credentials are the records of :mod:`xmppd.core.credentials`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable

from scramp import ScramException, ScramMechanism
from scramp.core import Gs2Header
from scramp.utils import ServerError, saslprep
from slixmpp.jid import JID, InvalidJID

from ..core.credentials import (
    DEFAULT_ITERATIONS, make_credentials_async, scram_auth_info, verify_password_async,
)
from ..xmpp.errors import SASLFailure
from ..net.tls import tls_server_end_point  # re-exported

log = logging.getLogger(__name__)

__all__ = [
    "ALL_MECHANISMS", "CHANNEL_BINDING_TYPE", "SASLServer", "SASLStep", "decode_payload",
    "encode_payload", "nodeprep", "offered_mechanisms", "tls_server_end_point",
]

CHANNEL_BINDING_TYPE = "tls-server-end-point"
PLUS_MECHANISMS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS")
SCRAM_MECHANISMS = PLUS_MECHANISMS + ("SCRAM-SHA-256", "SCRAM-SHA-1")
ALL_MECHANISMS = SCRAM_MECHANISMS + ("PLAIN",)

# mechanism -> key of the credentials record
_HASH_KEY = {
    "SCRAM-SHA-1": "scram-sha-1", "SCRAM-SHA-1-PLUS": "scram-sha-1",
    "SCRAM-SHA-256": "scram-sha-256", "SCRAM-SHA-256-PLUS": "scram-sha-256",
}
_HASH_FN = {"scram-sha-1": hashlib.sha1, "scram-sha-256": hashlib.sha256}

# A SASL message larger than this is refused (the stream layer caps stanzas anyway).
MAX_MESSAGE = 8192

# scramp error -> RFC 6120 §6.5 condition
_SCRAM_CONDITIONS = {
    ServerError.INVALID_PROOF: "not-authorized",
    ServerError.UNKNOWN_USER: "not-authorized",
    ServerError.CHANNEL_BINDINGS_DONT_MATCH: "not-authorized",
    ServerError.SERVER_DOES_SUPPORT_CHANNEL_BINDING: "not-authorized",
    ServerError.CHANNEL_BINDING_NOT_SUPPORTED: "not-authorized",
    ServerError.UNSUPPORTED_CHANNEL_BINDING_TYPE: "not-authorized",
    ServerError.NO_RESOURCES: "temporary-auth-failure",
    ServerError.INVALID_ENCODING: "malformed-request",
    ServerError.INVALID_USERNAME_ENCODING: "malformed-request",
    ServerError.EXTENSIONS_NOT_SUPPORTED: "malformed-request",
    ServerError.OTHER_ERROR: "malformed-request",
}

# Made-up credentials for unknown users are keyed by this per-process secret.
_FAKE_SECRET = secrets.token_bytes(32)
_dummy_creds: dict | None = None


def offered_mechanisms(*, tls: bool, channel_binding_available: bool,
                       allow_plain: bool = True, sha256: bool = True) -> list[str]:
    """Mechanisms to advertise, strongest first.

    -PLUS only over TLS with channel-binding data; PLAIN only over TLS and if allowed;
    SCRAM-SHA-256(-PLUS) unless ``sha256`` is false (the host has accounts with
    SCRAM-SHA-1 keys only: imported ones, see ``core/accounts.py``).
    """
    out: list[str] = []
    if tls and channel_binding_available:
        out += PLUS_MECHANISMS
    out += ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    if not sha256:
        out = [m for m in out if not m.startswith("SCRAM-SHA-256")]
    if tls and allow_plain:
        out.append("PLAIN")
    return out


def decode_payload(text: str | None) -> bytes | None:
    """The bytes of an ``<auth/>`` / ``<response/>`` text (RFC 6120 §6.4.2).

    No text → None (no initial response); ``"="`` → ``b""`` (empty response); otherwise
    strict base64, else ``SASLFailure("incorrect-encoding")``.
    """
    if text is None:
        return None
    text = "".join(text.split())  # whitespace between base64 groups is harmless
    if not text:
        return None
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure("incorrect-encoding") from None


def encode_payload(data: bytes) -> str:
    """Text for ``<challenge/>`` / ``<success/>``: ``"="`` for empty data (RFC 6120 §6.4.6
    allows an empty ``<success/>`` too; ``"="`` is always unambiguous)."""
    return base64.b64encode(data).decode("ascii") if data else "="


def nodeprep(name: str) -> str:
    """Nodeprep (RFC 6122 Appendix A) *name* via ``slixmpp.jid.JID``, or ValueError."""
    if not name or "@" in name or "/" in name:
        raise ValueError("not a valid localpart")
    try:
        out = JID(f"{name}@nodeprep.invalid").user
    except InvalidJID as e:
        raise ValueError(str(e)) from None
    if not out or len(out.encode("utf-8")) > 1023:
        raise ValueError("not a valid localpart")
    return out


@dataclass(frozen=True, slots=True)
class SASLStep:
    """What to send: ``kind`` is ``"challenge"`` or ``"success"``; ``data`` its payload
    (SCRAM's server-first, or server-final ``v=...`` as additional data with success).
    On success ``username`` is the nodeprep'd localpart and ``authzid`` the bare JID the
    client asked to act as (always the user's own), or None if it asked for none."""
    kind: str
    data: bytes = b""
    username: str | None = None
    authzid: str | None = None


class _Gs2HeaderWithAuthzid(Gs2Header):
    """scramp refuses a gs2 authzid; we strip it before scramp parses the client-first
    message and put this in its place, so the ``c=`` check covers the header the client
    really sent (authzid included), as RFC 5802 §7 requires."""

    def __init__(self, parsed: Gs2Header, raw: str):
        super().__init__(parsed.gs2_char, parsed.cb_name)
        self._raw = raw

    def __str__(self) -> str:
        return self._raw

    def __bytes__(self) -> bytes:
        return self._raw.encode("utf-8")


def _unescape_saslname(value: str) -> str:
    """RFC 5802 saslname: ``=2C`` → ``,``, ``=3D`` → ``=``; any other ``=`` is malformed."""
    i = value.find("=")
    while i != -1:
        if value[i:i + 3] not in ("=2C", "=3D"):
            raise SASLFailure("malformed-request", "bad escape in saslname")
        i = value.find("=", i + 3)
    return value.replace("=2C", ",").replace("=3D", "=")


class SASLServer:
    """One SASL exchange with one client.

    *get_credentials(username)* returns the stored record (see
    :mod:`xmppd.core.credentials`) or None. *verify_plain(username, password)*, if
    given, checks PLAIN passwords (e.g. an external auth backend); by default PLAIN is
    checked against the same records, off the event loop. *host* is the VirtualHost,
    for checking an authzid. *channel_binding* is ``("tls-server-end-point", data)``
    for this connection; needed for -PLUS.
    """

    def __init__(self, mechanism: str, *, offered: list[str], host: str,
                 get_credentials: Callable[[str], Awaitable[dict | None]],
                 channel_binding: tuple[str, bytes] | None = None,
                 verify_plain: Callable[[str, str], Awaitable[bool]] | None = None):
        if mechanism not in offered or mechanism not in ALL_MECHANISMS:
            raise SASLFailure("invalid-mechanism")
        if mechanism in PLUS_MECHANISMS and not (channel_binding and channel_binding[1]):
            raise SASLFailure("invalid-mechanism")
        self.mechanism = mechanism
        self._offered = list(offered)
        try:
            self._host = JID(host).domain
        except InvalidJID:
            raise ValueError(f"invalid host {host!r}") from None
        self._get_credentials = get_credentials
        self._channel_binding = channel_binding
        self._verify_plain = verify_plain
        self._state = "start"
        self._scram = None
        self._unknown_user = False
        self._username: str | None = None
        self._authzid: str | None = None

    def tried(self) -> str | None:
        """The (normalised) account a client tried to log in as, once known."""
        return self._username

    @property
    def done(self) -> bool:
        """True once the exchange succeeded or failed."""
        return self._state == "done"

    async def step(self, data: bytes | None) -> SASLStep:
        """Feed the client's (decoded) data; returns what to send, or raises SASLFailure.

        At the first step, None or ``b""`` means no initial response: the answer is an
        empty challenge.
        """
        if self._state == "done":
            raise SASLFailure("malformed-request", "the exchange is over")
        if data is not None and len(data) > MAX_MESSAGE:
            self._state = "done"
            raise SASLFailure("malformed-request", "message too long")
        try:
            if self._state == "start":
                self._state = "first"
                if not data:
                    return SASLStep("challenge", b"")
            if self.mechanism == "PLAIN":
                result = await self._plain(data or b"")
            elif self._state == "first":
                result = await self._scram_first(data or b"")
            else:
                result = self._scram_final(data or b"")
        except SASLFailure:
            self._state = "done"
            raise
        except Exception:
            self._state = "done"
            log.exception("SASL %s: internal error", self.mechanism)
            raise SASLFailure("temporary-auth-failure") from None
        if result.kind == "success":
            self._state = "done"
        return result

    # --- helpers ------------------------------------------------------------------

    def _check_authzid(self, authzid: str, username: str) -> str | None:
        """The normalised authzid, None if empty; invalid-authzid unless it is
        ``username@host`` (RFC 6120 §6.3.8: no acting as someone else)."""
        if not authzid:
            return None
        try:
            jid = JID(authzid)
        except InvalidJID:
            raise SASLFailure("invalid-authzid") from None
        if jid.resource or jid.user != username or jid.domain != self._host:
            raise SASLFailure("invalid-authzid")
        return f"{jid.user}@{jid.domain}"

    async def _lookup(self, username: str) -> dict | None:
        try:
            return await self._get_credentials(username)
        except Exception:
            log.exception("SASL: credentials lookup failed")
            raise SASLFailure("temporary-auth-failure") from None

    # --- PLAIN (RFC 4616) ---------------------------------------------------------

    async def _plain(self, data: bytes) -> SASLStep:
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise SASLFailure("malformed-request")
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request") from None
        if not authcid or not password:
            raise SASLFailure("malformed-request")
        try:
            username = nodeprep(saslprep(authcid))
        except (ScramException, ValueError):
            username = None  # no such account can exist
        self._username = username
        authzid_out = self._check_authzid(authzid, username) if username else None
        if self._verify_plain is not None:
            ok = bool(username) and await self._verify_plain(username, password)
        else:
            creds = await self._lookup(username) if username else None
            if creds is None:  # spend the same PBKDF2 time as for a real account
                await verify_password_async(await _dummy_credentials(), password)
                ok = False
            else:
                ok = await verify_password_async(creds, password)
        if not ok:
            raise SASLFailure("not-authorized")
        return SASLStep("success", b"", username, authzid_out)

    # --- SCRAM (RFC 5802, RFC 7677) -----------------------------------------------

    async def _scram_first(self, data: bytes) -> SASLStep:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request") from None
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SASLFailure("malformed-request")
        flag, authz, bare = parts
        plus = self.mechanism in PLUS_MECHANISMS

        # gs2 channel-binding flag (RFC 5802 §6)
        if flag.startswith("p="):
            if not plus:
                raise SASLFailure("malformed-request", "channel binding with a non-PLUS mechanism")
            if flag[2:] != self._channel_binding[0]:
                raise SASLFailure("not-authorized", "unsupported channel-binding type")
        elif flag in ("n", "y"):
            if plus:
                raise SASLFailure("malformed-request", "-PLUS mechanism without channel binding")
            if flag == "y" and any(m in self._offered for m in PLUS_MECHANISMS):
                # The client can bind but believes we cannot: a downgrade.
                raise SASLFailure("not-authorized", "channel binding was offered")
        else:
            raise SASLFailure("malformed-request")

        if authz and not authz.startswith("a="):
            raise SASLFailure("malformed-request")
        authzid = _unescape_saslname(authz[2:]) if authz else ""

        # client-first-message-bare: n=<saslname>,r=<nonce>[,ext]
        if not bare.startswith("n="):
            raise SASLFailure("malformed-request")
        raw_user = _unescape_saslname(bare[2:].split(",", 1)[0])
        try:
            prepped = saslprep(raw_user)
        except ScramException:
            raise SASLFailure("malformed-request") from None
        if not prepped:
            raise SASLFailure("malformed-request")
        try:
            username = nodeprep(prepped)
        except ValueError:
            username = None
        if username is not None:
            self._authzid = self._check_authzid(authzid, username)
        elif authzid:
            raise SASLFailure("invalid-authzid")

        hash_key = _HASH_KEY[self.mechanism]
        creds = await self._lookup(username) if username else None
        info = scram_auth_info(creds, hash_key) if creds else None
        if info is None:
            self._unknown_user = True
            info = _fake_auth_info(prepped, hash_key)
        self._username = username

        mech = ScramMechanism(self.mechanism)
        try:
            server = mech.make_server(lambda _name: info,
                                      channel_binding=self._channel_binding if plus else None)
            server.set_client_first(f"{flag},,{bare}")
            if authz:
                server.gs2_header = _Gs2HeaderWithAuthzid(server.gs2_header, f"{flag},{authz},")
            server_first = server.get_server_first()
        except ScramException as e:
            raise _scram_failure(e) from None
        self._scram = server
        self._state = "final"
        return SASLStep("challenge", server_first.encode("utf-8"))

    def _scram_final(self, data: bytes) -> SASLStep:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request") from None
        server = self._scram
        try:
            server.set_client_final(text)
        except ScramException as e:
            raise _scram_failure(e) from None
        if self._unknown_user:  # made-up keys never verify; this is belt and braces
            raise SASLFailure("not-authorized")
        try:
            server_final = server.get_server_final()
        except ScramException as e:
            raise _scram_failure(e) from None
        return SASLStep("success", server_final.encode("utf-8"), self._username, self._authzid)


def _scram_failure(e: ScramException) -> SASLFailure:
    condition = _SCRAM_CONDITIONS.get(e.server_error, "malformed-request")
    log.debug("SCRAM failure: %s -> %s", e.server_error, condition)
    return SASLFailure(condition)


def _fake_auth_info(name: str, hash_key: str) -> tuple[bytes, bytes, bytes, int]:
    """Credentials for a user who does not exist: the salt is stable per name (so two
    attempts look alike), the keys are random (so no proof can match)."""
    salt = hmac.new(_FAKE_SECRET, f"{hash_key}\0{name}".encode("utf-8"), hashlib.sha256).digest()[:16]
    size = _HASH_FN[hash_key]().digest_size
    return salt, secrets.token_bytes(size), secrets.token_bytes(size), DEFAULT_ITERATIONS


async def _dummy_credentials() -> dict:
    global _dummy_creds
    if _dummy_creds is None:
        _dummy_creds = await make_credentials_async(secrets.token_urlsafe(16))
    return _dummy_creds

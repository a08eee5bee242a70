"""Fast Authentication Streamlining Tokens (XEP-0484): a client that logged in
with its password asks for a token, and logs in with it next time in one round
trip (the HT-SHA-256 mechanisms of draft-schmaus-kitten-sasl-ht).

A token belongs to one account and one client (the ``id`` of the user agent the
client names in its authentication request, XEP-0388) and one mechanism:
``HT-SHA-256-NONE`` (no channel binding) or ``HT-SHA-256-ENDP`` (bound to the
TLS connection by ``tls-server-end-point``, RFC 5929). Offered over TLS only.

Each client has two slots (XEP-0484 §6.1): ``new``, where a token goes when it
is issued, and ``cur``, where it moves when it is first used; a use of ``new``
ends the token in ``cur``. A token is rotated (a new one in ``new``, sent with
the success) once it is older than ``sasl2_fast_token_min_ttl``; it expires
``sasl2_fast_token_ttl`` after it was issued. ``<fast invalidate='true'/>``
ends the token used.

Replay (XEP-0484 §4.4): a ``count`` on ``<fast/>`` must be higher than any
count already seen with that token; a count seen again, or a lower one, fails.
(This server does not take TLS 0-RTT data, so a count is not required.)

Stored: per client (the SHA-256 of its user-agent id) and slot, the mechanism,
times, last count, a fingerprint of the account's credentials (a password
change, by any way, makes every token of the account invalid: the fingerprint no
longer matches), and the SHA-256 of the token, never the token. The token is
longer than HMAC-SHA-256's block, so HMAC keyed by the token is HMAC keyed by
its hash (RFC 2104 §2): the hash verifies the client's proof. It is still a
secret (it is enough to log in): the store is as sensitive as the accounts.
Deleting an account deletes its tokens.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import InlineFeature, Option, SaslMechanism
from xmppd.xmpp import ns
from xmppd.xmpp.errors import SASLFailure
from xmppd.xmpp.jid import InvalidJID, nodeprep
from xmppd.xmpp.time import utc_stamp

PROTOCOLS = ["XEP-0484"]
OPTIONS = [
    Option("sasl2_fast_token_ttl", "number", 86400 * 21, "both",
           "How long a token stays valid after it was issued (Prosody's mod_sasl2_fast "
           "name and default, 21 days): a client that does not log in within it uses "
           "its password again. Seconds.", min=1),
    Option("sasl2_fast_token_min_ttl", "number", 86400, "both",
           "Age in seconds after which a token used to log in is replaced by a new one "
           "(rotation).", min=0),
]

MECHANISMS = ("HT-SHA-256-ENDP", "HT-SHA-256-NONE")   # channel binding first
BINDING = {"HT-SHA-256-ENDP": "tls-server-end-point", "HT-SHA-256-NONE": None}
TOKEN_PREFIX = "xmppd-fast-"     # then 64 characters: longer than the HMAC block
STORE = "fast_tokens"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _client_key(ua_id: str) -> str:
    return hashlib.sha256(ua_id.encode("utf-8")).hexdigest()


def fingerprint(creds: dict | None) -> str | None:
    """What changes when the password does (a new salt): a token remembers it."""
    if not creds or "salt" not in creds:
        return None
    return hashlib.sha256(f"{creds['salt']}\0{creds.get('iterations')}".encode()).hexdigest()[:32]


class Fast:
    def __init__(self, m):
        self.m = m
        self.host = m.host
        self.store = m.open_store(STORE, "map")
        self.slot = m.session_slot()        # the token a session logged in with

    def option(self, name: str) -> float:
        return float(self.m.get_option(name))

    def mechanisms(self, session) -> list[str]:
        if not session.tls:
            return []
        return [mech for mech in MECHANISMS
                if BINDING[mech] is None or session.channel_binding(BINDING[mech])]

    # -- the inline feature --------------------------------------------------------------
    def advertise(self, session) -> ET.Element | None:
        mechs = self.mechanisms(session)
        if not mechs:
            return None
        el = ET.Element(f"{{{ns.FAST}}}fast")
        for mech in mechs:
            ET.SubElement(el, f"{{{ns.FAST}}}mechanism").text = mech
        return el

    # -- authentication with a token -------------------------------------------------------
    async def authenticate(self, session, data: bytes | None, request: ET.Element):
        mech = session.sasl_mechanism
        if not data or b"\0" not in data:
            raise SASLFailure("malformed-request", "expected authcid NUL proof")
        authcid, proof = data.split(b"\0", 1)
        try:
            username = nodeprep(authcid.decode("utf-8"))
        except (UnicodeDecodeError, InvalidJID):
            raise SASLFailure("not-authorized") from None
        session.sasl2.username = username   # for the log line of a failure
        ua_id = (session.user_agent or {}).get("id")
        if not ua_id:
            raise SASLFailure("not-authorized", "a token needs the user agent's id")
        fast = request.find(f"{{{ns.FAST}}}fast")
        count = None
        if fast is not None and fast.get("count") is not None:
            try:
                count = int(fast.get("count"))
            except ValueError:
                raise SASLFailure("malformed-request", "count is a number") from None
            if count < 0:
                raise SASLFailure("malformed-request", "count is a positive number")
        binding = BINDING[mech]
        cb_data = b""
        if binding is not None:
            cb_data = session.channel_binding(binding) or b""
            if not cb_data:
                raise SASLFailure("not-authorized")
        creds = await session.server.accounts.get_credentials(self.host.name, username)
        current = fingerprint(creds)
        client = _client_key(ua_id)
        now = time.time()
        expired = replayed = False
        for slot in ("new", "cur"):
            key = f"{client}-{slot}"
            record = await self.store.get(username, key)
            if not record or record.get("mechanism") != mech:
                continue
            key_bytes = base64.b64decode(record["hash"])
            expected = hmac.new(key_bytes, b"Initiator" + cb_data, hashlib.sha256).digest()
            if not hmac.compare_digest(expected, proof):
                continue
            if current is None or record.get("credentials") != current:
                expired = True      # the password changed since (or the account is gone)
                continue
            if record["expires"] <= now:
                expired = True
                continue
            last = record.get("count")
            if count is not None and last is not None and count <= last:
                replayed = True
                continue
            if count is not None:
                record["count"] = count
            if slot == "new":       # first use of the newest token: it is the current one
                await self.store.set(username, f"{client}-cur", record)
                await self.store.delete(username, key)
            elif count is not None:
                await self.store.set(username, key, record)
            self.slot.set(session, {"client": client, "record": record,
                                    "invalidate": fast is not None
                                    and fast.get("invalidate") in ("1", "true"),
                                    "asked": request.find(f"{{{ns.FAST}}}request-token") is not None})
            return username, hmac.new(key_bytes, b"Responder" + cb_data, hashlib.sha256).digest()
        if replayed:
            raise SASLFailure("not-authorized", "this token's count was already used")
        if expired:
            raise SASLFailure("credentials-expired", "this token is no longer valid")
        raise SASLFailure("not-authorized")

    # -- after authentication: a token asked for, rotation, invalidation ---------------------
    async def inline(self, session, el: ET.Element):
        used = self.slot.get(session)
        ua_id = (session.user_agent or {}).get("id")
        if el.tag == f"{{{ns.FAST}}}request-token":
            mech = el.get("mechanism", "")
            if not ua_id or mech not in self.mechanisms(session):
                return None
            return await self.issue(session, ua_id, mech)
        if el.tag != f"{{{ns.FAST}}}fast" or used is None:
            return None
        self.slot.pop(session)
        if used["invalidate"]:
            await self.store.delete(session.username, f"{used['client']}-cur")
            self.m.log.info("%s invalidated a token", session.bare_jid)
            return None
        record = used["record"]
        if not used["asked"] and time.time() - record["issued"] >= self.option("sasl2_fast_token_min_ttl"):
            return await self.issue(session, ua_id, record["mechanism"])
        return None

    async def issue(self, session, ua_id: str, mech: str) -> ET.Element:
        """A new token in the ``new`` slot of this client (one not used yet goes)."""
        creds = await session.server.accounts.get_credentials(self.host.name, session.username)
        token = TOKEN_PREFIX + secrets.token_urlsafe(48)
        now = time.time()
        expires = now + self.option("sasl2_fast_token_ttl")
        await self.store.set(session.username, f"{_client_key(ua_id)}-new", {
            "mechanism": mech, "hash": base64.b64encode(_digest(token)).decode("ascii"),
            "issued": now, "expires": expires, "count": None,
            "credentials": fingerprint(creds)})
        self.m.log.debug("%s: a %s token for a client", session.bare_jid, mech)
        return ET.Element(f"{{{ns.FAST}}}token", {"expiry": utc_stamp(expires), "token": token})

    async def forget(self, user: str) -> None:
        await self.store.clear(user)


def setup(m) -> None:
    fast = Fast(m)
    m.add_item("inline-feature", InlineFeature(ns.FAST, "auth", fast.inline, advertise=fast.advertise))
    for mech in MECHANISMS:
        m.add_item("sasl-mechanism", SaslMechanism(
            mech, fast.authenticate, offered=lambda session, mech=mech: mech in fast.mechanisms(session)))
    m.hook("user-deleted", fast.forget)

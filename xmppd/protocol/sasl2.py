"""The extensible SASL profile (XEP-0388) of client streams, with its upgrade
tasks (XEP-0480) and the binding made inside it (XEP-0386).

Beside the classic ``<mechanisms/>`` a stream offers ``<authentication
xmlns='urn:xmpp:sasl:2'>`` with the same mechanisms (those of
:mod:`xmppd.protocol.sasl`, run by the same :class:`SASLServer`), those modules
add (``sasl-mechanism`` items: one round trip, offered in this profile only), the
elements modules announce for the request itself (``inline-feature`` items of stage
``"auth"``), resource binding with the features that may be enabled inside it
(stage ``"bind"``), and the upgrade task ``UPGR-SCRAM-SHA-256``.

An exchange is ``<authenticate/>``, then ``<challenge/>``/``<response/>`` until
``<success/>`` or ``<failure/>``. No stream restart follows: the success carries
the authorization identifier (the full JID when a resource was bound), what the
inline features answered, and is followed by the stream features of the
authenticated stream. A client that asked for an upgrade task the account needs
gets ``<continue/>`` first; the task's data go in ``<task-data/>``.

Nothing the server sends between the start of a success and its end reaches the
client before it: stanzas for the new resource are held (``session._holding``)
and delivered right after it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ..xmpp import ns
from ..xmpp.errors import SASLFailure, StreamError
from ..xmpp.jid import InvalidJID, resourceprep

if TYPE_CHECKING:
    from .c2s import C2SSession

log = logging.getLogger("xmppd.c2s")

UPGRADE_TASKS = {"UPGR-SCRAM-SHA-256": "scram-sha-256"}   # task -> key of the record
MAX_TAG = 64          # characters of a client's <tag/> kept in its resource
MAX_UA_ID = 256       # a user-agent id longer than this is refused


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


AUTHENTICATE = q(ns.SASL2, "authenticate")
RESPONSE = q(ns.SASL2, "response")
ABORT = q(ns.SASL2, "abort")
NEXT = q(ns.SASL2, "next")
TASK_DATA = q(ns.SASL2, "task-data")
ELEMENTS = frozenset({AUTHENTICATE, RESPONSE, ABORT, NEXT, TASK_DATA})


class Exchange:
    """One extensible-profile exchange on a stream (until success or failure)."""
    __slots__ = ("request", "server", "upgrades", "state", "username", "additional", "task")

    def __init__(self, request: ET.Element, upgrades: list[str]):
        self.request = request          # the <authenticate/> element
        self.server = None              # the SASLServer of a multi-step mechanism
        self.upgrades = upgrades        # tasks the client asked for, in its order
        self.state = "sasl"             # "sasl", "continue" (a task was offered), "task"
        self.username: str | None = None
        self.additional = b""           # the mechanism's additional data
        self.task: str | None = None


# -- the stream feature ----------------------------------------------------------------

def feature(session: "C2SSession", mechanisms: list[str]) -> ET.Element | None:
    """``<authentication/>``, or None when no mechanism can be offered."""
    extra = [item for item in session.host.items("sasl-mechanism")
             if item.offered is None or item.offered(session)]
    if not mechanisms and not extra:
        return None
    auth = ET.Element(q(ns.SASL2, "authentication"))
    for m in mechanisms:
        ET.SubElement(auth, q(ns.SASL2, "mechanism")).text = m
    inline = ET.SubElement(auth, q(ns.SASL2, "inline"))
    for item in session.host.items("inline-feature"):
        if item.stage == "auth" and item.advertise is not None:
            el = item.advertise(session)
            if el is not None:
                inline.append(el)
    bind = ET.SubElement(inline, q(ns.BIND2, "bind"))
    bind_inline = ET.SubElement(bind, q(ns.BIND2, "inline"))
    for var in sorted({item.namespace for item in session.host.items("inline-feature")
                       if item.stage == "bind"}):
        ET.SubElement(bind_inline, q(ns.BIND2, "feature"), {"var": var})
    for task in UPGRADE_TASKS:
        ET.SubElement(auth, q(ns.SASL_UPGRADE, "upgrade")).text = task
    return auth


# -- helpers -----------------------------------------------------------------------------

def _decode(text: str | None) -> bytes | None:
    """Base64 of a SASL message; None for an absent element (XEP-0388 §2.2: an empty
    element is an empty string)."""
    if text is None:
        return None
    text = "".join(text.split())
    if not text or text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure("incorrect-encoding") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _user_agent(el: ET.Element) -> dict | None:
    ua = el.find(q(ns.SASL2, "user-agent"))
    if ua is None:
        return None
    ua_id = ua.get("id") or None
    if ua_id is not None and len(ua_id) > MAX_UA_ID:
        raise SASLFailure("malformed-request", "user-agent id too long")
    return {"id": ua_id,
            "software": (ua.findtext(q(ns.SASL2, "software")) or "").strip() or None,
            "device": (ua.findtext(q(ns.SASL2, "device")) or "").strip() or None}


def resource_for(tag: str | None, ua_id: str | None, bare_jid: str) -> str:
    """Bind 2's resource: the client's tag, then a part stable for one user agent
    of one account (random without a user-agent id)."""
    if ua_id:
        part = hashlib.sha256(f"{bare_jid}\0{ua_id}".encode("utf-8")).hexdigest()[:8]
    else:
        part = secrets.token_hex(4)
    if tag:
        try:
            prepped = resourceprep(tag.strip()[:MAX_TAG])
        except InvalidJID:
            prepped = ""
        if prepped:
            return f"{prepped}.{part}"
    return part


# -- the exchange -----------------------------------------------------------------------------

async def on_element(session: "C2SSession", el: ET.Element) -> None:
    tag = el.tag
    try:
        if tag == AUTHENTICATE:
            await _authenticate(session, el)
        elif session.sasl2 is None:
            if tag == ABORT:
                raise SASLFailure("aborted")
            raise SASLFailure("malformed-request", "no authentication in progress")
        elif tag == ABORT:
            raise SASLFailure("aborted")
        elif tag == RESPONSE:
            await _response(session, el)
        elif tag == NEXT:
            await _next(session, el)
        else:
            await _task_data(session, el)
    except SASLFailure as f:
        await fail(session, f)


async def _authenticate(session: "C2SSession", el: ET.Element) -> None:
    from .sasl import SASLServer
    if session.sasl2 is not None or session.sasl is not None:
        raise SASLFailure("malformed-request", "an authentication is already in progress")
    if not session.tls and session.server.c2s_require_encryption(session.host):
        raise SASLFailure("encryption-required")
    banned = session.server.limits.banned(session.address)
    if banned is not None:
        raise SASLFailure("temporary-auth-failure", f"too many failed logins from {session.address}; "
                          f"try again in {int(banned) + 1} seconds")
    mech = el.get("mechanism", "")
    upgrades = [(u.text or "").strip() for u in el.findall(q(ns.SASL_UPGRADE, "upgrade"))]
    for task in upgrades:
        if task not in UPGRADE_TASKS:
            raise SASLFailure("invalid-mechanism", f"unknown upgrade task {task!r}")
    session.user_agent = _user_agent(el)
    exchange = Exchange(el, upgrades)
    session.sasl2 = exchange
    data = _decode(el.findtext(q(ns.SASL2, "initial-response")))
    for item in session.host.items("sasl-mechanism"):
        if item.name == mech and (item.offered is None or item.offered(session)):
            session.sasl_mechanism = mech
            try:
                username, additional = await item.authenticate(session, data, el)
            except SASLFailure:
                raise
            except Exception:
                log.exception("%s: SASL mechanism %s failed", session.id, mech)
                raise SASLFailure("temporary-auth-failure") from None
            exchange.username = username
            exchange.additional = additional or b""
            exchange.upgrades = []     # a token is not the password: nothing to upgrade from it
            await _authenticated(session)
            return
    accounts = session.server.accounts
    host = session.host
    cb = session._end_point()
    exchange.server = SASLServer(
        mech, offered=session._mechanisms(), host=host.name,
        get_credentials=lambda user: accounts.get_credentials(host.name, user),
        channel_binding=("tls-server-end-point", cb) if cb else None)
    session.sasl_mechanism = mech
    await _step(session, data)


async def _response(session: "C2SSession", el: ET.Element) -> None:
    exchange = session.sasl2
    if exchange.state == "task":
        raise SASLFailure("malformed-request", "a task expects <task-data/>")
    if exchange.server is None or exchange.state != "sasl":
        raise SASLFailure("malformed-request", "no challenge to respond to")
    await _step(session, _decode(el.text) or b"")


async def _step(session: "C2SSession", data: bytes | None) -> None:
    exchange = session.sasl2
    step = await exchange.server.step(data)
    if step.kind == "challenge":
        c = ET.Element(q(ns.SASL2, "challenge"))
        if step.data:
            c.text = _b64(step.data)
        session.send_nonza(c)
        return
    exchange.username = step.username
    exchange.additional = step.data
    await _authenticated(session)


async def _authenticated(session: "C2SSession") -> None:
    """The mechanism succeeded: upgrade tasks, or success."""
    exchange = session.sasl2
    accounts = session.server.accounts
    host = session.host.name
    if not await accounts.is_enabled(host, exchange.username):
        raise SASLFailure("account-disabled", "this account is disabled")
    creds = await accounts.get_credentials(host, exchange.username) or {}
    # a task the account needs (one it already did is skipped: nothing to upgrade)
    pending = [t for t in exchange.upgrades if UPGRADE_TASKS[t] not in creds]
    exchange.upgrades = pending
    if pending:
        exchange.state = "continue"
        cont = ET.Element(q(ns.SASL2, "continue"))
        if exchange.additional:
            ET.SubElement(cont, q(ns.SASL2, "additional-data")).text = _b64(exchange.additional)
            exchange.additional = b""
        tasks = ET.SubElement(cont, q(ns.SASL2, "tasks"))
        ET.SubElement(tasks, q(ns.SASL2, "task")).text = pending[0]
        session.send_nonza(cont)
        return
    await session._sasl2_success(exchange)


async def _next(session: "C2SSession", el: ET.Element) -> None:
    exchange = session.sasl2
    task = el.get("task", "")
    if exchange.state != "continue" or not exchange.upgrades or task != exchange.upgrades[0]:
        raise SASLFailure("invalid-mechanism", f"task {task!r} was not offered")
    creds = await session.server.accounts.get_credentials(session.host.name, exchange.username)
    if not creds or "salt" not in creds:
        raise SASLFailure("temporary-auth-failure")
    exchange.state = "task"
    exchange.task = task
    # XEP-0480 §4: the record's salt and iteration count (one salt for every hash)
    data = ET.Element(q(ns.SASL2, "task-data"))
    ET.SubElement(data, q(ns.SCRAM_UPGRADE, "salt"), {"iterations": str(creds["iterations"])}).text = creds["salt"]
    session.send_nonza(data)


async def _task_data(session: "C2SSession", el: ET.Element) -> None:
    exchange = session.sasl2
    if exchange.state != "task":
        raise SASLFailure("malformed-request", "no task in progress")
    h = el.find(q(ns.SCRAM_UPGRADE, "hash"))
    if h is None:
        raise SASLFailure("malformed-request", "expected <hash xmlns='urn:xmpp:scram-upgrade:0'/>")
    salted = _decode(h.text) or b""
    try:
        await session.server.accounts.add_hash(session.host.name, exchange.username,
                                               UPGRADE_TASKS[exchange.task], salted)
    except ValueError as exc:
        raise SASLFailure("malformed-request", str(exc)) from None
    log.info("%s: %s@%s did %s", session.id, exchange.username, session.host.name, exchange.task)
    exchange.upgrades.pop(0)
    exchange.task = None
    exchange.state = "sasl"
    await _authenticated(session)


async def fail(session: "C2SSession", f: SASLFailure) -> None:
    exchange = session.sasl2
    server = exchange.server if exchange is not None else None
    tried = (exchange.username if exchange is not None else None) or (server.tried() if server else None)
    session.sasl2 = None
    await session._sasl_failed(f, tried=tried, mechanism=session.sasl_mechanism,
                               element=f.to_sasl2_element())


def out_of_turn(session: "C2SSession", el: ET.Element) -> None:
    """XEP-0388 §2.5: nothing but the exchange's own elements while it runs."""
    raise StreamError("policy-violation", "only the authentication's elements while it runs")

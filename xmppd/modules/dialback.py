"""Server Dialback (XEP-0220) with keys per XEP-0185.

Loaded on a host, it lets remote servers authenticate to that host with dialback
(and lets that host authenticate to them), next to SASL EXTERNAL. Whether a given
remote domain may use dialback without a valid certificate is ``s2s_secure_auth``,
``s2s_insecure_domains`` and ``s2s_secure_domains`` (core options), as in Prosody.

The flow, for an originating server O (us, outgoing) and a receiving server R:

* O → R on the outgoing stream: ``<db:result from=O to=R>KEY</db:result>``; KEY is
  HMAC-SHA256(key = hex(SHA-256(secret)), "R O STREAM-ID"), hex (XEP-0185), with a
  secret made at each server start; R answers ``<db:result type=valid|invalid/>``.
* R, receiving such a key on an incoming stream: if the peer's certificate is valid
  for O, valid at once (no round trip); else, where dialback is allowed, it asks the
  authoritative server for O over its own outgoing link R → O:
  ``<db:verify from=R to=O id=STREAM-ID>KEY</db:verify>`` → ``type=valid|invalid``.

The stream mechanics live in ``protocol/s2s.py``; this module holds the protocol logic
and is called from there.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET

from xmppd.errors import StreamError
from xmppd.jid import InvalidJID, nameprep

PROTOCOLS = ["XEP-0220", "XEP-0185"]
OPTIONS: list = []

DB = "jabber:server:dialback"
DB_FEATURE = "urn:xmpp:features:dialback"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

log = logging.getLogger("xmppd.dialback")


def make_key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """XEP-0185 §3: HMAC-SHA256 keyed by the hex SHA-256 of the secret."""
    k = hashlib.sha256(secret).hexdigest().encode()
    return hmac.new(k, f"{receiving} {originating} {stream_id}".encode(), hashlib.sha256).hexdigest()


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return nameprep(value)
    except InvalidJID:
        return None


def _db(name: str, frm: str, to: str, *, type_: str | None = None, id_: str | None = None,
        text: str | None = None, error: str | None = None) -> ET.Element:
    el = ET.Element(f"{{{DB}}}{name}", {"from": frm, "to": to})
    if id_ is not None:
        el.set("id", id_)
    if type_:
        el.set("type", type_)
    if text is not None:
        el.text = text
    if error:
        err = ET.SubElement(el, f"{{{DB}}}error", {"type": "cancel"})
        ET.SubElement(err, f"{{{STANZAS}}}{error}")
    return el


# -- outgoing: we are the originating server -----------------------------------------

def start(session) -> None:
    if not session.stream_id:
        raise StreamError("invalid-xml", "no stream id: dialback impossible")
    key = make_key(session.manager.dialback_secret, session.remote, session.local, session.stream_id)
    session.send(_db("result", session.local, session.remote, text=key))
    log.debug("%r: sent dialback key", session)


async def outgoing(session, el: ET.Element) -> None:
    """``db:result`` (verdict on our key) or ``db:verify`` (answer to our question)."""
    from xmppd.protocol.s2s import S2SFailure
    frm, to, t = _domain(el.get("from")), _domain(el.get("to")), el.get("type")
    if el.tag == f"{{{DB}}}result":
        if frm != session.remote or to != session.local:
            raise StreamError("invalid-from", "dialback result for another domain pair")
        if t == "valid":
            session.dialback_succeeded()
        else:
            raise S2SFailure(f"{session.remote} refused our dialback key ({t or 'no type'})", final=True)
        return
    # db:verify answer: from the authoritative server (our peer) to us
    fut = session.verify_waiters.get((frm, to, el.get("id")))
    if fut is not None and not fut.done():
        fut.set_result(t == "valid")


# -- incoming: we are the receiving or the authoritative server ---------------------

async def incoming(session, el: ET.Element) -> None:
    manager = session.manager
    frm, to = _domain(el.get("from")), _domain(el.get("to"))
    if el.tag == f"{{{DB}}}verify":
        # we are authoritative for 'to': is this the key we sent?
        if to not in session.server.hosts or not frm:
            raise StreamError("host-unknown", "dialback verify for a domain not served here")
        expected = make_key(manager.dialback_secret, frm, to, el.get("id") or "")
        ok = hmac.compare_digest(expected, (el.text or "").strip())
        session.send(_db("verify", to, frm, type_="valid" if ok else "invalid", id_=el.get("id") or ""))
        return
    # db:result: the peer (originating server 'frm') wants to send to our 'to'
    if to not in session.server.hosts or "dialback" not in session.server.hosts[to].modules:
        raise StreamError("host-unknown", f"this server does not serve {el.get('to')}")
    if not frm:
        raise StreamError("invalid-from", "dialback key without a valid 'from'")
    if el.get("type"):
        return  # a verdict on an incoming stream makes no sense; ignore
    key = (el.text or "").strip()
    if session.remote is None:
        session.remote = frm
    if session.cert_identity_valid(frm):
        # its certificate already proves who it is (XEP-0344's idea): no round trip
        session.send(_db("result", to, frm, type_="valid"))
        session.add_pair(frm, to, "dialback+cert" if session.auth_method is None else session.auth_method)
        return
    if manager.secure_required(to, frm):
        log.info("%r: refusing dialback from %s: a valid certificate is required", session, frm)
        session.send(_db("result", to, frm, type_="error", error="not-authorized"))
        return

    async def verify() -> None:
        try:
            ok = await manager.verify_dialback(to, frm, session.stream_id, key)
        except Exception as exc:  # the link to the authoritative server failed
            log.info("%r: dialback verification for %s failed: %s", session, frm, exc)
            if not session.closing:
                session.send(_db("result", to, frm, type_="error", error="remote-server-not-found"))
            return
        if session.closing:
            return
        session.send(_db("result", to, frm, type_="valid" if ok else "invalid"))
        if ok:
            session.add_pair(frm, to, "dialback")
        else:
            log.info("%r: dialback key from %s is invalid", session, frm)

    task = asyncio.get_running_loop().create_task(verify())
    session.db_tasks.add(task)
    task.add_done_callback(session.db_tasks.discard)


def setup(m) -> None:
    def feature(session):
        return _feature()
    m.add_stream_feature(feature, stage="s2s")


def _feature() -> ET.Element:
    el = ET.Element(f"{{{DB_FEATURE}}}dialback")
    ET.SubElement(el, f"{{{DB_FEATURE}}}errors")
    return el

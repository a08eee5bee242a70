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
  authoritative server for O over its own outgoing stream R → O:
  ``<db:verify from=R to=O id=STREAM-ID>KEY</db:verify>`` → ``type=valid|invalid``.

The streams are the s2s protocol's (``protocol/s2s/``); this module hooks what they
fire: ``s2s-authenticate`` (an outgoing stream with no SASL EXTERNAL),
``s2s-in-element``/``s2s-out-element`` for ``db:result`` and ``db:verify``, and
``s2s-legacy-stream`` (a pre-1.0 peer, which only speaks dialback).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED, SessionSlot, s2s_element_event
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StreamError
from xmppd.xmpp.jid import InvalidJID, nameprep

PROTOCOLS = ["XEP-0220", "XEP-0185"]
OPTIONS: list = []

DB = ns.DIALBACK
RESULT = f"{{{DB}}}result"
VERIFY = f"{{{DB}}}verify"

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
        ET.SubElement(err, f"{{{ns.STANZAS_ERR}}}{error}")
    return el


def feature() -> ET.Element:
    el = ET.Element(f"{{{ns.DIALBACK_FEATURE}}}dialback")
    ET.SubElement(el, f"{{{ns.DIALBACK_FEATURE}}}errors")
    return el


def peer_speaks_dialback(stream) -> bool:
    """The peer declared the dialback namespace or offered the feature."""
    if stream.peer_namespaces.get("db") == DB:
        return True
    feats = getattr(stream, "features", None)
    return feats is not None and feats.find(f"{{{ns.DIALBACK_FEATURE}}}dialback") is not None


# -- outgoing: we are the originating server -----------------------------------------

def authenticate(stream):
    """``s2s-authenticate``: send our key, if the peer speaks dialback."""
    if not peer_speaks_dialback(stream):
        return None
    if not stream.stream_id:
        raise StreamError("invalid-xml", "no stream id: dialback impossible")
    key = make_key(stream.manager.dialback_secret, stream.remote, stream.local, stream.stream_id)
    stream.send(_db("result", stream.local, stream.remote, text=key))
    log.debug("%r: sent dialback key", stream)
    return HANDLED


def outgoing(arg, waiters: SessionSlot):
    """``db:result`` (the verdict on our key) or ``db:verify`` (an answer to our question)."""
    stream, el = arg
    frm, to, t = _domain(el.get("from")), _domain(el.get("to")), el.get("type")
    if el.tag == RESULT:
        if frm != stream.remote or to != stream.local:
            raise StreamError("invalid-from", "dialback result for another domain pair")
        if t == "valid":
            stream.authenticated_by("dialback")
        else:
            stream.give_up(f"{stream.remote} refused our dialback key ({t or 'no type'})")
        return HANDLED
    fut = (waiters.get(stream) or {}).get((frm, to, el.get("id")))
    if fut is not None and not fut.done():
        fut.set_result(t == "valid")
    return HANDLED


async def request_verify(stream, waiters: SessionSlot, receiving: str, originating: str,
                         stream_id: str, key: str) -> bool:
    """Ask the authoritative server (the peer of our outgoing ``stream``) whether
    ``key`` is right."""
    pending = waiters.get(stream)
    if pending is None:
        pending = {}
        waiters.set(stream, pending)
    fut = asyncio.get_running_loop().create_future()
    k = (originating, receiving, stream_id)
    old = pending.get(k)
    if old is not None and not old.done():
        old.set_result(False)
    pending[k] = fut
    stream.send(_db("verify", receiving, originating, id_=stream_id, text=key))
    try:
        return await asyncio.wait_for(fut, stream.manager.timeout)
    except asyncio.TimeoutError:
        return False
    finally:
        if pending.get(k) is fut:
            del pending[k]


# -- incoming: we are the receiving or the authoritative server ---------------------

async def incoming(arg, waiters: SessionSlot):
    stream, el = arg
    manager = stream.manager
    server = stream.server
    frm, to = _domain(el.get("from")), _domain(el.get("to"))
    if el.tag == VERIFY:
        # we are authoritative for 'to': is this the key we sent?
        if to not in server.hosts or not frm:
            raise StreamError("host-unknown", "dialback verify for a domain not served here")
        expected = make_key(manager.dialback_secret, frm, to, el.get("id") or "")
        ok = hmac.compare_digest(expected, (el.text or "").strip())
        stream.send(_db("verify", to, frm, type_="valid" if ok else "invalid", id_=el.get("id") or ""))
        return HANDLED
    # db:result: the peer (originating server 'frm') wants to send to our 'to'
    target = server.hosts.get(to or "")
    if target is None or not target.events.has(s2s_element_event("in", DB, "result")):
        raise StreamError("host-unknown", f"this server does not serve {el.get('to')}")
    if not frm:
        raise StreamError("invalid-from", "dialback key without a valid 'from'")
    if el.get("type"):
        return HANDLED  # a verdict on an incoming stream makes no sense; ignore
    key = (el.text or "").strip()
    if stream.remote is None:
        stream.remote = frm
    if stream.cert_identity_valid(frm):
        # its certificate already proves who it is (XEP-0344's idea): no round trip
        stream.send(_db("result", to, frm, type_="valid"))
        stream.add_pair(frm, to, "dialback+cert" if stream.auth_method is None else stream.auth_method)
        return HANDLED
    if manager.secure_required(to, frm):
        log.info("%r: refusing dialback from %s: a valid certificate is required", stream, frm)
        stream.send(_db("result", to, frm, type_="error", error="not-authorized"))
        return HANDLED

    async def verify() -> None:
        try:
            out = await manager.stream_to(to, frm)
            ok = await request_verify(out, waiters, to, frm, stream.stream_id, key)
        except Exception as exc:  # the link to the authoritative server failed
            log.info("%r: dialback verification for %s failed: %s", stream, frm, exc)
            if not stream.closing:
                stream.send(_db("result", to, frm, type_="error", error="remote-server-not-found"))
            return
        if stream.closing:
            return
        stream.send(_db("result", to, frm, type_="valid" if ok else "invalid"))
        if ok:
            stream.add_pair(frm, to, "dialback")
        else:
            log.info("%r: dialback key from %s is invalid", stream, frm)

    stream.spawn(verify())
    return HANDLED


def legacy_stream(stream):
    """``s2s-legacy-stream``: a pre-1.0 peer may go on if it speaks dialback."""
    return HANDLED if stream.peer_namespaces.get("db") == DB else None


def setup(m) -> None:
    # our questions waiting for an answer, kept on the outgoing stream that asked them
    waiters = m.session_slot("waiters")
    m.add_stream_feature(lambda stream: feature(), stage="s2s")
    m.hook("s2s-authenticate", authenticate)
    m.hook("s2s-legacy-stream", legacy_stream)
    m.hook("s2s-stream-closed", lambda stream: _closed(stream, waiters))
    for name in ("result", "verify"):
        m.hook(s2s_element_event("in", DB, name), lambda arg: incoming(arg, waiters))
        m.hook(s2s_element_event("out", DB, name), lambda arg: outgoing(arg, waiters))


def _closed(stream, waiters: SessionSlot) -> None:
    for fut in (waiters.pop(stream) or {}).values():
        if not fut.done():
            fut.set_result(False)

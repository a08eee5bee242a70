"""Stream Management (XEP-0198): acks both ways, and resumption after a lost
connection — nothing is lost when a phone drops off the network.

While a session with resumption enabled is disconnected it *hibernates*: it
stays bound and available, and what is sent to it is queued. A client that
comes back within ``smacks_hibernation_time`` resumes and gets the queue; after
that the session ends and every unacknowledged message is delivered again as if
addressed to the bare JID (another resource, or offline storage).
"""
from __future__ import annotations

import asyncio
import collections
import secrets
import time
import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.core import events as ev
from xmppd.xmpp import stanza as st

PROTOCOLS = ["XEP-0198"]
NS = "urn:xmpp:sm:3"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
OPTIONS = [
    Option("smacks_hibernation_time", "integer", 600, "both",
           "Seconds a disconnected session with resumption enabled waits for its client.", min=0),
    Option("smacks_max_queue_size", "integer", 500, "both",
           "Unacknowledged stanzas kept per session; beyond this the session is closed.", min=1),
    Option("smacks_max_hibernated_sessions", "integer", 10, "both",
           "Hibernating sessions per account; the oldest is ended when exceeded.", min=1),
]
MOD32 = 2 ** 32
DELAY = "urn:xmpp:delay"


class SMState:
    __slots__ = ("id", "resume", "handled_in", "acked_out", "queue", "ack_requested", "timer",
                 "max_queue", "hibernated_at")

    def __init__(self, resume: bool, max_queue: int):
        self.id = secrets.token_urlsafe(16) if resume else None
        self.resume = resume
        self.handled_in = 0          # stanzas received from the client (our h)
        self.acked_out = 0           # what the client acknowledged (its h)
        self.queue: collections.deque = collections.deque()  # unacked (seq, element)
        self.ack_requested = False
        self.timer: asyncio.TimerHandle | None = None
        self.max_queue = max_queue
        self.hibernated_at: float | None = None

    @property
    def sent(self) -> int:
        return (self.acked_out + len(self.queue)) % MOD32


def _el(name: str, **attrs) -> ET.Element:
    return ET.Element(f"{{{NS}}}{name}", {k: str(v) for k, v in attrs.items() if v is not None})


def failed(condition: str, h: int | None = None) -> ET.Element:
    f = _el("failed", h=h)
    ET.SubElement(f, f"{{{STANZAS}}}{condition}")
    return f


def setup(m) -> None:
    host = m.host
    resumable: dict[str, object] = {}          # previd -> session (live or hibernating)
    expired: collections.OrderedDict = collections.OrderedDict()   # previd -> last h, for <failed h/>

    m.add_stream_feature(lambda session: _el("sm"), stage="bound")

    # -- counting -------------------------------------------------------------
    def on_inbound(session, _el_):
        sm = session.state.get("smacks")
        if sm is not None:
            sm.handled_in = (sm.handled_in + 1) % MOD32

    def on_delivery(session, stanza):
        sm = session.state.get("smacks")
        if sm is None:
            return
        sm.queue.append(stanza)
        if len(sm.queue) > sm.max_queue:
            m.log.warning("%s: %d unacknowledged stanzas; closing", session.full_jid, len(sm.queue))
            from xmppd.xmpp.errors import StreamError
            asyncio.get_running_loop().call_soon(session.stream_error,
                                                 StreamError("resource-constraint", "too many unacknowledged stanzas"))
            return
        if not sm.ack_requested and not session.closing:
            sm.ack_requested = True
            asyncio.get_running_loop().call_soon(request_ack, session)

    def request_ack(session):
        sm = session.state.get("smacks")
        if sm is not None and not session.closing and sm.queue:
            session.send_nonza(_el("r"))
        elif sm is not None:
            sm.ack_requested = False

    def on_lost(session, exc):
        sm = session.state.get("smacks")
        if sm is None or not sm.resume:
            return False
        delay = m.get_option("smacks_hibernation_time")
        sm.hibernated_at = time.time()
        sm.timer = asyncio.get_running_loop().call_later(delay, hibernation_over, session)
        limit_hibernated(session)
        return True

    def limit_hibernated(session):
        mine = [s for s in resumable.values() if s.bare_jid == session.bare_jid and s.hibernating]
        mine.sort(key=lambda s: s.state["smacks"].hibernated_at or 0)
        while len(mine) > m.get_option("smacks_max_hibernated_sessions"):
            hibernation_over(mine.pop(0))

    def hibernation_over(session):
        sm = session.state.get("smacks")
        if sm is None or not session.hibernating:
            return
        m.log.info("%s: hibernation over; ending the session", session.full_jid)
        forget(sm)
        session.end_session()

    def forget(sm):
        if sm.id:
            resumable.pop(sm.id, None)
            expired[sm.id] = sm.handled_in
            while len(expired) > 1000:
                expired.popitem(last=False)
        if sm.timer:
            sm.timer.cancel()
            sm.timer = None

    def acknowledge(sm, h: int) -> bool:
        n = (h - sm.acked_out) % MOD32
        if n > len(sm.queue):
            return False
        for _ in range(n):
            sm.queue.popleft()
        sm.acked_out = h % MOD32
        return True

    # -- the protocol elements --------------------------------------------------
    def enable(arg):
        session, el = arg
        if session.state.get("smacks") is not None:
            session.send_nonza(failed("unexpected-request"))
            return ev.HANDLED
        resume = el.get("resume") in ("true", "1")
        sm = SMState(resume, m.get_option("smacks_max_queue_size"))
        session.state["smacks"] = sm
        session.inbound_hooks.append(on_inbound)
        session.delivery_hooks.append(on_delivery)
        session.lost_hooks.append(on_lost)
        if resume:
            resumable[sm.id] = session
        session.send_nonza(_el("enabled", id=sm.id, resume="true" if resume else None,
                               max=m.get_option("smacks_hibernation_time") if resume else None))
        return ev.HANDLED

    def enable_unbound(arg):
        session, _el_ = arg
        session.send_nonza(failed("unexpected-request"))
        return ev.HANDLED

    def on_r(arg):
        session, _el_ = arg
        sm = session.state.get("smacks")
        if sm is None:
            session.send_nonza(failed("unexpected-request"))
            return ev.HANDLED
        session.send_nonza(_el("a", h=sm.handled_in))
        return ev.HANDLED

    def on_a(arg):
        session, el = arg
        sm = session.state.get("smacks")
        if sm is None:
            return ev.HANDLED
        sm.ack_requested = False
        try:
            h = int(el.get("h", ""))
        except ValueError:
            from xmppd.xmpp.errors import StreamError
            raise StreamError("bad-format", "<a/> needs a numeric h") from None
        if not acknowledge(sm, h):
            from xmppd.xmpp.errors import StreamError
            raise StreamError("undefined-condition", "handled count too high")
        if sm.queue and not session.closing:
            sm.ack_requested = True
            asyncio.get_running_loop().call_soon(request_ack, session)
        return ev.HANDLED

    def resume(arg):
        session, el = arg
        previd = el.get("previd", "")
        try:
            h = int(el.get("h", ""))
        except ValueError:
            session.send_nonza(failed("bad-request"))
            return ev.HANDLED
        old = resumable.get(previd)
        if old is None or old.bare_jid != session.bare_jid or old.host is not session.host:
            session.send_nonza(failed("item-not-found", expired.get(previd)))
            return ev.HANDLED
        sm = old.state["smacks"]
        if sm.timer:
            sm.timer.cancel()
            sm.timer = None
        if not acknowledge(sm, h):
            session.send_nonza(failed("unexpected-request", sm.handled_in))
            return ev.HANDLED
        session.adopt(old)
        resumable[previd] = session
        sm.hibernated_at = None
        sm.ack_requested = False
        m.log.info("%s resumed (%d stanzas to resend)", session.full_jid, len(sm.queue))
        session.send_nonza(_el("resumed", previd=previd, h=sm.handled_in))
        pending = list(sm.queue)
        sm.queue.clear()
        for stanza in pending:
            session.deliver(stanza)
        return ev.HANDLED

    # -- unacknowledged stanzas of a session that ends ------------------------------
    async def unbound(arg):
        session, _exc = arg
        sm = session.state.get("smacks")
        if sm is None:
            return
        forget(sm)
        pending = list(sm.queue)
        sm.queue.clear()
        for stanza in pending:
            await redeliver(session, stanza)

    async def redeliver(session, stanza):
        kind = st.kind_of(stanza)
        if kind == "message":
            t = stanza.get("type") or "normal"
            if t in ("error", "groupchat", "headline"):
                return
            if any(c.tag.startswith("{urn:xmpp:carbons:2}") or c.tag.startswith("{urn:xmpp:mam:")
                   for c in stanza):
                return  # copies and archive results: the originals are elsewhere
            copy = ET.Element(stanza.tag, dict(stanza.attrib))
            copy.text = stanza.text
            copy.extend(list(stanza))
            copy.set("to", session.bare_jid)
            if copy.find(f"{{{DELAY}}}delay") is None:
                ET.SubElement(copy, f"{{{DELAY}}}delay", {
                    "from": host.name,
                    "stamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sm_time(session)))})
            await m.server.router.route(copy, host)
        elif kind == "iq" and stanza.get("type") in ("get", "set"):
            from xmppd.xmpp.errors import StanzaError
            await m.server.router.bounce(stanza, StanzaError("recipient-unavailable"))

    def sm_time(session):
        sm = session.state.get("smacks")
        return (sm.hibernated_at if sm and sm.hibernated_at else time.time())

    m.hook(ev.element_event(NS, "enable"), enable)
    m.hook(ev.element_event(NS, "enable", bound=False), enable_unbound)
    m.hook(ev.element_event(NS, "r"), on_r)
    m.hook(ev.element_event(NS, "a"), on_a)
    m.hook(ev.element_event(NS, "resume", bound=False), resume)
    m.hook("resource-unbind", unbound, ev.EARLY)

"""Stream Management (XEP-0198): acks both ways, and resumption after a lost
connection — nothing is lost when a phone drops off the network.

While a session with resumption enabled is disconnected it *hibernates*: it
stays bound and available, and what is sent to it is queued. A client that
comes back within ``smacks_hibernation_time`` resumes and gets the queue; after
that the session ends and every unacknowledged message is delivered again as if
addressed to the bare JID (another resource, or offline storage).

A session's counters and queue are its :class:`SMState` (this module's session
slot); the counting hooks a session calls for every stanza are that state's
own methods, so the hot path looks nothing up. The resumable sessions of a host
are the :class:`StreamManagement` of that host.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import EARLY, HANDLED, InlineFeature, Option, SessionSlot, element_event
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StreamError

PROTOCOLS = ["XEP-0198"]
OPTIONS = [
    Option("smacks_hibernation_time", "integer", 600, "both",
           "Seconds a disconnected session with resumption enabled waits for its client.", min=0, limit=True),
    Option("smacks_max_queue_size", "integer", 500, "both",
           "Unacknowledged stanzas kept per session; beyond this the session is closed.", min=1, limit=True),
    Option("smacks_max_hibernated_sessions", "integer", 10, "both",
           "Hibernating sessions per account; the oldest is ended when exceeded.", min=1, limit=True),
]
MOD32 = 2 ** 32
EXPIRED_KEPT = 1000          # previds remembered after their session ended (for <failed h/>)
# copies and archive results are not delivered again: their originals are elsewhere

log = logging.getLogger("xmppd.mod.smacks")


# -- the protocol elements ----------------------------------------------------------------

def element(name: str, **attrs) -> ET.Element:
    """``<name xmlns='urn:xmpp:sm:3'/>`` with the attributes that are not None."""
    return ET.Element(f"{{{ns.SM}}}{name}", {k: str(v) for k, v in attrs.items() if v is not None})


def failed(condition: str, h: int | None = None) -> ET.Element:
    f = element("failed", h=h)
    ET.SubElement(f, f"{{{ns.STANZAS_ERR}}}{condition}")
    return f


def parse_h(el: ET.Element) -> int | None:
    """The ``h`` attribute of ``<a/>`` or ``<resume/>``; None when it is not a number."""
    try:
        return int(el.get("h", ""))
    except ValueError:
        return None


# -- one session's state ------------------------------------------------------------------

class SMState:
    """Counters and the unacknowledged queue of one session. ``count_inbound``,
    ``queue_delivered`` and ``lost`` are the session's hooks (bound to this state)."""
    __slots__ = ("id", "resume", "handled_in", "acked_out", "queue", "ack_requested", "timer",
                 "max_queue", "hibernated_at", "manager")

    def __init__(self, resume: bool, max_queue: int, manager: StreamManagement | None = None):
        self.id = secrets.token_urlsafe(16) if resume else None
        self.resume = resume
        self.handled_in = 0          # stanzas received from the client (our h)
        self.acked_out = 0           # what the client acknowledged (its h)
        self.queue: collections.deque = collections.deque()  # unacked stanzas, oldest first
        self.ack_requested = False
        self.timer: asyncio.TimerHandle | None = None
        self.max_queue = max_queue
        self.hibernated_at: float | None = None
        self.manager = manager

    @property
    def sent(self) -> int:
        return (self.acked_out + len(self.queue)) % MOD32

    def acknowledge(self, h: int) -> bool:
        """The client handled ``h`` stanzas: drop them from the queue. False when
        ``h`` counts more than was sent."""
        n = (h - self.acked_out) % MOD32
        if n > len(self.queue):
            return False
        for _ in range(n):
            self.queue.popleft()
        self.acked_out = h % MOD32
        return True

    # -- the session's hooks (every stanza: keep them short) --------------------
    def count_inbound(self, session, _el) -> None:
        self.handled_in = (self.handled_in + 1) % MOD32

    def queue_delivered(self, session, stanza) -> None:
        self.queue.append(stanza)
        if len(self.queue) > self.max_queue:
            log.warning("%s: %d unacknowledged stanzas; closing", session.full_jid, len(self.queue))
            asyncio.get_running_loop().call_soon(
                session.stream_error, StreamError("resource-constraint", "too many unacknowledged stanzas"))
            return
        if not self.ack_requested and not session.closing:
            self.ack_requested = True
            asyncio.get_running_loop().call_soon(self.request_ack, session)

    def request_ack(self, session) -> None:
        if not session.closing and self.queue:
            session.send_nonza(element("r"))
        else:
            self.ack_requested = False

    def lost(self, session, _exc) -> bool:
        """The connection dropped: hibernate when resumption is on."""
        if not self.resume or self.manager is None:
            return False
        self.manager.hibernate(session, self)
        return True

    def describe(self, session) -> dict:
        return {"resumable": bool(self.resume), "hibernating": bool(session.hibernating),
                "unacked": len(self.queue)}


# -- one host's stream management ------------------------------------------------------------

class StreamManagement:
    """The sessions of one host that may be resumed, and the protocol elements."""

    def __init__(self, host, slot: SessionSlot, option):
        self.host = host
        self.slot = slot
        self.option = option     # option(name) -> its value on this host
        self.resumable: dict[str, object] = {}          # previd -> session (live or hibernating)
        self.expired: collections.OrderedDict = collections.OrderedDict()  # previd -> last h

    # -- the elements a bound client sends ---------------------------------------
    def enable(self, arg):
        session, el = arg
        session.send_nonza(self.enabled(session, el))
        return HANDLED

    def enabled(self, session, el) -> ET.Element:
        """``<enable/>`` (alone, or inside a binding request: XEP-0386): the answer."""
        if self.slot.get(session) is not None:
            return failed("unexpected-request")
        resume = el.get("resume") in ("true", "1")
        sm = SMState(resume, self.option("smacks_max_queue_size"), self)
        self.slot.set(session, sm)
        session.delivery_tracked = True   # what the client never acknowledges is ours
        session.inbound_hooks.append(sm.count_inbound)
        session.delivery_hooks.append(sm.queue_delivered)
        session.lost_hooks.append(sm.lost)
        if resume:
            self.resumable[sm.id] = session
        return element("enabled", id=sm.id, resume="true" if resume else None,
                       max=self.option("smacks_hibernation_time") if resume else None)

    def request(self, arg):
        """``<r/>``: answer with what we handled."""
        session, _el = arg
        sm = self.slot.get(session)
        if sm is None:
            session.send_nonza(failed("unexpected-request"))
            return HANDLED
        session.send_nonza(element("a", h=sm.handled_in))
        return HANDLED

    def answer(self, arg):
        """``<a/>``: the client's count of what it handled."""
        session, el = arg
        sm = self.slot.get(session)
        if sm is None:
            return HANDLED
        sm.ack_requested = False
        h = parse_h(el)
        if h is None:
            raise StreamError("bad-format", "<a/> needs a numeric h")
        if not sm.acknowledge(h):
            raise StreamError("undefined-condition", "handled count too high")
        if sm.queue and not session.closing:
            sm.ack_requested = True
            asyncio.get_running_loop().call_soon(sm.request_ack, session)
        return HANDLED

    # -- before binding ------------------------------------------------------------
    def resume(self, arg):
        session, el = arg
        answer, pending = self.resumed(session, el)
        session.send_nonza(answer)
        for stanza in pending:
            session.deliver(stanza)
        return HANDLED

    def resume_inline(self, session, el):
        """``<resume/>`` inside an authentication request (XEP-0198 §5 with XEP-0388):
        the answer goes in the success, what was unacknowledged right after it."""
        if el.tag != f"{{{ns.SM}}}resume":
            return None
        answer, pending = self.resumed(session, el)

        def resend():
            for stanza in pending:
                session.deliver(stanza)
        return answer, resend

    def resumed(self, session, el) -> tuple[ET.Element, list]:
        """The answer to ``<resume/>`` and the stanzas to send again after it."""
        previd = el.get("previd", "")
        h = parse_h(el)
        if h is None:
            return failed("bad-request"), []
        old = self.resumable.get(previd)
        if old is None or old.bare_jid != session.bare_jid or old.host is not session.host:
            return failed("item-not-found", self.expired.get(previd)), []
        sm = self.slot.get(old)
        if sm.timer:
            sm.timer.cancel()
            sm.timer = None
        if not sm.acknowledge(h):
            return failed("unexpected-request", sm.handled_in), []
        session.adopt(old)
        self.resumable[previd] = session
        sm.hibernated_at = None
        sm.ack_requested = False
        log.info("%s resumed (%d stanzas to resend)", session.full_jid, len(sm.queue))
        pending = list(sm.queue)
        sm.queue.clear()
        return element("resumed", previd=previd, h=sm.handled_in), pending

    # -- hibernation ------------------------------------------------------------------
    def hibernate(self, session, sm: SMState) -> None:
        sm.hibernated_at = time.time()
        sm.timer = asyncio.get_running_loop().call_later(
            self.option("smacks_hibernation_time"), self.hibernation_over, session)
        self.limit_hibernated(session)

    def limit_hibernated(self, session) -> None:
        mine = [s for s in self.resumable.values() if s.bare_jid == session.bare_jid and s.hibernating]
        mine.sort(key=lambda s: self.slot.get(s).hibernated_at or 0)
        while len(mine) > self.option("smacks_max_hibernated_sessions"):
            self.hibernation_over(mine.pop(0))

    def hibernation_over(self, session) -> None:
        sm = self.slot.get(session)
        if sm is None or not session.hibernating:
            return
        log.info("%s: hibernation over; ending the session", session.full_jid)
        self.forget(sm)
        session.end_session()

    def forget(self, sm: SMState) -> None:
        if sm.id:
            self.resumable.pop(sm.id, None)
            self.expired[sm.id] = sm.handled_in
            while len(self.expired) > EXPIRED_KEPT:
                self.expired.popitem(last=False)
        if sm.timer:
            sm.timer.cancel()
            sm.timer = None

    # -- a session that ends: what it never acknowledged ---------------------------------
    async def unbound(self, arg) -> None:
        """What the client never acknowledged goes where it would go now the
        resource is offline: ``resource-undelivered`` (the message module)."""
        session, _exc = arg
        sm = self.slot.get(session)
        if sm is None:
            return
        self.forget(sm)
        pending = list(sm.queue)
        sm.queue.clear()
        if pending:
            await self.host.events.notify("resource-undelivered", {
                "session": session, "stanzas": pending,
                "when": sm.hibernated_at or time.time()})

    # -- xmppctl c2s, unload ---------------------------------------------------------------
    def describe(self, session) -> dict:
        sm = self.slot.get(session)
        return {"sm": None if sm is None else sm.describe(session)}

    def detach_all(self) -> None:
        """At unload: the sessions stop counting and queueing."""
        for resources in list(self.host.sessions.values()):
            for session in list(resources.values()):
                sm = self.slot.get(session)
                if sm is None:
                    continue
                self.forget(sm)
                for hooks, hook in ((session.inbound_hooks, sm.count_inbound),
                                    (session.delivery_hooks, sm.queue_delivered),
                                    (session.lost_hooks, sm.lost)):
                    if hook in hooks:
                        hooks.remove(hook)
                session.delivery_tracked = False


def refuse_unbound(arg):
    """``<enable/>`` before a resource is bound."""
    session, _el = arg
    session.send_nonza(failed("unexpected-request"))
    return HANDLED


def setup(m) -> None:
    sm = StreamManagement(m.host, m.session_slot(), m.get_option)
    # not once enabled (inside a Bind 2 request): a client would take it as an offer to resume
    m.add_stream_feature(lambda session: element("sm") if sm.slot.get(session) is None else None,
                         stage="bound")
    m.describe_session(sm.describe)
    m.hook(element_event(ns.SM, "enable"), sm.enable)
    m.hook(element_event(ns.SM, "enable", bound=False), refuse_unbound)
    m.hook(element_event(ns.SM, "r"), sm.request)
    m.hook(element_event(ns.SM, "a"), sm.answer)
    m.hook(element_event(ns.SM, "resume", bound=False), sm.resume)
    m.hook("resource-unbind", sm.unbound, EARLY)
    # inside an authentication request (XEP-0388) and its binding (XEP-0386)
    m.add_item("inline-feature", InlineFeature(ns.SM, "auth", sm.resume_inline,
                                               advertise=lambda session: element("sm")))
    m.add_item("inline-feature", InlineFeature(
        ns.SM, "bind", lambda session, el: sm.enabled(session, el)
        if el.tag == f"{{{ns.SM}}}enable" else None))
    m.on_unload(sm.detach_all)

"""Stanza traces: ``xmppctl trace JID`` follows what one account, one resource or one
remote domain sends and receives, live, over the control socket.

Nothing is traced while no trace runs, and an untraced session pays one attribute
check per stanza: a session's ``trace`` is None unless a trace follows it, and then
it is the tuple of the :class:`Trace` objects that do. The protocols set it through
:meth:`Tracer.attach`, called once per session when it is authenticated (a client
after SASL, again at resource binding and stream resumption; a server stream once
its peer is authenticated; an external component after its handshake): so a session
that starts after the trace began is followed too, and what comes before
authentication (SASL, with its passwords) is never in a trace (a SASL element out of
place after it is left out too). Each traced stanza is recorded as the XML text the
session wrote (out) or as it was read, serialized again (in); nothing in it is
redacted.

A traced session asks its protocol object for ``trace_identity()``: ``(user,
domains, resource)``, ``user`` None for a server or component stream, ``domains``
the peer's domains (a server stream may carry several), or None before it is
authenticated. Client and component sessions are the server's ``c2s_sessions`` and
hibernating resources; the protocols that keep other sessions list them as
``session-source`` items (callables giving the sessions).

Each trace has a bounded queue: what its xmppctl does not read in time is dropped
and counted (``dropped`` lines), never kept; the trace ends when xmppctl goes.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..stream import serialize
from ..xmpp import ns

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("xmppd.trace")

QUEUE_MAX = 1000            # stanzas waiting for xmppctl, at most...
QUEUE_CHARS = 4 * 1024 * 1024   # ...and this many characters of XML
SERVER_PREFIXES = {ns.DIALBACK: "db"}


class Trace:
    """One ``xmppctl trace``: what it follows and what waits for it."""

    def __init__(self, tracer: "Tracer", spec: str, user: str | None, domain: str,
                 resource: str | None):
        self.tracer = tracer
        self.spec = spec                # as the admin wrote it (normalised)
        self.user = user                # None: a remote domain (or external component)
        self.domain = domain
        self.resource = resource
        self.sessions: set = set()      # the sessions it follows now
        self.shown = 0                  # stanzas handed to xmppctl
        self.dropped = 0                # stanzas dropped because xmppctl was too slow
        self._queue: collections.deque = collections.deque()
        self._waiting = 0               # lines in the queue (not counting ``dropped``)
        self._chars = 0                 # characters of XML in the queue
        self._wakeup = asyncio.Event()
        self.active = True

    def __repr__(self) -> str:
        return f"<Trace {self.spec}>"

    def wants(self, identity) -> bool:
        """Does this trace follow a session of ``identity`` (``trace_identity()``)?"""
        if identity is None:
            return False
        user, domains, resource = identity
        if self.user is None:
            return user is None and self.domain in domains
        return (user == self.user and self.domain in domains
                and (self.resource is None or resource == self.resource))

    # -- the protocols' side ----------------------------------------------------------
    def put(self, entry: tuple) -> None:
        """A line for xmppctl. When too many wait, a stanza is dropped and counted
        (a ``dropped`` line where it was lost), a session event just dropped."""
        if not self.active:
            return
        size = len(entry[-1]) if entry[0] == "stanza" else 0
        if self._waiting >= QUEUE_MAX or self._chars + size > QUEUE_CHARS:
            if entry[0] == "stanza":
                self.dropped += 1
                q = self._queue
                if q and q[-1][0] == "dropped":
                    q[-1][1] += 1
                else:   # where they were lost, between the lines xmppctl gets
                    q.append(["dropped", 1, time.time()])
                self._wakeup.set()
            return
        self._waiting += 1
        self._chars += size
        self._queue.append(entry)
        self._wakeup.set()

    # -- the control socket's side ----------------------------------------------------
    async def lines(self, count: int | None = None, duration: float | None = None
                    ) -> AsyncIterator[dict]:
        """What xmppctl reads: one dict per stanza (``type: stanza``) or event
        (``session``: a session is followed from now, ``closed``: its connection
        ended, ``dropped``: stanzas lost because xmppctl was slow), then one ``end``
        (after ``count`` stanzas or ``duration`` seconds, if given). The trace
        stops when the iteration ends, whichever way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration if duration else None
        reason = "stopped"
        try:
            while self.active:
                if not self._queue:
                    self._wakeup.clear()
                    timeout = None if deadline is None else deadline - loop.time()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout)
                    except asyncio.TimeoutError:
                        reason = "duration"
                        break
                    continue
                entry = self._queue.popleft()
                if entry[0] == "dropped":
                    yield {"type": "dropped", "count": entry[1], "time": entry[2]}
                    continue
                self._waiting -= 1
                if entry[0] == "stanza":
                    self._chars -= len(entry[-1])
                    self.shown += 1
                yield self._line(entry)
                if count and self.shown >= count:
                    reason = "count"
                    break
            yield {"type": "end", "reason": reason, "stanzas": self.shown,
                   "dropped": self.dropped, "time": time.time()}
        finally:
            self.tracer.stop(self)

    @staticmethod
    def _line(entry: tuple) -> dict:
        kind, when, sess_kind, sess_id, label, *rest = entry
        out: dict[str, Any] = {"type": kind, "time": when, "kind": sess_kind, "id": sess_id,
                               "session": label}
        if kind == "stanza":
            out["direction"], out["xml"] = rest
        return out


def describe(sess) -> tuple[str, str, str]:
    """``(kind, connection id, label)`` of a session for a trace line."""
    kind = getattr(sess, "kind", "?")
    label = getattr(sess, "full_jid", None) or getattr(sess, "bare_jid", None)
    if label is None:
        local, remote = getattr(sess, "local", None), getattr(sess, "remote", None)
        if remote is not None:
            arrow = "->" if getattr(sess, "direction", "") == "out" else "<-"
            label = f"{local or '?'} {arrow} {remote}"
        else:
            host = getattr(sess, "host", None)
            label = getattr(host, "name", None) or "?"
    return kind, str(getattr(sess, "id", "?")), label


class Tracer:
    """The server's traces (``server.tracer``), and where the protocols report."""

    def __init__(self, server: "Server"):
        self.server = server
        self.traces: list[Trace] = []

    # -- for the control command --------------------------------------------------------
    def start(self, spec: str, user: str | None, domain: str, resource: str | None) -> Trace:
        """Follow ``spec`` from now: its sessions now and those that start later."""
        trace = Trace(self, spec, user, domain, resource)
        self.traces.append(trace)
        for sess in self.sessions():
            try:
                identity = sess.trace_identity()
            except Exception:
                continue
            if trace.wants(identity):
                self._follow(trace, sess)
        log.info("trace of %s started (%d session(s) now)", spec, len(trace.sessions))
        return trace

    def stop(self, trace: Trace) -> None:
        """The trace is over (its xmppctl went, or it had what it asked for): no
        session reports to it any more."""
        if not trace.active:
            return
        trace.active = False
        trace._wakeup.set()
        if trace in self.traces:
            self.traces.remove(trace)
        for sess in trace.sessions:
            rest = tuple(t for t in (sess.trace or ()) if t is not trace)
            sess.trace = rest or None
        trace.sessions.clear()
        trace._queue.clear()
        log.info("trace of %s ended (%d stanza(s) shown, %d dropped)", trace.spec,
                 trace.shown, trace.dropped)

    def sessions(self) -> list:
        """Every session a trace might follow."""
        from .control import client_sessions
        out = client_sessions(self.server)
        for source in self.server.items("session-source"):
            out.extend(source())
        return out

    # -- for the protocols (once per session, never per stanza) -----------------------
    def attach(self, sess) -> None:
        """``sess`` is authenticated (or bound, or resumed): the traces that want it
        follow it from now."""
        if not self.traces:
            return
        identity = sess.trace_identity()
        for trace in self.traces:
            if trace not in (sess.trace or ()) and trace.wants(identity):
                self._follow(trace, sess)

    def _follow(self, trace: Trace, sess) -> None:
        trace.sessions.add(sess)
        sess.trace = (sess.trace or ()) + (trace,)
        trace.put(("session", time.time(), *describe(sess)))

    def closed(self, sess) -> None:
        """A traced session's connection is gone (a hibernating client resource
        stays followed: its next connection takes it over)."""
        traces = sess.trace or ()
        hibernating = getattr(sess, "hibernating", False)
        for trace in traces:
            trace.put(("closed", time.time(), *describe(sess)))
            if not hibernating:
                trace.sessions.discard(sess)
        if not hibernating:
            sess.trace = None

    def forget(self, sess) -> None:
        """A hibernating resource was taken over by a new connection (which the
        traces follow in its place)."""
        for trace in sess.trace or ():
            trace.sessions.discard(sess)
        sess.trace = None


# -- what the protocols call on a traced session (``sess.trace`` is not None) ---------

_SASL_TAG = "{%s}" % ns.SASL


def sent(sess, xml: str) -> None:
    """``xml`` was written to the peer of a traced session."""
    if ns.SASL in xml[:xml.find(">")]:
        return   # SASL, even out of place after authentication: never in a trace
    entry = ("stanza", time.time(), *describe(sess), "out", xml)
    for trace in sess.trace:
        trace.put(entry)


def received(sess, el, default_ns: str = ns.CLIENT) -> None:
    """``el`` was read from the peer of a traced session (serialized again, as the
    stream's namespace writes it)."""
    if el.tag.startswith(_SASL_TAG):
        return
    xml = serialize(el, default_ns, SERVER_PREFIXES if default_ns == ns.SERVER else None)
    entry = ("stanza", time.time(), *describe(sess), "in", xml)
    for trace in sess.trace:
        trace.put(entry)

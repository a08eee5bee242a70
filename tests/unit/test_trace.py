"""The tracer (``core/trace.py``) without sockets: which sessions a trace follows,
its bounded queue (what a slow xmppctl misses is dropped and counted), and that a
finished trace leaves no session reporting to it."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from xmppd.core import trace as tr


class Sess:
    def __init__(self, identity, kind="c2s", label="a@x/r"):
        self.identity = identity
        self.kind, self.id, self.full_jid = kind, "id1", label
        self.trace = None
        self.hibernating = False

    def trace_identity(self):
        return self.identity


def tracer(*sessions) -> tr.Tracer:
    server = SimpleNamespace(c2s_sessions=set(sessions), hosts={}, items=lambda kind: [])
    server.client_sessions = lambda: list(server.c2s_sessions)
    return tr.Tracer(server)


async def collect(it, n: int) -> list[dict]:
    return [await asyncio.wait_for(it.__anext__(), 5) for _ in range(n)]


async def test_which_sessions_a_trace_follows():
    a1 = Sess(("a", ("x",), "r1"))
    a2 = Sess(("a", ("x",), "r2"))
    b = Sess(("b", ("x",), "r1"))
    s2s = Sess((None, ("remote.example", "other.example"), None), kind="s2sout")
    pre_auth = Sess(None)
    t = tracer(a1, a2, b, s2s, pre_auth)
    account = t.start("a@x", "a", "x", None)
    assert account.sessions == {a1, a2}
    resource = t.start("a@x/r2", "a", "x", "r2")
    assert resource.sessions == {a2} and a2.trace == (account, resource)
    domain = t.start("other.example", None, "other.example", None)
    assert domain.sessions == {s2s}
    assert b.trace is None and pre_auth.trace is None
    # a session authenticating later is followed from then; a second attach adds nothing
    a3 = Sess(("a", ("x",), None))
    t.attach(a3)
    t.attach(a3)
    assert a3.trace == (account,)
    a3.identity = ("a", ("x",), "r2")     # bound to the traced resource
    t.attach(a3)
    assert a3.trace == (account, resource)
    # a finished trace leaves no session reporting to it
    t.stop(account)
    assert a1.trace is None and a2.trace == (resource,) and a3.trace == (resource,)
    assert t.traces == [resource, domain]
    t.stop(resource)
    t.stop(domain)
    assert not t.traces and all(s.trace is None for s in (a1, a2, a3, s2s))
    t.attach(a3)   # no trace: nothing happens
    assert a3.trace is None


async def test_a_slow_reader_loses_stanzas_counted_where_they_were_dropped(monkeypatch):
    monkeypatch.setattr(tr, "QUEUE_MAX", 3)
    s = Sess(("a", ("x",), "r"))
    t = tracer(s)
    trace = t.start("a@x", "a", "x", None)
    for i in range(5):
        tr.sent(s, f"<m{i}/>")
    lines = trace.lines()
    got = await collect(lines, 4)     # three lines wait at most (the session's is one)
    assert [g["type"] for g in got] == ["session", "stanza", "stanza", "dropped"]
    assert [g.get("xml") for g in got[1:3]] == ["<m0/>", "<m1/>"]
    assert got[3]["count"] == 3
    assert got[1]["direction"] == "out" and got[1]["session"] == "a@x/r" and got[1]["id"] == "id1"
    tr.sent(s, "<m5/>")
    (got,) = await collect(lines, 1)
    assert got["xml"] == "<m5/>"
    # the characters waiting are bounded too
    monkeypatch.setattr(tr, "QUEUE_CHARS", 10)
    tr.sent(s, "<" + "x" * 20 + "/>")
    tr.sent(s, "<y/>")
    got = await collect(lines, 2)
    assert (got[0]["type"], got[0]["count"], got[1]["xml"]) == ("dropped", 1, "<y/>")
    await lines.aclose()    # xmppctl went: the trace stops
    assert not t.traces and s.trace is None and trace.dropped == 4


async def test_count_duration_and_closed_sessions():
    s = Sess(("a", ("x",), "r"))
    t = tracer()
    trace = t.start("a@x", "a", "x", None)
    lines = trace.lines(count=2)
    t.attach(s)
    tr.sent(s, "<one/>")
    s.hibernating = True          # a resumable session lost its connection...
    t.closed(s)
    assert s.trace == (trace,)    # ...and stays followed: its next connection takes over
    tr.received(s, _el("two"))
    got = [line async for line in lines]
    assert [g["type"] for g in got] == ["session", "stanza", "closed", "stanza", "end"]
    assert (got[3]["direction"], got[3]["xml"]) == ("in", "<two/>")
    assert (got[-1]["reason"], got[-1]["stanzas"], got[-1]["dropped"]) == ("count", 2, 0)
    assert not t.traces and s.trace is None     # the count reached, the trace stopped
    # a session that ends for good leaves the trace; a taken-over one quietly
    trace = t.start("a@x", "a", "x", None)
    s2 = Sess(("a", ("x",), "r2"))
    t.attach(s)
    t.attach(s2)
    s.hibernating = False
    t.closed(s)
    t.forget(s2)
    assert s.trace is None and s2.trace is None and not trace.sessions
    got = [line async for line in trace.lines(duration=0.01)]
    assert [g["type"] for g in got] == ["session", "session", "closed", "end"]
    assert got[-1]["reason"] == "duration"


def _el(tag):
    import xml.etree.ElementTree as ET
    return ET.Element("{jabber:client}" + tag)


async def test_sasl_never_shows_even_out_of_place():
    import xml.etree.ElementTree as ET
    s = Sess(("a", ("x",), "r"))
    t = tracer(s)
    trace = t.start("a@x", "a", "x", None)
    auth = ET.Element("{urn:ietf:params:xml:ns:xmpp-sasl}auth", mechanism="PLAIN")
    auth.text = "AGpvZQBzM2NyZXQ="
    tr.received(s, auth)
    tr.sent(s, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
    tr.sent(s, "<message><body>urn:ietf:params:xml:ns:xmpp-sasl</body></message>")
    got = [line async for line in trace.lines(count=1)]
    assert [g["type"] for g in got] == ["session", "stanza", "end"]
    assert got[1]["xml"].startswith("<message>")

"""``xmppctl trace``: the real ``xmppctl`` following a running ``xmppd`` (both
programs as subprocesses; the other xmppctl commands run in-process), clients are
slixmpp."""
from __future__ import annotations

import asyncio
import json
import signal

from tests.e2e.clients import TIMEOUT, slix_close, slix_connect

from .conftest import DOMAIN, program
from .test_control import adduser, ctl_in, wait_for

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class Trace:
    """``xmppctl trace ...`` running as a subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.header = ""

    @classmethod
    async def start(cls, cfg, *args: str) -> "Trace":
        proc = await asyncio.create_subprocess_exec(
            *program("xmppctl"), "--config", str(cfg), "trace", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        t = cls(proc)
        line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
        t.header = line.decode()
        assert t.header.startswith("tracing "), t.header
        return t

    async def line(self) -> dict:
        raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        assert raw, "the trace ended"
        return json.loads(raw)

    async def until(self, pred, seen: list) -> dict:
        """Read lines (kept in ``seen``) until one satisfies ``pred``."""
        while True:
            line = await self.line()
            seen.append(line)
            if pred(line):
                return line

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def stanza(direction: str, jid: str, *parts: str):
    """A predicate: a stanza line of ``jid``'s session containing every part."""
    def pred(line: dict) -> bool:
        return (line["type"] == "stanza" and line["direction"] == direction
                and line["session"] == jid and all(p in line["xml"] for p in parts))
    return pred


async def traces_running(ctl) -> int:
    r = await ctl("status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["traces"]


async def test_trace_an_account(tmp_path, cfg, start_daemon):
    ctl = ctl_in(cfg)
    alice, bob = await adduser(ctl, "alice"), await adduser(ctl, "bob")
    d = start_daemon(cfg).wait_ready()
    a1 = await slix_connect(d, f"{alice}/one", "pw")
    b = await slix_connect(d, f"{bob}/desk", "pw")
    trace = await Trace.start(cfg, alice, "--json")
    a2 = None
    try:
        assert trace.header.startswith(f"tracing {alice} (account): 1 session(s) now")
        seen: list = []
        # a message and an IQ of the session that was there: in both directions
        a1.send_message(mto=bob, mbody="hello bob", mtype="chat")
        assert (await b.next_message())["body"] == "hello bob"
        await a1.plugin["xep_0199"].ping(DOMAIN, timeout=TIMEOUT)
        first = await trace.line()
        seen.append(first)
        assert (first["type"], first["session"], first["kind"]) == ("session", f"{alice}/one", "c2s")
        msg = await trace.until(stanza("in", f"{alice}/one", "hello bob"), seen)
        assert msg["xml"].startswith("<message ") and f"to='{bob}'" in msg["xml"]
        ping = await trace.until(stanza("in", f"{alice}/one", "urn:xmpp:ping"), seen)
        ping_id = ping["xml"].split(" id='")[1].split("'")[0]
        await trace.until(stanza("out", f"{alice}/one", "type='result'", f"id='{ping_id}'"), seen)
        # a session that starts after the trace: followed from its authentication
        a2 = await slix_connect(d, f"{alice}/two", "pw")
        await trace.until(lambda line: line["type"] == "session" and line["session"] == alice, seen)
        b.send_message(mto=f"{alice}/two", mbody="hello two", mtype="chat")
        assert (await a2.next_message())["body"] == "hello two"
        await trace.until(stanza("out", f"{alice}/two", "hello two", f"from='{bob}/desk'"), seen)
        ids = {line["id"] for line in seen if line["type"] == "stanza"}
        assert len(ids) == 2   # two connections
        # from its authentication on: features, bind, not one byte of SASL
        xml = [line["xml"] for line in seen if line["type"] == "stanza"]
        assert any(x.startswith("<stream:features>") for x in xml)
        assert any("urn:ietf:params:xml:ns:xmpp-bind" in x for x in xml)
        for x in xml:
            assert SASL not in x, x
            assert not x.startswith(("<auth", "<response", "<challenge", "<success")), x
        # bob is not traced
        assert not any(line["session"].startswith(bob) for line in seen)
        assert await traces_running(ctl) == 1
        # Ctrl-C: xmppctl says what it showed and exits 0; xmppd stops tracing
        trace.proc.send_signal(signal.SIGINT)
        rc, _out, err = await trace.finish()
        assert rc == 0, err
        assert f"trace of {alice} ended (interrupted): " in err
        await wait_for_traces(ctl, 0)
    finally:
        trace.kill()
        await slix_close(*(c for c in (a1, a2, b) if c is not None))
    assert "Traceback" not in d.output() and "ERROR" not in d.output()


async def wait_for_traces(ctl, n: int) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while await traces_running(ctl) != n:
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_trace_waits_for_a_session_and_stops_after_count(tmp_path, cfg, start_daemon):
    ctl = ctl_in(cfg)
    alice, carol = await adduser(ctl, "alice"), await adduser(ctl, "carol")
    d = start_daemon(cfg).wait_ready()
    trace = await Trace.start(cfg, carol, "--count", "3")
    a = c = None
    try:
        assert trace.header.startswith(f"tracing {carol} (account): no session now, waiting for one")
        a = await slix_connect(d, alice, "pw")
        a.send_message(mto=carol, mbody="are you there?", mtype="chat")
        assert await traces_running(ctl) == 1 and trace.proc.returncode is None
        # carol logs in: stream features, her bind request and its answer, then it ends
        c = await slix_connect(d, f"{carol}/phone", "pw", send_presence=False)
        rc, out, err = await trace.finish()
        assert rc == 0, err
        assert f"trace of {carol} ended (--count reached): 3 stanza(s)" in err
        assert f"{carol} [c2s " in out and ": traced from now" in out
        assert out.count(" in  <- ") == 1 and out.count(" out -> ") == 2
        # pretty-printed: one element a line, indented
        assert "\n<stream:features>\n  <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'" in out or \
            "\n<stream:features>\n  <bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"" in out, out
        assert "are you there?" not in out   # alice's session is not carol's
        assert SASL not in out
        await wait_for_traces(ctl, 0)
    finally:
        trace.kill()
        await slix_close(*(x for x in (a, c) if x is not None))


async def test_killed_xmppctl_stops_the_trace(tmp_path, cfg, start_daemon):
    ctl = ctl_in(cfg)
    alice, bob = await adduser(ctl, "alice"), await adduser(ctl, "bob")
    d = start_daemon(cfg).wait_ready()
    a = await slix_connect(d, alice, "pw")
    b = await slix_connect(d, bob, "pw")
    trace = await Trace.start(cfg, alice, "--json")
    try:
        a.send_message(mto=bob, mbody="one", mtype="chat")
        await b.next_message()
        await trace.until(stanza("in", str(a.boundjid), "one"), [])
        trace.proc.kill()
        await trace.proc.wait()
        await wait_for_traces(ctl, 0)
        await wait_for(lambda: f"trace of {alice} ended" in d.output())
        # the session goes on, untraced
        a.send_message(mto=bob, mbody="two", mtype="chat")
        assert (await b.next_message())["body"] == "two"
        await a.plugin["xep_0199"].ping(DOMAIN, timeout=TIMEOUT)
    finally:
        trace.kill()
        await slix_close(a, b)
    out = d.output()
    assert "Traceback" not in out and "ERROR" not in out and "internal error" not in out, out


async def test_trace_refuses_what_it_cannot_follow(tmp_path, cfg, start_daemon):
    ctl = ctl_in(cfg)
    r = await ctl("trace", f"alice@{DOMAIN}")
    assert r.returncode == 1 and "xmppd is not running" in r.stderr
    start_daemon(cfg).wait_ready()
    r = await ctl("trace", DOMAIN)
    assert (r.returncode, r.stderr.strip()) == (
        1, f"xmppctl: {DOMAIN} is served by this xmppd: trace one of its accounts "
           f"(user@{DOMAIN}) or a remote domain")
    r = await ctl("trace", "alice@elsewhere.example")
    assert r.returncode == 1 and "is not a VirtualHost of the running xmppd" in r.stderr
    r = await ctl("trace", f"alice@{DOMAIN}", "--count", "0")
    assert r.returncode == 2 and "expected a positive number" in r.stderr
    # a remote domain nobody talks to: the trace waits, and ends after --duration
    r = await ctl("trace", "remote.example", "--duration", "0.2")
    assert r.returncode == 0, r.stderr
    assert "tracing remote.example (remote domain): no session now" in r.stderr
    assert "trace of remote.example ended (--duration elapsed): 0 stanza(s)" in r.stderr


class _Session:
    """A session as the tracer sees it (in-process test)."""
    kind, id, full_jid, hibernating = "c2s", "abc", f"alice@{DOMAIN}/r", False

    def __init__(self):
        self.trace = None

    def trace_identity(self):
        return ("alice", (DOMAIN,), "r")


async def test_what_xmppctl_does_not_read_is_dropped_and_counted(tmp_path):
    """In-process: stanzas come faster than xmppctl reads; what waits for it is
    bounded, what did not fit is counted in a ``dropped`` line where it was lost,
    and closing the connection ends the trace."""
    from xmppd.app import build_server
    from xmppd.config import parse_config_text
    from xmppd.core import trace as tr
    text = (f'interfaces = {{ "127.0.0.1" }}\nc2s_ports = {{ 0 }}\ns2s_ports = {{ 0 }}\n'
            f'data_path = "{tmp_path}/var"\nVirtualHost "{DOMAIN}"\n')
    server = build_server(parse_config_text(text, filename=str(tmp_path / "x.cfg.lua")))
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(server.control.path))
        writer.write(json.dumps({"cmd": "trace", "args": {"jid": f"alice@{DOMAIN}"}}).encode() + b"\n")
        assert json.loads(await reader.readline()) == {
            "ok": True, "result": {"tracing": f"alice@{DOMAIN}", "what": "account", "sessions": 0}}
        sess = _Session()
        server.tracer.attach(sess)
        (trace,) = server.tracer.traces
        big = "<message><body>" + "x" * 10000 + "</body></message>"
        for _ in range(3000):               # 30 MB at once: xmppctl cannot have read them
            tr.sent(sess, big)
        kept = tr.QUEUE_CHARS // len(big)
        assert trace._chars <= tr.QUEUE_CHARS and trace.dropped == 3000 - kept
        lines = [json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
                 for _ in range(kept + 2)]
        assert [line["type"] for line in lines] == ["session"] + ["stanza"] * kept + ["dropped"]
        assert lines[-1]["count"] == 3000 - kept
        tr.sent(sess, "<presence/>")        # after the loss, the trace goes on
        line = json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
        assert (line["type"], line["xml"]) == ("stanza", "<presence/>")
        writer.close()                      # xmppctl goes: the trace ends
        await writer.wait_closed()
        await wait_for(lambda: not server.tracer.traces)
        assert sess.trace is None
    finally:
        await server.stop()

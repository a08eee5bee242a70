"""A cheap XMPP load generator: raw asyncio sockets, hand-written stanzas.

The client side must cost far less than the server it measures, so nothing here
parses XML. Negotiation reads up to a known marker (``</stream:features>``,
``</challenge>``, ...); traffic during a measurement is only counted
(``bytes.count(b"<message")``) and the send time is read back from the message
id (``id='L<monotonic ns>s<sender>'``) with ``bytes.find``.

Each scenario is an ``async`` function taking a :class:`Target` and a size; it
returns a flat dict of numbers, always including ``client_cpu_pct`` (this
process's CPU time over wall time during the measured window: if it nears 100
the load generator, not the server, was the bottleneck) and, when the server's
pid is known, ``server_cpu_pct``. :func:`run_scenario` runs one in its own event
loop, in several processes when ``procs > 1``.

Clients: STARTTLS (python ssl; the test CA and the server's name are verified on the
first connection of each process, later handshakes skip that client-side check),
SCRAM-SHA-1 done by hand (the salted password is cached per salt, as real clients do),
the restarted stream's header pipelined with resource bind, initial presence. No SASL
PLAIN: every server does SCRAM-SHA-1.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import multiprocessing
import os
import resource
import ssl
import time
from dataclasses import dataclass, field

STREAM_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>")
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BODY = "Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike."
FEATURES_END = b"</stream:features>"
LOGIN_TIMEOUT = 30.0


class BenchError(Exception):
    """A server answered something the scenario cannot go on with."""


@dataclass
class Target:
    """Where the server is and how to log in."""
    port: int
    domain: str
    cafile: str
    host: str = "127.0.0.1"
    password: str = "secret"
    user_prefix: str = "u"
    muc: str | None = None          # conference component domain, None if unavailable
    server_pid: int | None = None   # for server CPU% and RSS
    source: str | None = None       # local address to connect from (127.x.y.z on loopback)
    ws_port: int | None = None      # XMPP over WebSocket (RFC 7395) on this port instead
    ws_path: str = "/xmpp-websocket"
    ws_tls: bool = True             # wss:// (TLS from the first byte), else ws://
    upload: str | None = None       # HTTP File Upload component domain

    def user(self, i: int) -> str:
        return f"{self.user_prefix}{i}"


# ------------------------------------------------------------------ accounting
def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process from /proc (seconds), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            parts = f.read().rsplit(b")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Window:
    """Wall and CPU time of this process (and of the server) over a window."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid
        self.wall0 = time.monotonic()
        self.cpu0 = time.process_time()
        self.srv0 = proc_cpu_seconds(server_pid) if server_pid else None

    def close(self) -> dict:
        wall = time.monotonic() - self.wall0
        out = {"wall_s": wall, "client_cpu_s": time.process_time() - self.cpu0}
        out["client_cpu_pct"] = 100.0 * out["client_cpu_s"] / wall if wall else 0.0
        if self.srv0 is not None:
            srv1 = proc_cpu_seconds(self.server_pid)
            if srv1 is not None:
                out["server_cpu_pct"] = 100.0 * (srv1 - self.srv0) / wall if wall else 0.0
        return out


def percentile(sorted_values: list, q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


# ------------------------------------------------------------------ the client
LIVE: set = set()          # clients whose connection is open (for cleanup)
_SALTED: dict[tuple[bytes, bytes, int], bytes] = {}


def _salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    key = (password.encode(), salt, iterations)
    sp = _SALTED.get(key)
    if sp is None:
        sp = _SALTED[key] = hashlib.pbkdf2_hmac("sha1", key[0], salt, iterations)
    return sp


def _between(data: bytes, start: bytes, end: bytes) -> bytes | None:
    i = data.find(start)
    if i < 0:
        return None
    i = data.find(b">", i) + 1
    j = data.find(end, i)
    return data[i:j] if j >= 0 else None


class Client(asyncio.Protocol):
    """One XMPP client connection: negotiation by markers, then a counting sink."""

    def __init__(self, target: Target, ssl_ctx: ssl.SSLContext):
        self.target = target
        self.ssl_ctx = ssl_ctx
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.markers: tuple[bytes, ...] = ()
        self.lost = False
        self.jid = ""
        self.sink = None          # callable(bytes) once negotiation is over

    # -- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        LIVE.add(self)

    def data_received(self, data: bytes):
        if self.sink is not None:
            self.sink(data)
            return
        self.buf += data
        w = self.waiter
        if w is not None and not w.done() and any(m in self.buf for m in self.markers):
            w.set_result(None)

    def connection_lost(self, exc):
        self.lost = True
        LIVE.discard(self)
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionError(f"connection lost: {exc or 'closed by server'}"))

    def eof_received(self):
        return False

    # -- helpers
    def send(self, data: str | bytes) -> None:
        self.transport.write(data.encode() if isinstance(data, str) else data)

    async def read_until(self, *markers: bytes, timeout: float = LOGIN_TIMEOUT) -> bytes:
        """Everything up to the end of the earliest of *markers* (consumed from the buffer)."""
        if not any(m in self.buf for m in markers):
            if self.lost:
                raise ConnectionError("connection lost")
            self.markers = markers
            loop = asyncio.get_running_loop()
            w = self.waiter = loop.create_future()
            timer = loop.call_later(timeout, _expire, w, markers)   # cheaper than wait_for
            try:
                await w
            finally:
                timer.cancel()
                self.waiter = None
        best = None
        for m in markers:
            i = self.buf.find(m)
            if i >= 0 and (best is None or i + len(m) < best):
                best = i + len(m)
        out = bytes(self.buf[:best])
        del self.buf[:best]
        return out

    async def open_stream(self) -> bytes:
        self.send(STREAM_HEADER.format(domain=self.target.domain))
        return await self.read_until(FEATURES_END)

    # -- the login sequence
    async def login(self, user: str, resource: str = "bench", *, presence: bool = True) -> None:
        t = self.target
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, t.host, t.port,
                                     local_addr=(t.source, 0) if t.source else None)
        self.transport.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
        feats = await self.open_stream()
        if b"xmpp-tls" not in feats:
            raise BenchError("server offers no STARTTLS")
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        got = await self.read_until(b"/>", b"</proceed>", b"</failure>")
        if b"proceed" not in got:
            raise BenchError(f"STARTTLS refused: {got[-200:]!r}")
        self.buf.clear()
        key = (t.host, t.port)
        verify = key not in _VERIFIED
        self.transport = await loop.start_tls(self.transport, self,
                                              self.ssl_ctx if verify else _unverified_context(),
                                              server_hostname=t.domain)
        if verify:
            _VERIFIED.add(key)
        feats = await self.open_stream()
        if b">SCRAM-SHA-1<" not in feats:
            raise BenchError(f"server offers no SCRAM-SHA-1: {feats[-300:]!r}")
        await self._scram_sha1(user, t.password)
        self.buf.clear()
        await self._restart_and_bind(STREAM_HEADER.format(domain=self.target.domain), resource,
                                     presence)

    async def _restart_and_bind(self, header: str, resource: str, presence: bool,
                                xmlns: str = "") -> None:
        """The restarted stream's header and the bind request in one write (pipelined,
        as XEP-0305 clients do): the server answers them in order. Then presence."""
        self.send_stanzas([header, f"<iq{xmlns} type='set' id='bind1'><bind "
                                   f"xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}"
                                   f"</resource></bind></iq>"])
        await self.read_until(FEATURES_END)
        got = await self.read_until(b"</iq>", b"/>")
        jid = _between(got, b"<jid", b"</jid>")
        if jid is None:
            raise BenchError(f"bind failed: {got[-300:]!r}")
        self.jid = jid.decode()
        if presence:
            self.send(f"<presence{xmlns}/>")

    async def _scram_sha1(self, user: str, password: str) -> None:
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n={user},r={cnonce}"
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>"
                  f"{base64.b64encode(('n,,' + first_bare).encode()).decode()}</auth>")
        got = await self.read_until(b"</challenge>", b"</failure>")
        chal = _between(got, b"<challenge", b"</challenge>")
        if chal is None:
            raise BenchError(f"SASL failure for {user}: {got[-200:]!r}")
        server_first = base64.b64decode(chal).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(cnonce):
            raise BenchError("server nonce does not extend ours")
        salted = _salted_password(password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha1")
        stored_key = hashlib.sha1(client_key).digest()
        final_wo_proof = f"c=biws,r={nonce}"
        auth_msg = f"{first_bare},{server_first},{final_wo_proof}".encode()
        sig = hmac.digest(stored_key, auth_msg, "sha1")
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
        final = base64.b64encode(f"{final_wo_proof},p={proof}".encode()).decode()
        self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        got = await self.read_until(b"</success>", b"</failure>", b"success xmlns='" + NS_SASL.encode() + b"'/>",
                                    b'success xmlns="' + NS_SASL.encode() + b'"/>')
        if b"<success" not in got:
            raise BenchError(f"SCRAM-SHA-1 failed for {user}: {got[-200:]!r}")
        expected = base64.b64encode(hmac.digest(hmac.digest(salted, b"Server Key", "sha1"),
                                                auth_msg, "sha1"))
        v = _between(got, b"<success", b"</success>")
        if v and b"v=" + expected not in base64.b64decode(v):
            raise BenchError("server signature does not verify")

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            try:
                self.transport.write(b"</stream:stream>")
                self.transport.close()
            except Exception:
                self.transport.abort()


    def send_stanzas(self, stanzas: list[str]) -> None:
        """Several stanzas in one write."""
        self.transport.write("".join(stanzas).encode())


FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
WS_KEY = base64.b64encode(b"xmppd-bench-key!").decode()


def ws_frame(payload: bytes) -> bytes:
    """A client's text frame (RFC 6455 §5.2). Client frames must be masked; the key
    is all zeros (a key a random draw may give), so the payload goes as it is and
    masking costs the load generator nothing."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class WSClient(Client):
    """An XMPP client over WebSocket (RFC 7395): the same login, each stanza its
    own frame. What arrives is only scanned for markers, so frame headers between
    the elements do not matter."""

    def send(self, data: str | bytes) -> None:
        self.transport.write(ws_frame(data.encode() if isinstance(data, str) else data))

    def send_stanzas(self, stanzas: list[str]) -> None:
        self.transport.write(b"".join(ws_frame(x.encode()) for x in stanzas))

    async def open_stream(self) -> bytes:
        self.send(f"<open xmlns='{FRAMING}' to='{self.target.domain}' version='1.0'/>")
        return await self.read_until(FEATURES_END)

    async def login(self, user: str, resource: str = "bench", *, presence: bool = True) -> None:
        t = self.target
        loop = asyncio.get_running_loop()
        ctx = None
        if t.ws_tls:
            key = (t.host, t.ws_port)
            ctx = self.ssl_ctx if key not in _VERIFIED else _unverified_context()
            _VERIFIED.add(key)
        await loop.create_connection(lambda: self, t.host, t.ws_port, ssl=ctx,
                                     server_hostname=t.domain if ctx else None,
                                     local_addr=(t.source, 0) if t.source else None)
        self.transport.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
        self.transport.write((f"GET {t.ws_path} HTTP/1.1\r\nHost: {t.domain}\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Protocol: xmpp\r\n\r\n").encode())
        got = await self.read_until(b"\r\n\r\n")
        if b" 101 " not in got.split(b"\r\n", 1)[0]:
            raise BenchError(f"WebSocket upgrade refused: {got[:200]!r}")
        feats = await self.open_stream()
        if b">SCRAM-SHA-1<" not in feats:
            raise BenchError(f"server offers no SCRAM-SHA-1: {feats[-300:]!r}")
        await self._scram_sha1(user, t.password)
        self.buf.clear()
        await self._restart_and_bind(f"<open xmlns='{FRAMING}' to='{t.domain}' version='1.0'/>",
                                     resource, presence, xmlns=" xmlns='jabber:client'")

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            try:
                self.send(f"<close xmlns='{FRAMING}'/>")
                self.transport.close()
            except Exception:
                self.transport.abort()


def _expire(w: asyncio.Future, markers) -> None:
    if not w.done():
        w.set_exception(asyncio.TimeoutError(f"no {markers[0]!r} from the server"))


def client_ssl_context(cafile: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


# The server's certificate is verified (against the test CA, with its name) on the
# first connection of each process; later handshakes skip the chain check, which
# is client-side CPU only (the server's work is the same), so the load generator
# stays cheap next to the server it measures.
_VERIFIED: set = set()
_UNVERIFIED: list = []


def _unverified_context() -> ssl.SSLContext:
    if not _UNVERIFIED:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _UNVERIFIED.append(ctx)
    return _UNVERIFIED[0]


async def connect(target: Target, ctx: ssl.SSLContext, user: str, resource: str = "bench",
                  presence: bool = True) -> Client:
    c = (WSClient if target.ws_port else Client)(target, ctx)
    try:
        await c.login(user, resource, presence=presence)
    except BaseException:
        if c.transport is not None:
            c.transport.abort()
        raise
    return c


async def connect_many(target: Target, ctx, users: list[str], *, concurrency: int = 50,
                       resource: str = "bench", presence: bool = True) -> list[Client]:
    """Log in one client per user, *concurrency* at a time, in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(u):
        async with sem:
            return await connect(target, ctx, u, resource, presence)
    return list(await asyncio.gather(*(one(u) for u in users)))


# ------------------------------------------------------------------ counting sinks
class Counter:
    """Counts ``<message`` in received bytes; reads latency from our ids."""

    __slots__ = ("tail", "count", "own", "me", "lat", "recording", "on_count")

    def __init__(self, me: int = -1, on_count=None):
        self.tail = b""
        self.count = 0        # messages received
        self.own = 0          # of which sent by sender index ``me``
        self.me = me
        self.lat: list[int] = []
        self.recording = False
        self.on_count = on_count

    def __call__(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        end = data.rfind(b"</message>")
        if end < 0:
            self.tail = data if len(data) < 1 << 20 else b""
            return
        end += 10
        self.tail = data[end:]
        n = data.count(b"<message", 0, end)
        if not n:
            return
        self.count += n
        now = time.monotonic_ns()
        me = self.me
        own = 0
        find = data.find
        pos = find(b" id=", 0, end)
        lat = self.lat if self.recording else None
        while pos >= 0:
            i = pos + 5
            if data[i:i + 1] == b"L":
                s = find(b"s", i, i + 40)
                q = find(data[pos + 4:pos + 5], i, i + 60)
                # ours only: a server's own ids (stanza-id, ...) may start with L too
                if s > 0 and q > s and data[i + 1:s].isdigit() and data[s + 1:q].isdigit():
                    if lat is not None:
                        lat.append(now - int(data[i + 1:s]))
                    if me >= 0 and int(data[s + 1:q]) == me:
                        own += 1
            pos = find(b" id=", i, end)
        self.own += own
        if self.on_count is not None:
            self.on_count(n, own)


# ------------------------------------------------------------------ scenarios
@dataclass
class Phase:
    """Warm-up then measurement, in seconds."""
    warmup: float = 2.0
    duration: float = 10.0


async def scenario_login(target: Target, size: int = 50, *, phase: Phase = Phase(),
                         first: int = 0, count: int | None = None, barrier=None, **_) -> dict:
    """Logins/s: *size* workers, each in a loop: connect, STARTTLS, SCRAM-SHA-1, bind, close.

    Worker i logs in as user i; ``first``/``count`` select a slice of the workers.
    """
    count = size if count is None else count
    if barrier is not None:
        barrier.wait()
    ctx = client_ssl_context(target.cafile)
    done = 0
    errors = 0
    stop = False
    counting = False

    async def worker(i: int):
        nonlocal done, errors
        n = 0
        while not stop:
            try:
                c = await connect(target, ctx, target.user(i), f"l{n}", presence=False)
            except (BenchError, ConnectionError, OSError, asyncio.TimeoutError) as e:
                errors += 1
                if errors > 10 * size:
                    raise BenchError(f"too many login failures, last: {e}") from None
                await asyncio.sleep(0.05)
                continue
            c.close()
            n += 1
            if counting:
                done += 1
    tasks = [asyncio.ensure_future(worker(i)) for i in range(first, first + count)]
    await asyncio.sleep(phase.warmup)
    counting = True
    w = Window(target.server_pid)
    await asyncio.sleep(phase.duration)
    counting = False
    acc = w.close()
    stop = True
    await asyncio.wait(tasks, timeout=LOGIN_TIMEOUT)
    for t in tasks:
        if t.done() and t.exception():
            raise t.exception()
        t.cancel()
    return {"logins_per_s": done / acc["wall_s"], "login_errors": errors, **acc}


async def do_logins(target: Target, n: int, concurrency: int = 50) -> dict:
    """*n* logins (connect, STARTTLS, SCRAM-SHA-1, bind, close) over *concurrency* users."""
    ctx = client_ssl_context(target.cafile)
    left = n
    t0 = time.monotonic()

    async def worker(i: int):
        nonlocal left
        k = 0
        while left > 0:
            left -= 1
            c = await connect(target, ctx, target.user(i), f"w{k}", presence=False)
            c.close()
            k += 1
    await asyncio.gather(*(worker(i) for i in range(min(concurrency, n))))
    return {"prior_logins": n, "prior_logins_per_s": n / (time.monotonic() - t0)}


async def scenario_msg(target: Target, size: int = 100, *, phase: Phase = Phase(), window: int = 8,
                       first_pair: int = 0, npairs: int | None = None, barrier=None,
                       **_) -> dict:
    """One-to-one chat: *size* sender→receiver pairs, each keeping *window* messages in flight.

    Pair k is user 2k (sender) → user 2k+1 (receiver). With ``first_pair``/``npairs``
    this process drives only a slice of the pairs (see :func:`run_scenario`).
    """
    ctx = client_ssl_context(target.cafile)
    npairs = size if npairs is None else npairs
    pairs = range(first_pair, first_pair + npairs)
    senders = await connect_many(target, ctx, [target.user(2 * k) for k in pairs])
    receivers = await connect_many(target, ctx, [target.user(2 * k + 1) for k in pairs])
    running = False
    sent = [0] * npairs
    counters: list[Counter] = []
    templates = []
    xmlns = " xmlns='jabber:client'" if target.ws_port else ""   # RFC 7395: each its own document
    for j, (s, r) in enumerate(zip(senders, receivers)):
        templates.append((f"<message{xmlns} to='{r.jid}' type='chat' id='L%ds{j}'><body>{BODY}</body></message>"))

    def make_refill(j: int):
        snd = senders[j]
        tpl = templates[j]

        def refill(_n=0, _own=0):
            if not running:
                return
            room = window - (sent[j] - counters[j].count)
            if room > 0:
                now = time.monotonic_ns()
                snd.send_stanzas([tpl % now] * room)
                sent[j] += room
        return refill

    for j, r in enumerate(receivers):
        c = Counter()
        counters.append(c)
        c.on_count = make_refill(j)
        r.sink = c
    for s in senders:
        s.sink = lambda data: None
    await asyncio.sleep(0.2)          # presence echoes settle
    for c in counters:
        c.count = 0
    if barrier is not None:
        barrier.wait()
    running = True
    for c in counters:
        c.on_count()
    await asyncio.sleep(phase.warmup)
    for c in counters:
        c.recording = True
    base = sum(c.count for c in counters)
    w = Window(target.server_pid)
    await asyncio.sleep(phase.duration)
    got = sum(c.count for c in counters) - base
    acc = w.close()
    running = False
    if not got:
        raise BenchError("nothing was delivered in the measured window")
    for c in counters:
        c.recording = False
    lat = sorted(x for c in counters for x in c.lat)
    for c in senders + receivers:
        c.close()
    return {"msgs_per_s": got / acc["wall_s"], "messages": got, "latencies_ns": lat, **acc}


async def scenario_msg_after_logins(target: Target, size: int = 100, *, logins: int = 10000,
                                    phase: Phase = Phase(), **kw) -> dict:
    """Routing again after *logins* logins on the same server process."""
    pre = await do_logins(target, logins)
    out = await scenario_msg(target, size, phase=phase, **kw)
    out.update(pre)
    return out


async def scenario_muc(target: Target, size: int = 50, *, phase: Phase = Phase(), senders: int = 5,
                       window: int = 4, first: int = 0, count: int | None = None, barrier=None,
                       **_) -> dict:
    """MUC fan-out: *size* occupants of one room; *senders* of them send groupchat
    messages, each keeping *window* in flight (until its own reflection comes
    back). Counts every ``<message`` delivered to every occupant."""
    if not target.muc:
        raise BenchError("no MUC component")
    ctx = client_ssl_context(target.cafile)
    count = size if count is None else count
    idx = range(first, first + count)
    room = f"bench@{target.muc}"
    clients = await connect_many(target, ctx, [target.user(i) for i in idx], presence=False)
    # the first occupant creates the room and makes it an instant room (XEP-0045 §10.1.2)
    for i, c in zip(idx, clients):
        c.send(f"<presence to='{room}/n{i}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        got = await c.read_until(b"</presence>", timeout=LOGIN_TIMEOUT)
        while b"type='error'" in got or b'type="error"' in got or b"110" not in got:
            if b"type='error'" in got or b'type="error"' in got:
                raise BenchError(f"MUC join failed: {got[-300:]!r}")
            got = await c.read_until(b"</presence>", timeout=LOGIN_TIMEOUT)
        if i == 0:
            c.send(f"<iq type='set' to='{room}' id='cfg1'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                   f"<x xmlns='jabber:x:data' type='submit'/></query></iq>")
        c.send("<presence/>")
    if barrier is not None:
        barrier.wait()
    await asyncio.sleep(0.5)          # joins of the others settle
    running = False
    sent = {}
    counters = []
    nsend = [i for i in idx if i < senders]

    def make_refill(i, c, counter):
        tpl = f"<message to='{room}' type='groupchat' id='L%ds{i}'><body>{BODY}</body></message>"

        def refill(_n=0, _own=0):
            if not running:
                return
            room_left = window - (sent[i] - counter.own)
            if room_left > 0:
                now = time.monotonic_ns()
                c.transport.write("".join([tpl % now] * room_left).encode())
                sent[i] += room_left
        return refill

    refills = []
    for i, c in zip(idx, clients):
        counter = Counter(me=i)
        counters.append(counter)
        c.buf.clear()
        c.sink = counter
        if i in nsend:
            sent[i] = 0
            counter.on_count = make_refill(i, c, counter)
            refills.append(counter.on_count)
    running = True
    for r in refills:
        r()
    await asyncio.sleep(phase.warmup)
    for c in counters:
        c.recording = True
    base = sum(c.count for c in counters)
    w = Window(target.server_pid)
    await asyncio.sleep(phase.duration)
    got = sum(c.count for c in counters) - base
    acc = w.close()
    running = False
    if not got:
        raise BenchError("nothing was delivered in the measured window")
    lat = sorted(x for c in counters for x in c.lat)
    for c in clients:
        c.close()
    return {"delivered_per_s": got / acc["wall_s"], "delivered": got, "latencies_ns": lat, **acc}


async def scenario_roster(target: Target, size: int = 500, *, fetches: int = 200,
                          changes: int | None = None, **_) -> dict:
    """Roster fetch of *size* items: populate with IQ roster sets (over the wire, so it
    works the same on every server), then time *fetches* sequential roster gets, then
    *changes* (default fetches // 2) gets each after a roster set that renamed one item
    (``changed_p50_ms``: a server that keeps its last result cannot reuse it there)."""
    ctx = client_ssl_context(target.cafile)
    c = await connect(target, ctx, target.user(0), "roster", presence=False)
    batch = 50
    for start in range(0, size, batch):
        items = []
        for i in range(start, min(size, start + batch)):
            items.append(f"<iq type='set' id='rs{i}'><query xmlns='jabber:iq:roster'>"
                         f"<item jid='contact{i}@{target.domain}' name='Contact {i}'>"
                         f"<group>Friends</group></item></query></iq>")
        c.send("".join(items))
        last = min(size, start + batch) - 1
        got = await c.read_until(f"rs{last}'".encode(), f'rs{last}"'.encode())
        got += await c.read_until(b">")
        if b"type='error'" in got or b'type="error"' in got:
            raise BenchError(f"roster set failed: {got[-300:]!r}")
    c.buf.clear()
    times = []
    w = Window(target.server_pid)
    items = 0
    for k in range(fetches):
        t0 = time.perf_counter()
        c.send(f"<iq type='get' id='rg{k}'><query xmlns='jabber:iq:roster'/></iq>")
        got = await c.read_until(b"</iq>")
        times.append(time.perf_counter() - t0)
        if k == 0:
            items = got.count(b"<item ")
            if items < size:
                raise BenchError(f"roster has {items} items, expected {size}: {got[:300]!r}")
    acc = w.close()
    changed = []
    for k in range(fetches // 2 if changes is None else changes):
        i = k % size
        c.send(f"<iq type='set' id='rc{k}'><query xmlns='jabber:iq:roster'>"
               f"<item jid='contact{i}@{target.domain}' name='Changed {k}'>"
               f"<group>Friends</group></item></query></iq>")
        await c.read_until(f"id='rc{k}'".encode(), f'id="rc{k}"'.encode())
        t0 = time.perf_counter()
        c.send(f"<iq type='get' id='cg{k}'><query xmlns='jabber:iq:roster'/></iq>")
        await c.read_until(f"id='cg{k}'".encode(), f'id="cg{k}"'.encode())
        got = await c.read_until(b"</iq>")
        changed.append(time.perf_counter() - t0)
        if f"Changed {k}".encode() not in got:
            raise BenchError(f"roster fetch after a change misses it: {got[:300]!r}")
    c.close()
    times.sort()
    changed.sort()
    return {"p50_ms": 1000 * percentile(times, 0.5), "p99_ms": 1000 * percentile(times, 0.99),
            "changed_p50_ms": 1000 * percentile(changed, 0.5) if changed else float("nan"),
            "items": items, **acc}


async def scenario_idle_mem(target: Target, size: int = 1000, *, settle: float = 1.0, **_) -> dict:
    """Server RSS delta per idle authenticated (bound, available) connection."""
    if not target.server_pid:
        raise BenchError("idle_mem needs the server's pid")
    ctx = client_ssl_context(target.cafile)
    warm = await connect_many(target, ctx, [target.user(i) for i in range(min(20, size))])
    for c in warm:
        c.close()
    await asyncio.sleep(settle)
    before = proc_rss_kib(target.server_pid)
    w = Window(target.server_pid)
    clients = await connect_many(target, ctx, [target.user(i) for i in range(size)], resource="idle")
    for c in clients:
        c.sink = lambda data: None
    await asyncio.sleep(settle)
    after = proc_rss_kib(target.server_pid)
    acc = w.close()
    # with all of them held, a message round trip between two still completes
    rtt_ms = float("nan")
    if size >= 2 and not clients[0].lost and not clients[1].lost:
        a, b = clients[0], clients[1]
        got = asyncio.get_running_loop().create_future()

        def watch(data: bytes) -> None:
            if b"id='rt'" in data and not got.done():
                got.set_result(time.perf_counter())
        a.sink = watch   # a waits for b's answer
        b.sink = lambda data: (b"id='rt'" in data) and b.send(
            f"<message to='{a.jid}' type='chat' id='rt'><body>pong</body></message>")
        t0 = time.perf_counter()
        a.send(f"<message to='{b.jid}' type='chat' id='rt'><body>ping</body></message>")
        await asyncio.wait_for(got, 30)
        rtt_ms = (got.result() - t0) * 1000
    lost = sum(c.lost for c in clients)
    for c in clients:
        c.close()
    await asyncio.sleep(0.2)
    if lost:
        raise BenchError(f"{lost} idle connections were dropped")
    return {"kib_per_conn": (after - before) / size, "rss_before_kib": before, "rss_after_kib": after,
            "connections": size, "round_trip_ms": rtt_ms, **acc}


async def scenario_upload(target: Target, size: int = 20, *, phase: Phase = Phase(),
                          **_) -> dict:
    """HTTP File Upload (XEP-0363): one client asks the upload component for slots
    and PUTs *size* MB files, one after the other, for the measured window; then
    GETs one back. Throughput and server CPU per MB, for PUT and GET."""
    import re
    import socket as _socket

    import aiohttp
    from aiohttp.abc import AbstractResolver

    class Loopback(AbstractResolver):
        async def resolve(self, host, port=0, family=_socket.AF_INET):
            return [{"hostname": host, "host": "127.0.0.1", "port": port,
                     "family": _socket.AF_INET, "proto": 0, "flags": _socket.AI_NUMERICHOST}]

        async def close(self):
            pass

    if not target.upload:
        raise BenchError("no upload component")
    ctx = client_ssl_context(target.cafile)
    c = await connect(target, ctx, target.user(0), presence=False)
    nbytes = size * 1024 * 1024
    block = os.urandom(1024 * 1024)
    n = 0

    async def slot() -> tuple[str, str, str]:
        nonlocal n
        n += 1
        c.send(f"<iq type='get' to='{target.upload}' id='slot{n}'><request "
               f"xmlns='urn:xmpp:http:upload:0' filename='f{n}.bin' size='{nbytes}' "
               f"content-type='application/octet-stream'/></iq>")
        got = (await c.read_until(b"</iq>")).decode()
        put = re.search(r"<put[^>]*url=['\"]([^'\"]+)", got)
        auth = re.search(r"<header[^>]*name=['\"]Authorization['\"][^>]*>([^<]+)<", got)
        get = re.search(r"<get[^>]*url=['\"]([^'\"]+)", got)
        if not (put and get):
            raise BenchError(f"no upload slot: {got[-300:]!r}")
        return (put.group(1).replace("&amp;", "&"), auth.group(1) if auth else "",
                get.group(1).replace("&amp;", "&"))

    async def body():
        for _ in range(size):
            yield block

    conn = aiohttp.TCPConnector(ssl=_unverified_context(), resolver=Loopback())
    async with aiohttp.ClientSession(connector=conn) as http:
        async def upload_one() -> str:
            put, auth, get = await slot()
            headers = {"Content-Length": str(nbytes), "Content-Type": "application/octet-stream"}
            if auth:
                headers["Authorization"] = auth
            async with http.put(put, data=body(), headers=headers) as r:
                if r.status not in (200, 201):
                    raise BenchError(f"upload refused: {r.status} {await r.text()}")
            return get
        get = await upload_one()       # warm-up
        w = Window(target.server_pid)
        ups = 0
        while True:
            get = await upload_one()
            ups += 1
            if time.monotonic() - w.wall0 >= phase.duration:
                break
        acc = w.close()
        put_mb_s = ups * size / acc["wall_s"]
        put_cpu_ms = acc.get("server_cpu_pct", 0) * acc["wall_s"] * 10 / (ups * size)
        w = Window(target.server_pid)
        got = 0
        async with http.get(get) as r:
            async for chunk in r.content.iter_chunked(1 << 20):
                got += len(chunk)
        acc2 = w.close()
        if got != nbytes:
            raise BenchError(f"downloaded {got} bytes of {nbytes}")
    c.close()
    return {"put_mb_per_s": put_mb_s, "put_server_ms_per_mb": put_cpu_ms,
            "get_mb_per_s": size / acc2["wall_s"],
            "get_server_ms_per_mb": acc2.get("server_cpu_pct", 0) * acc2["wall_s"] * 10 / size,
            "uploads": ups, **acc}


MAM_FORM = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>urn:xmpp:mam:2</value></field>{fields}</x>")


def mam_query(n: int, peers: int, span: float, t0: float) -> str:
    """The n-th query of a client: in turn the last page of the whole archive, the
    last page with one correspondent, and a page from a time on (XEP-0313 with
    XEP-0059: 50 items), as a client opening a conversation or scrolling does."""
    kind = n % 3
    fields = ""
    rsm = "<max>50</max>"
    if kind == 0:
        rsm += "<before/>"
    elif kind == 1:
        fields = f"<field var='with'><value>peer{n % peers}@example.org</value></field>"
        rsm += "<before/>"
    else:
        # spread over the archive's time span, in whole seconds
        import datetime
        at = t0 + (n * 7919) % int(span)
        stamp = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = f"<field var='start'><value>{stamp}</value></field>"
    return (f"<iq type='set' id='mam{n}'><query xmlns='urn:xmpp:mam:2' queryid='q{n}'>"
            f"{MAM_FORM.format(fields=fields)}<set xmlns='http://jabber.org/protocol/rsm'>{rsm}"
            "</set></query></iq>")


async def scenario_mam(target: Target, size: int = 10, *, phase: Phase = Phase(), peers: int = 10,
                       span: float = 1e6, t0: float = 1.7e9, **_) -> dict:
    """Archive queries (XEP-0313): *size* clients, each with a large archive, each
    sending one query at a time (the next when the last ``<fin/>`` came back).
    Latency is from the query to its IQ result, the 50 messages before it included."""
    ctx = client_ssl_context(target.cafile)
    clients = await connect_many(target, ctx, [target.user(i) for i in range(size)], presence=False)
    lat: list[int] = []
    done = 0
    recording = False
    stop = False

    async def loop(i: int, c) -> None:
        nonlocal done
        n = i * 1000
        while not stop:
            t = time.monotonic_ns()
            c.send(mam_query(n, peers, span, t0))
            got = await c.read_until(f"id='mam{n}'".encode(), f'id="mam{n}"'.encode(), timeout=60)
            got = got[-300:] + await c.read_until(b"</iq>", timeout=60)
            if b"type='error'" in got or b'type="error"' in got or b"<fin" not in got:
                raise BenchError(f"MAM query failed: {got[-400:]!r}")
            if recording:
                lat.append(time.monotonic_ns() - t)
                done += 1
            n += 1
            c.buf.clear()

    tasks = [asyncio.create_task(loop(i, c)) for i, c in enumerate(clients)]
    await asyncio.sleep(phase.warmup)
    recording = True
    w = Window(target.server_pid)
    await asyncio.sleep(phase.duration)
    acc = w.close()
    recording = False
    stop = True
    await asyncio.gather(*tasks)
    for c in clients:
        c.close()
    if not done:
        raise BenchError("no query was answered in the measured window")
    lat.sort()
    return {"queries_per_s": done / acc["wall_s"], "queries": done,
            "p50_query_ms": percentile(lat, 0.5) / 1e6, "p99_query_ms": percentile(lat, 0.99) / 1e6,
            **acc}


SCENARIOS = {
    "login": scenario_login,
    "msg": scenario_msg,
    "msg_after_logins": scenario_msg_after_logins,
    "muc": scenario_muc,
    "roster": scenario_roster,
    "idle_mem": scenario_idle_mem,
    "upload": scenario_upload,
    "mam": scenario_mam,
}


# ------------------------------------------------------------------ running
def raise_nofile(n: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n, soft), hard) if hard != resource.RLIM_INFINITY else max(n, soft)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _run_in_loop(func, target: Target, size: int, kw: dict) -> dict:
    raise_nofile()
    loop = _new_loop()
    try:
        return loop.run_until_complete(func(target, size, **kw))
    finally:
        loop.run_until_complete(_cleanup())
        loop.close()


async def _cleanup() -> None:
    """Let polite closes finish, then abort what is left (cancelled logins, slow TLS shutdowns)."""
    for _ in range(20):
        if not LIVE:
            break
        await asyncio.sleep(0.05)
    for c in list(LIVE):
        if c.transport is not None:
            c.transport.abort()
    LIVE.clear()
    await asyncio.sleep(0)


def _child(func, target, size, kw, q):
    try:
        q.put(("ok", _run_in_loop(func, target, size, kw)))
    except BaseException as e:  # reported to the parent
        q.put(("error", f"{type(e).__name__}: {e}"))


def run_scenario(name: str, target: Target, size: int, *, procs: int = 1, **kw) -> dict:
    """Run scenario *name* to completion; returns its numbers.

    With ``procs > 1`` (login, msg and muc only) the clients are split over that many
    processes that start sending together (a barrier) and whose counts, latencies
    and CPU times are added up.
    """
    func = SCENARIOS[name]
    if procs <= 1 or name not in ("login", "msg", "msg_after_logins", "muc"):
        return _finish(_run_in_loop(func, target, size, kw))
    pre: dict = {}
    if name == "msg_after_logins":
        kw = dict(kw)
        pre = _run_in_loop(do_logins, target, kw.pop("logins", 10000), {})
        name, func = "msg", scenario_msg
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs)
    q = ctx.Queue()
    share = [size // procs + (1 if p < size % procs else 0) for p in range(procs)]
    children = []
    first = 0
    for p in range(procs):
        ckw = dict(kw, barrier=barrier)
        if name == "msg":
            ckw.update(first_pair=first, npairs=share[p])
        else:
            ckw.update(first=first, count=share[p])
        first += share[p]
        pr = ctx.Process(target=_child, args=(func, target, size, ckw, q))
        pr.start()
        children.append(pr)
    results = [q.get() for _ in children]
    for pr in children:
        pr.join()
    errors = [r for s, r in results if s != "ok"]
    if errors:
        raise BenchError("; ".join(errors))
    parts = [r for _, r in results]
    merged: dict = {}
    for r in parts:
        for k, v in r.items():
            if k == "latencies_ns":
                merged.setdefault(k, []).extend(v)
            elif k in ("wall_s", "server_cpu_pct", "prior_logins", "prior_logins_per_s"):
                merged[k] = max(merged.get(k, 0), v)
            elif isinstance(v, (int, float)):
                merged[k] = merged.get(k, 0) + v
    merged.update(pre)
    if "latencies_ns" in merged:
        merged["latencies_ns"].sort()
    merged["client_cpu_pct"] = 100.0 * merged["client_cpu_s"] / merged["wall_s"]
    merged["procs"] = procs
    return _finish(merged)


def _finish(r: dict) -> dict:
    # the server's CPU per unit of work: comparable between servers even when the
    # load generator, not the server, limited the rate
    srv = r.get("server_cpu_pct")
    if srv is not None:
        if r.get("logins_per_s"):
            r["server_ms_per_login"] = srv * 10.0 / r["logins_per_s"]
        if r.get("msgs_per_s"):
            r["server_us_per_msg"] = srv * 1e4 / r["msgs_per_s"]
        if r.get("delivered_per_s"):
            r["server_us_per_delivery"] = srv * 1e4 / r["delivered_per_s"]
    lat = r.pop("latencies_ns", None)
    if lat is not None:
        r["p50_latency_ms"] = percentile(lat, 0.5) / 1e6
        r["p99_latency_ms"] = percentile(lat, 0.99) / 1e6
    return r

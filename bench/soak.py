"""Soak: xmppd for hours under mixed traffic and misbehaving clients, sampling its
memory, file descriptors, CPU and delivery latency.

    .venv/bin/python bench/soak.py --duration 3600          # make soak SOAK_TIME=3600
    .venv/bin/python bench/soak.py --smoke                  # 30 s, what tests/bench runs

The server runs as it would in production: the default modules, a MUC component,
the default ``limits``, SQLite, STARTTLS and SCRAM-SHA-1, pinned to CPU 0 (this
process on CPU 1). At the same time:

* **chat**: ``--clients`` accounts stay online and send each other ``--rate``
  messages per second in all (latency measured, every one must arrive); a tenth
  of them go to the churning accounts (online or offline: stored, delivered later).
* **muc**: 20 of them sit in one room, one groupchat message every 2 s.
* **churn**: four workers log in and out for good (roster fetch, presence to a
  contact; half the connections just drop, without a closing tag).
* **non-reading clients**: one every ``--nonreader-every`` seconds logs in, stops
  reading and asks again and again for a 30 kB vCard: the server must close it
  once what it has not taken passes its ``send_buffer``.
* **flooders**: one every ``--flood-every`` seconds sends messages as fast as TCP
  lets it for 10 s: the server's read rate limit must keep the others unharmed.
* **garbage**: a connection every 2 s with bytes that are not XMPP (random, bad
  XML, an HTTP request, a DTD, an endless first stanza, nothing at all): each
  must be closed by the server (a stream error or the negotiation timeout).
* **password guessing**: from its own address, one wrong password every 3 s:
  never a success; the address is banned after ``c2s_max_auth_failures``.

The misbehaving clients connect from their own loopback addresses (127.0.x.y), so
per-address limits hit them and not the others, as on a real network.

Every ``--interval`` seconds a line is printed and appended to the output file
(JSON lines, ``bench/results/soak-<date>T<time>.jsonl``): the server's RSS and
open fds, its CPU, messages sent/received, p50/p99/max latency of the window,
and the misbehaving clients' outcomes. At the end: what was lost (must be
nothing), the RSS trend after the warm-up and over the second half (least squares,
MiB per hour), whether the server logged any error and exited cleanly. Exit
status 1 if anything that must hold did not (loss, a guess that succeeded, a
connection never closed, an error in the log, an unclean exit, memory still
growing over the second half of a run of 20 minutes or more).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import run  # noqa: E402
from loadgen import BenchError, Target  # noqa: E402

DOMAIN = run.DOMAIN
MUC = run.MUC
ROOM = f"soak@{MUC}"
BODY = loadgen.BODY
MUC_MEMBERS = 20
BIG_VCARD = 30_000           # under vcard_max_size (32768)


# ------------------------------------------------------------------ the server
class SoakServer(run.Xmppd):
    """xmppd as deployed: default modules and limits, a MUC component."""

    def start_soak(self, users: list[str], c2s_timeout: int) -> None:
        d = self.dir
        cfg = textwrap.dedent(f"""\
            interfaces = {{ "127.0.0.1" }}
            c2s_ports = {{ {self.port} }}
            data_path = "{d}/data"
            pidfile = "{d}/xmppd.pid"
            storage = "sqlite"
            control_socket = false
            log = {{ warn = "{d}/xmppd.log" }}
            c2s_require_encryption = true
            c2s_timeout = {c2s_timeout}
            modules_disabled = {{ "s2s" }}
            VirtualHost "{DOMAIN}"
                ssl = {{ certificate = "{self.certs['cert']}"; key = "{self.certs['key']}"; }}
            Component "{MUC}" "muc"
            """)
        (d / "xmppd.cfg.lua").write_text(cfg)
        asyncio.run(self._seed_users(users))
        exe = ROOT / ".venv" / "bin" / "xmppd"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "xmppd"]
        self.proc = subprocess.Popen(run.taskset(cmd + ["--config", str(d / "xmppd.cfg.lua")], self.pin),
                                     stdout=self._output("xmppd.out"), stderr=subprocess.STDOUT,
                                     preexec_fn=run._raise_nofile_child)
        run.wait_port(self.port, self.proc, what="xmppd")

    async def _seed_users(self, users: list[str]) -> None:
        from xmppd.core.credentials import make_credentials
        from xmppd.storage import open_storage
        creds = make_credentials(run.PASSWORD, run.ITERATIONS)
        st = await open_storage("sqlite", path=str(self.dir / "data" / "xmppd.sqlite"))
        try:
            kv = st.keyval(DOMAIN, "accounts")
            for u in users:
                await kv.set(u, creds)
        finally:
            await st.close()


def accounts(args) -> dict[str, list[str]]:
    return {"stable": [f"s{i}" for i in range(args.clients)],
            "churners": [f"c{i}" for i in range(args.churn_users)],
            "nonreaders": [f"n{i}" for i in range(4)],
            "flooders": [f"f{i}" for i in range(4)]}


def fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# ------------------------------------------------------------------ receiving
class Sink:
    """What one client receives: messages counted by the first letter of our ids
    (C chat, G groupchat, O to a churning account, F flood), chat latency read
    from the id (``C<monotonic ns>s<sender>``)."""

    __slots__ = ("tail", "counts", "lat", "other")

    def __init__(self, lat: list):
        self.tail = b""
        self.counts = {"C": 0, "G": 0, "O": 0, "F": 0}
        self.lat = lat
        self.other = 0

    def __call__(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        end = data.rfind(b"</message>")
        if end < 0:
            self.tail = data if len(data) < 1 << 20 else b""
            return
        end += 10
        self.tail = data[end:]
        now = time.monotonic_ns()
        find = data.find
        pos = find(b"<message", 0, end)
        while pos >= 0:
            close = find(b">", pos, end)
            i = find(b" id=", pos, close)
            if i > 0 and close > 0:
                kind = data[i + 5:i + 6].decode()
                if kind in self.counts:
                    self.counts[kind] += 1
                    if kind == "C":
                        s = find(b"s", i + 6, close)
                        if s > 0 and data[i + 6:s].isdigit():
                            self.lat.append(now - int(data[i + 6:s]))
                else:
                    self.other += 1
            pos = find(b"<message", pos + 8, end)


# ------------------------------------------------------------------ the soak
class Soak:
    def __init__(self, args, target: Target, server_pid: int):
        self.a = args
        self.t = target
        self.pid = server_pid
        self.ctx = loadgen.client_ssl_context(target.cafile)
        acc = accounts(args)
        self.stable, self.churners = acc["stable"], acc["churners"]
        self.nonreaders, self.flooders = acc["nonreaders"], acc["flooders"]
        self.clients: list[loadgen.Client] = []
        self.sinks: list[Sink] = []
        self.lat: list[int] = []
        self.n = {k: 0 for k in (
            "chat_sent", "muc_sent", "offline_sent", "flood_sent",
            "logins", "login_failures", "drops",
            "nonreaders", "nonreaders_cut", "nonreaders_not_cut",
            "flooders", "garbage", "garbage_closed", "garbage_stream_error", "garbage_not_closed",
            "guesses", "guesses_refused", "guesses_succeeded", "guesses_banned")}
        self.cut_after: list[float] = []
        self.offline_received = 0
        self.running = True
        self.tasks: list[asyncio.Task] = []

    def target(self, source: str | None = None, password: str | None = None) -> Target:
        t = Target(**{**self.t.__dict__})
        t.source = source
        if password is not None:
            t.password = password
        return t

    @staticmethod
    def source(block: int, i: int) -> str:
        return f"127.0.{block}.{1 + i % 250}"

    # -- setup
    async def setup(self) -> None:
        # stable clients spread over 127.0.1.x (connections per address are limited)
        sem = asyncio.Semaphore(20)

        async def one(i, u):
            async with sem:
                return await loadgen.connect(self.target(self.source(1, i // 50)), self.ctx, u, "soak")
        self.clients = list(await asyncio.gather(*(one(i, u) for i, u in enumerate(self.stable))))
        # contacts: stable i <-> i+1 and churner k <-> stable k (presence flows on churn)
        pairs = [(self.stable[i], self.stable[(i + 1) % len(self.stable)]) for i in range(len(self.stable))]
        by_user = dict(zip(self.stable, self.clients))
        for a, b in pairs:
            by_user[a].send(f"<presence to='{b}@{DOMAIN}' type='subscribe'/>")
            by_user[b].send(f"<presence to='{a}@{DOMAIN}' type='subscribed'/>")
        for k, u in enumerate(self.churners):
            s = self.stable[k % len(self.stable)]
            c = await loadgen.connect(self.target(self.source(4, k // 50)), self.ctx, u, "setup")
            c.send(f"<presence to='{s}@{DOMAIN}' type='subscribe'/><presence to='{s}@{DOMAIN}' type='subscribed'/>")
            by_user[s].send(f"<presence to='{u}@{DOMAIN}' type='subscribed'/>"
                            f"<presence to='{u}@{DOMAIN}' type='subscribe'/>")
            await asyncio.sleep(0.05)
            c.close()
        # the room: the first member creates it (an instant room), the others join
        for i, c in enumerate(self.clients[:MUC_MEMBERS]):
            c.send(f"<presence to='{ROOM}/m{i}'><x xmlns='http://jabber.org/protocol/muc'>"
                   f"<history maxstanzas='0'/></x></presence>")
            got = await c.read_until(b"status code='110'", b'status code="110"', b"type='error'", b'type="error"')
            if b"error" in got[-20:]:
                raise BenchError(f"MUC join failed: {got[-300:]!r}")
            if i == 0:
                c.send(f"<iq type='set' to='{ROOM}' id='cfg1'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                       f"<x xmlns='jabber:x:data' type='submit'/></query></iq>")
                await c.read_until(b"id='cfg1'", b'id="cfg1"')
        # the non-readers' large vCards (the answer they will not read)
        async def vcard(k, u):
            c = await loadgen.connect(self.target(self.source(2, k)), self.ctx, u, "setup", presence=False)
            c.send(f"<iq type='set' id='vc'><vCard xmlns='vcard-temp'><DESC>{'x' * BIG_VCARD}</DESC></vCard></iq>")
            got = await c.read_until(b"id='vc'", b'id="vc"', timeout=120)
            c.close()
            if b"type='error'" in got or b'type="error"' in got:
                raise BenchError(f"could not store the large vCard: {got[-300:]!r}")
        await asyncio.gather(*(vcard(k, u) for k, u in enumerate(self.nonreaders)))
        await asyncio.sleep(1.0)
        for c in self.clients:
            c.buf.clear()
            sink = Sink(self.lat)
            c.sink = sink
            self.sinks.append(sink)

    # -- traffic
    async def chat(self) -> None:
        tick = 0.05
        per_tick = self.a.rate * tick
        carry = 0.0
        clients, stable, churners = self.clients, self.stable, self.churners
        while self.running:
            carry += per_tick
            while carry >= 1:
                carry -= 1
                i = random.randrange(len(clients))
                c = clients[i]
                if c.lost:
                    continue
                if random.random() < 0.1 and churners:
                    to = random.choice(churners)
                    c.send(f"<message to='{to}@{DOMAIN}' type='chat' id='O{time.monotonic_ns()}s{i}'>"
                           f"<body>{BODY}</body></message>")
                    self.n["offline_sent"] += 1
                else:
                    j = random.randrange(len(clients) - 1)
                    j += j >= i
                    c.send(f"<message to='{stable[j]}@{DOMAIN}' type='chat' id='C{time.monotonic_ns()}s{i}'>"
                           f"<body>{BODY}</body></message>")
                    self.n["chat_sent"] += 1
            await asyncio.sleep(tick)

    async def muc(self) -> None:
        members = self.clients[:MUC_MEMBERS]
        while self.running:
            i = random.randrange(len(members))
            members[i].send(f"<message to='{ROOM}' type='groupchat' id='G{time.monotonic_ns()}s{i}'>"
                            f"<body>{BODY}</body></message>")
            self.n["muc_sent"] += 1
            await asyncio.sleep(2.0)

    async def churn(self, w: int) -> None:
        while self.running:
            u = random.choice(self.churners)
            c = loadgen.Client(self.target(self.source(4, w)), self.ctx)
            try:
                await c.login(u, f"churn{w}")
                self.n["logins"] += 1
                c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
                await c.read_until(b"id='r1'", b'id="r1"')
                sink = Sink([])          # the offline messages waiting for it, and new ones
                sink(bytes(c.buf))
                c.buf.clear()
                c.sink = sink
                await asyncio.sleep(random.uniform(0.5, 5.0))
                self.offline_received += sink.counts["O"]
                if random.random() < 0.5:
                    c.transport.abort()
                    self.n["drops"] += 1
                else:
                    c.close()
            except (BenchError, OSError, asyncio.TimeoutError, ConnectionError) as e:
                self.n["login_failures"] += 1
                self.note(f"churn login failed: {e}")
                if c.transport is not None:
                    c.transport.abort()
                await asyncio.sleep(1.0)
            await asyncio.sleep(random.uniform(0.1, 1.0))

    async def nonreader(self, k: int) -> None:
        u = self.nonreaders[k % len(self.nonreaders)]
        c = loadgen.Client(self.target(self.source(2, k)), self.ctx)
        try:
            await c.login(u, f"nr{k}")
        except (BenchError, OSError, asyncio.TimeoutError, ConnectionError) as e:
            self.n["login_failures"] += 1
            self.note(f"non-reader login failed: {e}")
            return
        self.n["nonreaders"] += 1
        c.transport.pause_reading()
        t0 = time.monotonic()
        limit = self.a.nonreader_patience
        n = 0
        while not c.lost and time.monotonic() - t0 < limit:
            if c.transport.get_write_buffer_size() < 65536:
                try:
                    c.send(f"<iq type='get' id='v{n}'><vCard xmlns='vcard-temp'/></iq>")
                except Exception:
                    break
                n += 1
            await asyncio.sleep(0.05)
        if c.lost:
            self.n["nonreaders_cut"] += 1
            self.cut_after.append(time.monotonic() - t0)
        else:
            self.n["nonreaders_not_cut"] += 1
            self.note(f"non-reader {u} still connected after {limit:.0f}s")
            c.transport.abort()

    async def flooder(self, k: int) -> None:
        u = self.flooders[k % len(self.flooders)]
        c = loadgen.Client(self.target(self.source(5, k)), self.ctx)
        try:
            await c.login(u, f"fl{k}")
        except (BenchError, OSError, asyncio.TimeoutError, ConnectionError) as e:
            self.n["login_failures"] += 1
            self.note(f"flooder login failed: {e}")
            return
        self.n["flooders"] += 1
        c.sink = lambda data: None
        to = self.stable[k % len(self.stable)]
        chunk = "".join(f"<message to='{to}@{DOMAIN}' type='chat' id='F{k}n{i}'><body>{BODY}</body></message>"
                        for i in range(50))
        t0 = time.monotonic()
        while not c.lost and time.monotonic() - t0 < 10:
            if c.transport.get_write_buffer_size() < 256 * 1024:
                c.send(chunk)
                self.n["flood_sent"] += 50
            await asyncio.sleep(0.01)
        c.transport.abort()

    GARBAGE = ("random", "bad-xml", "http", "dtd", "endless", "silent", "half-header")

    async def garbage(self, k: int) -> None:
        kind = self.GARBAGE[k % len(self.GARBAGE)]
        header = loadgen.STREAM_HEADER.format(domain=DOMAIN).encode()
        payload = {
            "random": header + os.urandom(300),
            "bad-xml": header + b"<message><body>x</message>",
            "http": b"GET / HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\n\r\n",
            "dtd": b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]>" + header,
            "endless": header + b"<message to='x@" + DOMAIN.encode() + b"'><body>" + b"a" * 400_000,
            "silent": b"",
            "half-header": header[:30],
        }[kind]
        self.n["garbage"] += 1
        try:
            r, w = await asyncio.open_connection(self.t.host, self.t.port,
                                                 local_addr=(self.source(3, k % 5), 0))
        except OSError as e:
            self.note(f"garbage connect failed: {e}")
            return
        got = b""
        try:
            w.write(payload)
            deadline = time.monotonic() + self.a.c2s_timeout + 30
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(r.read(65536), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if not data:
                    self.n["garbage_closed"] += 1
                    if b"<stream:error" in got + data:
                        self.n["garbage_stream_error"] += 1
                    return
                got = (got + data)[-4096:]
            self.n["garbage_not_closed"] += 1
            self.note(f"garbage connection ({kind}) still open after {self.a.c2s_timeout + 30}s")
        except (ConnectionError, OSError):
            self.n["garbage_closed"] += 1     # reset: closed all the same
        finally:
            w.transport.abort()

    async def guess(self) -> None:
        c = loadgen.Client(self.target("127.0.6.1", password="not-the-password"), self.ctx)
        self.n["guesses"] += 1
        try:
            await c.login(self.stable[0], "guess")
            self.n["guesses_succeeded"] += 1
            self.note("a wrong password logged in!")
        except BenchError as e:
            self.n["guesses_refused"] += 1
            if "temporary-auth-failure" in str(e):
                self.n["guesses_banned"] += 1
        except (OSError, asyncio.TimeoutError, ConnectionError):
            self.n["guesses_refused"] += 1
        finally:
            if c.transport is not None:
                c.transport.abort()

    async def every(self, period: float, make, first: float = 1.0) -> None:
        await asyncio.sleep(first)
        k = 0
        while self.running:
            self.spawn(make(k))
            k += 1
            await asyncio.sleep(period)

    def spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.append(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task) -> None:
        if t in self.tasks:
            self.tasks.remove(t)
        if not t.cancelled() and t.exception() is not None:
            self.note(f"task failed: {t.exception()!r}")

    notes: list[str]

    def note(self, text: str) -> None:
        self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")
        print(f"  ! {text}", flush=True)

    # -- measuring
    def received(self) -> dict:
        out = {"C": 0, "G": 0, "O": self.offline_received, "F": 0}
        for s in self.sinks:
            for k, v in s.counts.items():
                out[k] += v
        return out

    async def main(self, out) -> dict:
        self.notes = []
        print(f"setup: {sum(map(len, accounts(self.a).values()))} accounts, {len(self.stable)} online, room {ROOM}", flush=True)
        await self.setup()
        a = self.a
        loops = [self.chat(), self.muc()] + [self.churn(w) for w in range(4)] + [
            self.every(a.nonreader_every, self.nonreader, first=2.0),
            self.every(a.flood_every, self.flooder, first=5.0),
            self.every(2.0, self.garbage, first=1.0),
            self.every(3.0, lambda k: self.guess(), first=1.5)]
        main_tasks = [asyncio.ensure_future(x) for x in loops]
        samples = []
        t0 = time.monotonic()
        cpu0, wall0 = loadgen.proc_cpu_seconds(self.pid), t0
        prev = dict(self.n, **{"r" + k: v for k, v in self.received().items()})
        while time.monotonic() - t0 < a.duration:
            await asyncio.sleep(min(a.interval, max(0.1, a.duration - (time.monotonic() - t0))))
            now = time.monotonic()
            cpu = loadgen.proc_cpu_seconds(self.pid)
            lat = sorted(self.lat)
            self.lat.clear()
            rec = self.received()
            cur = dict(self.n, **{"r" + k: v for k, v in rec.items()})
            s = {"t": round(now - t0, 1), "rss_kib": loadgen.proc_rss_kib(self.pid), "fds": fds(self.pid),
                 "cpu_pct": round(100 * (cpu - cpu0) / (now - wall0), 1) if cpu is not None else None,
                 "lat_p50_ms": round(loadgen.percentile(lat, 0.5) / 1e6, 2) if lat else None,
                 "lat_p99_ms": round(loadgen.percentile(lat, 0.99) / 1e6, 2) if lat else None,
                 "lat_max_ms": round(lat[-1] / 1e6, 2) if lat else None,
                 **{k: cur[k] - prev[k] for k in cur}}
            cpu0, wall0, prev = cpu, now, cur
            samples.append(s)
            out.write(json.dumps(s) + "\n")
            out.flush()
            print(f"t={s['t']:>7.0f}s rss={s['rss_kib'] or 0:>7} KiB fds={s['fds']} cpu={s['cpu_pct']}% "
                  f"chat {s['chat_sent']}/{s['rC']} muc {s['rG']} p50={s['lat_p50_ms']} p99={s['lat_p99_ms']} "
                  f"max={s['lat_max_ms']} ms logins={s['logins']} cut={s['nonreaders_cut']} "
                  f"garbage={s['garbage_closed']} guesses={s['guesses_refused']}", flush=True)
            if self.proc_gone():
                self.note("the server exited")
                break
        self.running = False
        for t in main_tasks:
            t.cancel()
        await asyncio.gather(*main_tasks, return_exceptions=True)
        # what is still under way (a non-reader's patience, a garbage connection's
        # timeout) finishes on its own; then everything in flight has arrived
        deadline = time.monotonic() + max(a.nonreader_patience, a.c2s_timeout + 30) + 5
        while self.tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        for t in list(self.tasks):
            t.cancel()
        await asyncio.sleep(3.0)
        return self.summary(samples)

    def proc_gone(self) -> bool:
        return loadgen.proc_rss_kib(self.pid) is None

    def summary(self, samples: list[dict]) -> dict:
        rec = self.received()
        warm = [s for s in samples if s["t"] >= self.a.warmup] or samples
        rss = [(s["t"], s["rss_kib"]) for s in warm if s["rss_kib"]]
        slope = rss_slope(rss)
        # caches fill during the first part of a run; flat memory shows in the second half
        end = samples[-1]["t"] if samples else 0
        slope_half = rss_slope([(t, y) for t, y in rss if t >= end / 2])
        quarter = max(1, len(rss) // 4)
        all_p99 = [s["lat_p99_ms"] for s in samples if s["lat_p99_ms"] is not None]
        return {
            "duration_s": samples[-1]["t"] if samples else 0,
            "counts": dict(self.n),
            "received": rec,
            "chat_lost": self.n["chat_sent"] - rec["C"],
            "muc_expected": self.n["muc_sent"] * MUC_MEMBERS,
            "muc_lost": self.n["muc_sent"] * MUC_MEMBERS - rec["G"],
            "rss_kib_first_quarter": statistics.median(y for _, y in rss[:quarter]) if rss else None,
            "rss_kib_last_quarter": statistics.median(y for _, y in rss[-quarter:]) if rss else None,
            "rss_kib_max": max((y for _, y in rss), default=None),
            "rss_slope_mib_per_hour": round(slope, 2) if slope is not None else None,
            "rss_slope_second_half_mib_per_hour": (round(slope_half, 2) if slope_half is not None
                                                   else None),
            "fds_first": warm[0]["fds"] if warm else None,
            "fds_last": samples[-1]["fds"] if samples else None,
            "lat_p99_ms_median_window": statistics.median(all_p99) if all_p99 else None,
            "lat_p99_ms_worst_window": max(all_p99) if all_p99 else None,
            "nonreader_cut_after_s": (round(statistics.median(self.cut_after), 1) if self.cut_after else None),
            "notes": self.notes[-50:],
        }


def rss_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, KiB) points, in MiB per hour."""
    if len(points) < 3:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den * 3600 / 1024 if den else 0.0


FLAT_MIB_PER_HOUR = 2.0
"""Memory counts as flat when the second half of a run (of ``FLAT_AFTER_S`` or
more) grows slower than this: 2 MiB/h is under 3% of the server's size a day."""
FLAT_AFTER_S = 1200


def verdict(summary: dict, log_errors: list[str], exit_status: int | None) -> list[str]:
    """What must hold; each failure as a sentence."""
    n = summary["counts"]
    bad = []
    half = summary.get("rss_slope_second_half_mib_per_hour")
    if (summary.get("duration_s", 0) >= FLAT_AFTER_S and half is not None
            and half > FLAT_MIB_PER_HOUR):
        bad.append(f"memory grew {half} MiB/h over the second half of the run "
                   f"(flat is under {FLAT_MIB_PER_HOUR})")
    if summary["chat_lost"]:
        bad.append(f"{summary['chat_lost']} chat messages between online clients were lost")
    if summary["muc_lost"]:
        bad.append(f"{summary['muc_lost']} groupchat deliveries were lost")
    if n["guesses_succeeded"]:
        bad.append("a wrong password logged in")
    if n["garbage_not_closed"]:
        bad.append(f"{n['garbage_not_closed']} garbage connections were never closed")
    if n["nonreaders_not_cut"]:
        bad.append(f"{n['nonreaders_not_cut']} non-reading clients were never closed")
    if n["login_failures"]:
        bad.append(f"{n['login_failures']} logins of well-behaved clients failed")
    if log_errors:
        bad.append(f"the server logged {len(log_errors)} errors, first: {log_errors[0][:300]}")
    if exit_status != 0:
        bad.append(f"the server exited with status {exit_status} on SIGTERM")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3600, help="seconds of traffic (default 3600)")
    ap.add_argument("--interval", type=float, default=30, help="seconds between samples (default 30)")
    ap.add_argument("--warmup", type=float, default=300, help="seconds before the RSS trend is measured")
    ap.add_argument("--clients", type=int, default=200, help="clients online all the time (default 200)")
    ap.add_argument("--churn-users", type=int, default=100, help="accounts that log in and out")
    ap.add_argument("--rate", type=float, default=200, help="chat messages per second in all")
    ap.add_argument("--nonreader-every", type=float, default=30)
    ap.add_argument("--nonreader-patience", type=float, default=60,
                    help="seconds a non-reader may stay connected before it counts as never cut")
    ap.add_argument("--flood-every", type=float, default=60)
    ap.add_argument("--c2s-timeout", type=int, default=60, help="the server's c2s_timeout (negotiation)")
    ap.add_argument("--smoke", action="store_true", help="30 s at a small size (the test suite's run)")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the server's directory (configuration, log, database)")
    ap.add_argument("--out", help="JSON lines file (default bench/results/soak-<date>T<time>.jsonl)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.interval, args.warmup = 30, 5, 0
        args.clients, args.churn_users, args.rate = 30, 10, 50
        args.nonreader_every, args.flood_every, args.c2s_timeout = 100, 100, 5   # one of each
        args.nonreader_patience = 45
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    out_path = Path(args.out) if args.out else HERE / "results" / f"soak-{stamp}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if pin:
        os.sched_setaffinity(0, {run.CLIENT_CPU})
    loadgen.raise_nofile()
    base = Path(tempfile.mkdtemp(prefix="xmppd-soak-"))
    srv = SoakServer(base, run.make_certs(base), pin)
    srv.start_soak([u for us in accounts(args).values() for u in us], args.c2s_timeout)
    target = srv.target()
    soak = Soak(args, target, srv.proc.pid)
    status = None
    try:
        with open(out_path, "w") as out:
            out.write(json.dumps({"start": stamp, "args": vars(args), "host": socket.gethostname(),
                                  "python": sys.version.split()[0]}) + "\n")
            loop = loadgen._new_loop()
            try:
                summary = loop.run_until_complete(soak.main(out))
                loop.run_until_complete(loadgen._cleanup())
            finally:
                loop.close()
            proc = srv.proc
            srv.stop()
            status = proc.returncode
            log = base / "xmppd.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            errors = [ln for ln in text.splitlines() if " ERROR " in ln or "Traceback" in ln
                      or "CRITICAL" in ln]
            summary["server_log_errors"] = errors[:20]
            summary["server_stop_log"] = [ln for ln in text.splitlines()[-400:]
                                          if "stopp" in ln or "cancelled" in ln][-10:]
            summary["server_exit_status"] = status
            bad = verdict(summary, errors, status)
            summary["failures"] = bad
            out.write(json.dumps({"summary": summary}) + "\n")
    finally:
        srv.stop()
        if args.keep:
            print(f"server directory kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "notes"}, indent=1))
    print(f"samples and summary: {out_path}")
    if bad:
        print("FAILED:\n  " + "\n  ".join(bad))
        return 1
    print("OK: nothing lost, every misbehaving connection closed, no server error")
    return 0


if __name__ == "__main__":
    sys.exit(main())

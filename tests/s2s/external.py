"""Real Prosody and ejabberd instances for interop tests, each on loopback with its own
configuration under tmp_path, ports, domain and certificates, finding xmppd through the
test DNS server (never /etc/hosts, never port 5269):

* Prosody 0.12 (Debian) resolves with libunbound when lua-unbound is installed (a
  dependency of the Debian package): ``unbound = { resolvconf = false; forward =
  "127.0.0.1@PORT" }`` sends its SRV/A queries to the test DNS server.
* ejabberd resolves with Erlang's inet_res: an inetrc file given in ``ERL_INETRC``
  with ``{nameserver, {127,0,0,1}, PORT}`` does the same.

Both are :class:`Peer` objects, the interface the interop tests
(``test_interop.py``) are written against: start and stop in a directory of
their own on free ports with some accounts, their domain, the DNS records they
need, and their capabilities. Accounts are the one thing done differently
(:meth:`Peer._launch`): Prosody's are files in its internal storage
(``authentication = "internal_plain"``) written before it starts, ejabberd's are
registered over Erlang RPC once it runs.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


async def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{_tail(log)}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"port {port} not open after {timeout}s:\n{_tail(log)}")


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def need(program: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None)
    if path is None:
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    return path


def _encode_prosody(s: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else f"%{ord(c):02x}" for c in s)


class Peer:
    """A real XMPP server on loopback, peer of an xmppd in the interop tests.

    Subclasses name the ``program`` (what ``pytest.mark.external`` names, and the
    test id), ``caps`` (what it can be asked for: ``"muc"``, a MUC service at
    ``conference.<domain>``; ``"bidi"``, XEP-0288) and whether it needs
    ``ip_srv_targets``; they implement :meth:`_launch`. A peer is also a "srv"
    for :func:`tests.e2e.clients.slix_connect` and ``flows`` (``port``,
    ``tls_port``, ``cafile``, ``clients``)."""

    program: str
    domain: str
    caps: frozenset[str] = frozenset()
    ip_srv_targets = False
    tls_port = None   # no direct TLS c2s port

    def __init__(self, base: Path, cert: tuple[str, str], cafile: str, dns_port: int,
                 *, secure_auth: bool = True, want: tuple[str, ...] = ()):
        if not set(want) <= self.caps:
            raise ValueError(f"{self.program} has no {sorted(set(want) - self.caps)}")
        self.base = base / f"{self.program}-{self.domain}"
        self.base.mkdir(parents=True, exist_ok=True)
        self.cert, self.cafile = cert, cafile
        self.dns_port = dns_port
        self.secure_auth = secure_auth
        self.want = tuple(want)
        self.muc = f"conference.{self.domain}" if "muc" in want else None
        self.c2s_port = free_port()
        self.s2s_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.clients: list = []   # for tests.e2e.imhelpers.connect and flows

    @property
    def port(self) -> int:
        return self.c2s_port

    async def start(self, users: tuple[str, ...] = (), password: str = "secret") -> "Peer":
        """Start the server with these accounts (local parts) on it."""
        await self._launch(tuple(users), password)
        return self

    async def _launch(self, users: tuple[str, ...], password: str) -> None:
        """Start the process, with ``users`` registered: the one thing peers do differently."""
        raise NotImplementedError

    def publish(self, dns) -> None:
        """The peer's own records: SRV (for its domain and its MUC service) and A."""
        for name in (self.domain, self.muc):
            if name:
                dns.srv(f"_xmpp-server._tcp.{name}", self.domain, self.s2s_port)
        dns.a(self.domain)

    def publish_xmppd(self, dns, port: int, host: str, *names: str) -> None:
        """Records for an xmppd ``host`` listening for s2s on ``port``, as this peer
        can follow them: SRV for ``host`` and ``names`` (its components) pointing at
        ``host`` (or 127.0.0.1 with ``ip_srv_targets``), and A for ``host``."""
        target = "127.0.0.1" if self.ip_srv_targets else host
        for name in (host, *names):
            dns.srv(f"_xmpp-server._tcp.{name}", target, port)
        dns.a(host)

    async def _terminate(self, polls: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            for _ in range(polls):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                self.proc.kill()
                self.proc.wait()

    async def stop(self) -> None:
        await self._terminate(50)

    def tail(self) -> str:
        raise NotImplementedError


class Prosody(Peer):
    program = "prosody"
    domain = "prosody.example"   # not *.test: libunbound refuses the whole .test TLD
    caps = frozenset({"muc", "bidi"})

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.modules = ("s2s_bidi",) if "bidi" in self.want else ()
        self.log = self.base / "prosody.log"

    def adduser(self, user: str, password: str = "secret") -> str:
        d = self.base / "data" / _encode_prosody(self.domain) / "accounts"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{_encode_prosody(user)}.dat").write_text(f'return {{ ["password"] = "{password}"; }};\n')
        return f"{user}@{self.domain}"

    def config(self) -> str:
        muc = textwrap.dedent(f"""
            Component "{self.muc}" "muc"
                modules_enabled = {{ "muc_mam" }}
                ssl = {{ certificate = "{self.cert[0]}"; key = "{self.cert[1]}"; cafile = "{self.cafile}"; }}
        """) if self.muc else ""
        return textwrap.dedent(f"""
            run_as_root = true
            daemonize = false
            pidfile = "{self.base}/prosody.pid"
            data_path = "{self.base}/data"
            log = {{ debug = "{self.log}" }}
            interfaces = {{ "127.0.0.1" }}
            c2s_ports = {{ {self.c2s_port} }}
            s2s_ports = {{ {self.s2s_port} }}
            c2s_direct_tls_ports = {{ }}
            http_ports = {{ }}
            https_ports = {{ }}
            authentication = "internal_plain"
            storage = "internal"
            modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "presence"; "posix"; {"".join(f'"{m}"; ' for m in self.modules)}}}
            s2s_secure_auth = {"true" if self.secure_auth else "false"}
            s2s_require_encryption = true
            c2s_require_encryption = true
            unbound = {{ resolvconf = false; hoststxt = false; forward = "127.0.0.1@{self.dns_port}" }}
            ssl = {{ cafile = "{self.cafile}"; }}
            certificates = "{self.base}/certs"
            VirtualHost "{self.domain}"
                ssl = {{ certificate = "{self.cert[0]}"; key = "{self.cert[1]}"; cafile = "{self.cafile}"; }}
        """) + muc

    async def _launch(self, users: tuple[str, ...], password: str) -> None:
        # accounts are files in the internal storage: written before the start
        for user in users:
            self.adduser(user, password)
        exe = need("prosody")
        cfg = self.base / "prosody.cfg.lua"
        cfg.write_text(self.config())
        (self.base / "certs").mkdir(exist_ok=True)
        with open(self.base / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen([exe, "-F", "--config", str(cfg)], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        await wait_port(self.c2s_port, self.proc, self.log)
        await wait_port(self.s2s_port, self.proc, self.log)

    def tail(self) -> str:
        return _tail(self.log, 120)


class Ejabberd(Peer):
    """ejabberd run directly with ``erl`` as root (ejabberdctl would switch to the
    ejabberd user, who cannot read pytest's directories); accounts registered over
    Erlang RPC from a hidden node. Its s2s (p1_xmpp) resolves the SRV record with
    inet_res (the test DNS server) but the SRV target with the system's
    getaddrinfo (/etc/hosts, /etc/resolv.conf): IP-literal targets keep it off the
    system's files."""

    program = "ejabberd"
    domain = "ejabberd.example"
    caps = frozenset({"muc"})
    ip_srv_targets = True

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.node = f"ejabberd{self.c2s_port}@localhost"
        self.log = self.base / "ejabberd.log"

    def config(self) -> str:
        muc = ('  mod_muc:\n'
               f'    host: "{self.muc}"\n'
               '    access_create: all\n'
               '    access_persistent: all\n') if self.muc else ""
        return textwrap.dedent(f"""
            hosts: ["{self.domain}"]
            loglevel: debug
            certfiles: ["{self.cert[0]}", "{self.cert[1]}"]
            ca_file: "{self.cafile}"
            listen:
              - port: {self.c2s_port}
                ip: "127.0.0.1"
                module: ejabberd_c2s
                starttls_required: true
              - port: {self.s2s_port}
                ip: "127.0.0.1"
                module: ejabberd_s2s_in
            s2s_use_starttls: required
            s2s_dns_timeout: 5
            s2s_dns_retries: 1
            auth_method: internal
            auth_password_format: plain
            acl:
              local:
                user_regexp: ""
            access_rules:
              local:
                allow: local
            modules:
              mod_disco: {{}}
              mod_ping: {{}}
              mod_roster: {{}}
              mod_s2s_dialback: {{}}
        """) + muc

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(EJABBERD_CONFIG_PATH=str(self.base / "ejabberd.yml"), EJABBERD_LOG_PATH=str(self.log),
                   ERL_INETRC=str(self.base / "inetrc"), ERL_LIBS="/usr/lib/x86_64-linux-gnu",
                   ERL_CRASH_DUMP=str(self.base / "erl_crash.dump"), HOME=str(self.base),
                   EJABBERD_PID_PATH=str(self.base / "ejabberd.pid"))
        return env

    async def _launch(self, users: tuple[str, ...], password: str) -> None:
        need("ejabberdctl")
        erl = need("erl")
        (self.base / "ejabberd.yml").write_text(self.config())
        (self.base / "inetrc").write_text(
            '{lookup, ["file", "dns"]}.\n{resolv_conf, ""}.\n{hosts_file, ""}.\n'
            f'{{nameserver, {{127,0,0,1}}, {self.dns_port}}}.\n'
            '{host, {127,0,0,1}, ["localhost"]}.\n')
        # a Mnesia directory belongs to one node name: start from a fresh one
        shutil.rmtree(self.base / "spool", ignore_errors=True)
        (self.base / "spool").mkdir()
        with open(self.base / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                [erl, "-sname", self.node, "-noinput", "-setcookie", "xmppdtest",
                 "-mnesia", "dir", f'"{self.base / "spool"}"', "-s", "ejabberd"],
                stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=self.base,
                start_new_session=True)
        await wait_port(self.c2s_port, self.proc, self.base / "stdout.log", timeout=60)
        await wait_port(self.s2s_port, self.proc, self.base / "stdout.log", timeout=30)
        # accounts are registered with the running node
        for user in users:
            await self.adduser(user, password)

    async def adduser(self, user: str, password: str = "secret") -> str:
        erl = need("erl")
        expr = (f'R = rpc:call(\'{self.node}\', ejabberd_auth, try_register, '
                f'[<<"{user}">>, <<"{self.domain}">>, <<"{password}">>]), '
                'io:format("~p~n", [R]), halt().')
        proc = await asyncio.create_subprocess_exec(
            erl, "-sname", f"ctl{free_port()}@localhost", "-hidden", "-noinput", "-setcookie", "xmppdtest",
            "-eval", expr, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.env(), cwd=str(self.base))
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        if b"ok" not in out:
            raise RuntimeError(f"ejabberd register {user}: {out.decode(errors='replace')}")
        return f"{user}@{self.domain}"

    async def stop(self) -> None:
        await self._terminate(100)

    def tail(self) -> str:
        return _tail(self.log, 150) + "\n--- stdout ---\n" + _tail(self.base / "stdout.log", 40)

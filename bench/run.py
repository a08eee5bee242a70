"""Run the same load against xmppd and Prosody (and ejabberd, when installed) and compare.

    .venv/bin/python bench/run.py [--quick] [--scenarios a,b] [--servers xmppd,prosody] [--runs 3]

Every server is started afresh for every run of every scenario, from a config
generated under a temporary directory (same certificates from a trustme CA, same
users, SCRAM-SHA-1 over STARTTLS, rate limits off), pinned to CPU 0 with
``taskset``; this process and the load generator run on CPU 1. Prints one table
(median, min–max, ratios xmppd/Prosody and xmppd/ejabberd per row) and writes the raw numbers and a
description of the machine to ``bench/results/<date>T<time>-<host>.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from loadgen import Phase, Target  # noqa: E402

DOMAIN = "bench.test"
MUC = f"conference.{DOMAIN}"
UPLOAD = f"upload.{DOMAIN}"
UPLOAD_LIMIT = 200 * 1024 * 1024
PASSWORD = "secret"
ITERATIONS = 10000            # both servers' default for new accounts
SERVER_CPU = "0"
CLIENT_CPU = 1
MAM_T0 = 1_700_000_000.0     # the seeded archives' first message
MAM_SPAN = 1_000_000.0       # and the seconds they cover


# ------------------------------------------------------------------ scenarios
@dataclass
class Scenario:
    name: str
    kind: str                     # loadgen scenario
    size: int
    metrics: list                 # [(key, label, higher_is_better)]
    users: int
    kw: dict = field(default_factory=dict)
    needs: str | None = None      # "muc" or "roster": a module the server must have
    archive: bool = False         # message archiving (MAM) on: every message is written to storage
    websocket: bool = False       # the clients use XMPP over WebSocket (RFC 7395, wss://)
    upload: bool = False          # an HTTP File Upload component (XEP-0363) at UPLOAD
    seed_archive: int = 0         # items archived beforehand per user (xmppd only: its storage)


MSG_METRICS = [("msgs_per_s", "messages routed/s", True),
               ("p50_latency_ms", "p50 latency ms", False),
               ("p99_latency_ms", "p99 latency ms", False),
               ("server_us_per_msg", "server CPU µs per message", False)]


def scenarios(mode: str) -> list[Scenario]:
    """The scenarios at the size of *mode*: ``full``, ``quick`` or ``tiny`` (smoke test)."""
    full = mode == "full"
    tiny = mode == "tiny"
    after = 10000 if full else (20 if tiny else 1000)
    pairs = 3 if tiny else 100
    pairs10 = 2 if tiny else 10
    occupants = 4 if tiny else 50
    items = 20 if tiny else 500
    idle = [10, 20] if tiny else ([1000, 5000] if full else [200, 1000])
    logins = 4 if tiny else 50
    out = [
        Scenario("login", "login", logins, [("logins_per_s", "SCRAM-SHA-1 logins/s", True),
                                            ("server_ms_per_login", "server CPU ms per login", False)],
                 logins),
        Scenario("msg100", "msg", pairs, MSG_METRICS, 2 * pairs),
        Scenario("msg10", "msg", pairs10, MSG_METRICS, 2 * pairs10),
        # every message archived (MAM) for its sender and its recipient: the storage's
        # write path, with each server's default storage and durability
        Scenario("msg_archived", "msg", pairs, MSG_METRICS, 2 * pairs, archive=True),
        # msg100 with every client on a WebSocket (wss://, each server's own module)
        Scenario("msg_ws", "msg", pairs, MSG_METRICS, 2 * pairs, needs="websocket", websocket=True),
        # 20 MB files PUT one after the other over HTTPS, then one GET (XEP-0363)
        Scenario("upload20", "upload", 2 if tiny else 20,
                 [("put_mb_per_s", "upload MB/s", True),
                  ("put_server_ms_per_mb", "server CPU ms per MB uploaded", False),
                  ("get_mb_per_s", "download MB/s", True),
                  ("get_server_ms_per_mb", "server CPU ms per MB downloaded", False)],
                 1, needs="http_file_share", upload=True),
        Scenario("msg_after_logins", "msg_after_logins", pairs, [MSG_METRICS[0], MSG_METRICS[3]], max(50, 2 * pairs),
                 {"logins": after}),
        Scenario("muc50", "muc", occupants, [("delivered_per_s", "stanzas delivered/s", True),
                                             ("p50_latency_ms", "p50 latency ms", False),
                                             ("server_us_per_delivery", "server CPU µs per delivery", False)],
                 occupants, {"senders": min(5, occupants)}, needs="muc"),
        Scenario("roster500", "roster", items, [("p50_ms", "roster fetch p50 ms", False),
                                                ("changed_p50_ms", "fetch after a change p50 ms", False)], 1,
                 {"fetches": 10 if tiny else 200}, needs="roster"),
    ]
    # MAM queries (last page, last page with one correspondent, a page from a date)
    # over a large archive: 10 users with 1,000,000 archived messages each (10 million
    # rows; --quick: 100,000 each): the storage backends' indexes, xmppd only
    mam_users = 10
    per_user = 1000 if tiny else (1_000_000 if full else 100_000)
    rows = mam_users * per_user
    out.append(Scenario(f"mam{rows // 1_000_000}M" if rows >= 1_000_000 else f"mam{rows // 1000}k",
                        "mam", mam_users,
                        [("queries_per_s", "MAM queries/s", True),
                         ("p50_query_ms", "MAM query p50 ms", False),
                         ("p99_query_ms", "MAM query p99 ms", False)],
                        mam_users, {"peers": 10, "span": MAM_SPAN, "t0": MAM_T0}, needs="mam",
                        archive=True, seed_archive=per_user))
    for n in idle:
        out.append(Scenario(f"idle_mem{n}", "idle_mem", n, [("kib_per_conn", "KiB per idle connection", False)], n,
                            {"settle": 0.2 if tiny else 1.0}))
    # issue 7's scale check: this many authenticated connections held on one process,
    # and a message round trip between two of them still completes
    hold = 30 if tiny else 10000
    out.append(Scenario(f"hold{hold}", "idle_mem", hold, [("round_trip_ms", "round trip ms while held", False),
                                                       ("kib_per_conn", "KiB per held connection", False)],
                        hold, {"settle": 0.2 if tiny else 2.0}))
    return out


def phase_for(mode: str) -> Phase:
    return {"full": Phase(2.0, 10.0), "quick": Phase(1.0, 3.0), "tiny": Phase(0.5, 1.0)}[mode]


# ------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def taskset(cmd: list[str], pin: bool) -> list[str]:
    return (["taskset", "-c", SERVER_CPU] + cmd) if pin and shutil.which("taskset") else cmd


def make_certs(d: Path) -> dict:
    import trustme
    ca = trustme.CA()
    # a year, not trustme's default of year 3000: ejabberd arms an Erlang timer for the
    # certificate's expiry and crashes on one that lies beyond the VM's time range
    not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    cert = ca.issue_cert(DOMAIN, f"*.{DOMAIN}", not_after=not_after)
    out = {"cert": d / "bench.crt", "key": d / "bench.key", "ca": d / "ca.pem"}
    cert.private_key_pem.write_to_path(str(out["key"]))
    cert.cert_chain_pems[0].write_to_path(str(out["cert"]))
    ca.cert_pem.write_to_path(str(out["ca"]))
    for p in out.values():
        os.chmod(p, 0o644)
    return out


def scram_sha1_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    import hashlib
    import hmac
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha1")
    return hashlib.sha1(client_key).digest(), hmac.digest(salted, b"Server Key", "sha1")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ------------------------------------------------------------------ servers
def deb_version(package: str) -> str:
    """The installed Debian package's version, or "?"."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return out or "?"
    except Exception:
        return "?"


class Server:
    name = "?"
    proc: subprocess.Popen | None = None

    def __init__(self, workdir: Path, certs: dict, pin: bool):
        self.dir = workdir
        self.certs = certs
        self.pin = pin
        self.port = free_port()
        self.ws_port = free_port()

    @classmethod
    def available(cls) -> str | None:
        """None if this server can run here, else why not."""
        return None

    def has(self, feature: str | None) -> bool:
        return True

    def version(self) -> str:
        return "?"

    def target(self) -> Target:
        return Target(port=self.port, domain=DOMAIN, cafile=str(self.certs["ca"]), password=PASSWORD,
                      muc=MUC if self.has("muc") else None, server_pid=self.proc.pid if self.proc else None)

    def _output(self, name: str):
        self._out = open(self.dir / name, "ab")
        return self._out

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if getattr(self, "_out", None) is not None:
            self._out.close()
            self._out = None


class Xmppd(Server):
    name = "xmppd"

    def has(self, feature):
        if feature is None:
            return True
        from xmppd.app import FINDER
        return feature in FINDER.available()

    def version(self):
        import xmppd
        return xmppd.__version__

    sqlite_tune = "normal"

    def start(self, users: int, archive: bool = False, websocket: bool = False,
              upload: bool = False) -> None:
        d = self.dir
        mods = [m for m in ("disco", "ping", "version", "time", "roster") + (("mam",) if archive else ())
                + (("websocket",) if websocket else ()) if self.has(m)]
        http = (f'https_ports = {{ {self.ws_port} }}\nhttps_interfaces = {{ "127.0.0.1" }}\n'
                'http_ports = { }\n') if websocket or upload else ""
        share = (f'Component "{UPLOAD}" "http_file_share"\n'
                 f'    http_file_share_size_limit = {UPLOAD_LIMIT}\n'
                 f'    http_file_share_daily_quota = {100 * UPLOAD_LIMIT}\n') if upload else ""
        comp = f'Component "{MUC}" "muc"\n' if self.has("muc") else ""
        cfg = textwrap.dedent(f"""\
            interfaces = {{ "127.0.0.1" }}
            c2s_ports = {{ {self.port} }}
            data_path = "{d}/data"
            pidfile = "{d}/xmppd.pid"
            {self.storage_config()}
            sqlite_tune = "{self.sqlite_tune}"
            control_socket = false
            log = {{ warn = "{d}/xmppd.log" }}
            c2s_require_encryption = true
            limits = false
            modules_enabled = {{ {", ".join(f'"{m}"' for m in mods)} }}
            modules_disabled = {{ "offline" }}
            """) + http + textwrap.dedent(f"""\
            VirtualHost "{DOMAIN}"
                ssl = {{ certificate = "{self.certs['cert']}"; key = "{self.certs['key']}"; }}
            """) + comp + share
        (d / "xmppd.cfg.lua").write_text(cfg)
        asyncio.run(self._seed(users))
        exe = ROOT / ".venv" / "bin" / "xmppd"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "xmppd"]
        self.proc = subprocess.Popen(taskset(cmd + ["--config", str(d / "xmppd.cfg.lua")], self.pin),
                                     stdout=self._output("xmppd.out"), stderr=subprocess.STDOUT,
                                     preexec_fn=_raise_nofile_child)
        wait_port(self.port, self.proc, what="xmppd")

    seed_archive = 0

    def storage_config(self) -> str:
        return 'storage = "sqlite"'

    async def open_storage(self):
        from xmppd.storage import open_storage
        return await open_storage("sqlite", path=str(self.dir / "data" / "xmppd.sqlite"))

    async def _seed(self, users: int) -> None:
        """Accounts through the storage API (one PBKDF2 for all: same password and salt);
        with ``seed_archive``, that many archived messages for each of the users."""
        from xmppd.core.credentials import make_credentials
        creds = make_credentials(PASSWORD, ITERATIONS)
        st = await self.open_storage()
        try:
            kv = st.keyval(DOMAIN, "accounts")
            for i in range(users):
                await kv.set(f"u{i}", creds)
            if self.seed_archive:
                t0 = time.monotonic()
                for i in range(users):
                    await self.seed_user_archive(st, f"u{i}", self.seed_archive)
                await self.seeded(st)
                print(f"    seeded {users} x {self.seed_archive:,} archived messages in "
                      f"{time.monotonic() - t0:.0f} s ({self.name})", file=sys.stderr, flush=True)
        finally:
            await st.close()

    async def seeded(self, st) -> None:
        pass

    @staticmethod
    def archived(i: int) -> str:
        return json.dumps(f"<message xmlns='jabber:client' type='chat'><body>{BODY_SEED} {i}"
                          "</body></message>")

    async def seed_user_archive(self, st, user: str, n: int) -> None:
        step = MAM_SPAN / n
        chunk = 50_000
        for lo in range(0, n, chunk):
            rows = [(DOMAIN, "archive", user, f"{user}-{i}", MAM_T0 + i * step,
                     f"peer{i % 10}@example.org", self.archived(i)) for i in range(lo, min(n, lo + chunk))]

            async def load(conn, rows=rows):
                await conn.executemany(
                    'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            await st.transaction(load)


BODY_SEED = "Art thou not Romeo, and a Montague?"


class XmppdPostgres(Xmppd):
    """xmppd with ``storage = "sql"``: PostgreSQL (Debian's, a cluster of its own made
    with initdb, fsync on, pinned to the server's CPU with xmppd): the storage
    comparison (``make bench-storage``)."""
    name = "xmppd_pg"
    _cluster = None

    @classmethod
    def available(cls):
        from tests import pg
        return None if pg.available() else "PostgreSQL is not installed (apt-get install postgresql)"

    @classmethod
    def cluster(cls, pin: bool):
        if cls._cluster is None:
            from tests import pg
            cls._cluster = pg.cluster(fsync=True)
            if pin:   # the postmaster's CPU is inherited by every backend it forks
                pid = int((cls._cluster.data / "postmaster.pid").read_text().split()[0])
                os.sched_setaffinity(pid, {int(SERVER_CPU)})
        return cls._cluster

    def storage_config(self) -> str:
        c = self.cluster(self.pin)
        if not getattr(self, "database", None):
            self.database = c.new_database()["database"]
        return 'storage = "sql"\n' + c.sql_table(self.database)

    async def open_storage(self):
        from xmppd.storage import open_storage
        self.storage_config()
        return await open_storage("postgres", **self.cluster(self.pin).options(self.database))

    async def seed_user_archive(self, st, user: str, n: int) -> None:
        body = json.dumps("<message xmlns='jabber:client' type='chat'><body>" + BODY_SEED + " ")[:-1]
        await st.execute(
            'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
            "SELECT $1, 'archive', $2, $2 || '-' || i, $3 + i * $4, "
            "'peer' || (i % 10) || '@example.org', $5 || i || '</body></message>\"' "
            "FROM generate_series(0, $6 - 1) i", DOMAIN, user, MAM_T0, MAM_SPAN / n, body, n)

    async def seeded(self, st) -> None:
        await st.execute("VACUUM ANALYZE archive")   # what autovacuum does after a bulk load

    def stop(self) -> None:
        super().stop()
        db = getattr(self, "database", None)
        if db and self._cluster is not None:
            self._cluster.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            self.database = None


class Prosody(Server):
    name = "prosody"

    @classmethod
    def available(cls):
        if not shutil.which("prosody"):
            return "prosody is not installed (apt-get install prosody)"
        return None

    def version(self):
        return deb_version("prosody")

    def start(self, users: int, archive: bool = False, websocket: bool = False,
              upload: bool = False) -> None:
        d = self.dir
        mam = ', "mam"' if archive else ""
        ws = ', "websocket"' if websocket else ""
        # Prosody's HTTPS service with the host's certificate (Prosody 0.12's https_certificate)
        http = (f'https_ports = {{ {self.ws_port} }}\nhttps_interfaces = {{ "127.0.0.1" }}\n'
                f'http_ports = {{ }}\nhttps_certificate = "{self.certs["cert"]}"\n'
                f'https_key = "{self.certs["key"]}"\n') if websocket or upload else ""
        share = (f'Component "{UPLOAD}" "http_file_share"\n'
                 f'    http_file_share_size_limit = {UPLOAD_LIMIT}\n'
                 f'    http_file_share_daily_quota = {100 * UPLOAD_LIMIT}\n') if upload else ""
        cfg = textwrap.dedent(f"""\
            daemonize = false
            pidfile = "{d}/prosody.pid"
            data_path = "{d}/data"
            certificates = "{d}/certs"
            interfaces = {{ "127.0.0.1" }}
            c2s_ports = {{ {self.port} }}
            s2s_ports = {{ }}
            authentication = "internal_hashed"
            storage = "internal"
            c2s_require_encryption = true
            log = {{ warn = "{d}/prosody.log" }}
            network_settings = {{ nagle = false }}
            modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "version", "time"{mam}{ws} }}
            modules_disabled = {{ "s2s", "offline" }}
            muc_room_locking = false
            {http}
            VirtualHost "{DOMAIN}"
                ssl = {{ certificate = "{self.certs['cert']}"; key = "{self.certs['key']}"; }}
            Component "{MUC}" "muc"
            """) + share
        (d / "certs").mkdir(exist_ok=True)
        (d / "prosody.cfg.lua").write_text(cfg)
        self._seed(users)
        cmd = ["prosody", "--config", str(d / "prosody.cfg.lua"), "-F"]
        if os.geteuid() == 0:   # Prosody refuses to run as root: drop to its own user
            subprocess.run(["chown", "-R", "prosody:prosody", str(d)], check=True)
            os.chmod(d, 0o755)
            cmd = ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups"] + cmd
        self.proc = subprocess.Popen(taskset(cmd, self.pin), stdout=self._output("prosody.out"),
                                     stderr=subprocess.STDOUT, preexec_fn=_raise_nofile_child)
        wait_port(self.port, self.proc, what="prosody")

    def _seed(self, users: int) -> None:
        """Accounts as mod_auth_internal_hashed stores them (hex keys, salt a string)."""
        salt = "bench-salt-0123456789"
        stored, server = scram_sha1_keys(PASSWORD, salt.encode(), ITERATIONS)
        text = (f'return {{\n\t["stored_key"] = "{stored.hex()}";\n\t["iteration_count"] = {ITERATIONS};\n'
                f'\t["server_key"] = "{server.hex()}";\n\t["salt"] = "{salt}";\n}};\n')
        acc = self.dir / "data" / DOMAIN.replace(".", "%2e").replace("-", "%2d") / "accounts"
        acc.mkdir(parents=True, exist_ok=True)
        for i in range(users):
            (acc / f"u{i}.dat").write_text(text)


class Ejabberd(Server):
    """The Debian package's ejabberd, started the way ``ejabberdctl foreground`` starts it
    (same ``erl`` flags and environment), but with ``erl`` run directly: then the process
    we start *is* the ``beam.smp`` VM (``erl`` execs ``erlexec`` execs ``beam.smp``),
    whose CPU and RSS we measure, instead of ejabberdctl's bash (and, as root, ``su``)."""
    name = "ejabberd"
    CTL = "/usr/sbin/ejabberdctl"

    @classmethod
    def _ctl(cls) -> str | None:
        return shutil.which("ejabberdctl") or (cls.CTL if os.path.exists(cls.CTL) else None)

    @classmethod
    def available(cls):
        if not cls._ctl():
            return "ejabberd is not installed (apt-get install ejabberd)"
        if not cls._erl():
            return "erl (Erlang) not found"
        return None

    @classmethod
    def _ctl_setting(cls, var: str) -> str | None:
        """A variable as ejabberdctl sets it (``ERL="/usr/bin/erl"``, ``ERL_LIBS='...'``)."""
        import re
        try:
            m = re.search(rf"^{var}=['\"]?([^'\"\n]+)", Path(cls._ctl()).read_text(), re.M)
        except (OSError, TypeError):
            return None
        return m.group(1) if m else None

    @classmethod
    def _erl(cls) -> str | None:
        erl = cls._ctl_setting("ERL")
        return erl if erl and os.path.exists(erl) else shutil.which("erl")

    def version(self):
        return deb_version("ejabberd")

    def start(self, users: int, archive: bool = False, websocket: bool = False,
              upload: bool = False) -> None:
        d = self.dir
        q = json.dumps   # a double-quoted JSON string is a YAML string
        # No shaper, shaper_rules, acl or access_rules at all: the listener's shaper,
        # c2s_shaper and max_user_sessions then default to none/unlimited, and
        # max_fsm_queue (the c2s process queue limit) to no limit. backlog: ejabberd's
        # default listen backlog is 5, which drops SYNs under 50 concurrent logins
        # (xmppd listens with 1024, Prosody with 128). No mod_offline, mod_mam,
        # mod_stream_mgmt, mod_carboncopy, mod_caps, mod_register; no s2s or http listener.
        # Users are stored as SCRAM-SHA-1 (auth_scram_hash: sha) with ITERATIONS iterations,
        # seeded below (ejabberd's own default for new accounts would be 4096).
        cfg = textwrap.dedent(f"""\
            hosts: [{q(DOMAIN)}]
            loglevel: warning
            hide_sensitive_log_data: true
            certfiles: [{q(str(self.certs['cert']))}, {q(str(self.certs['key']))}]
            ca_file: {q(str(self.certs['ca']))}
            listen:
              - port: {self.port}
                ip: "127.0.0.1"
                module: ejabberd_c2s
                starttls_required: true
                shaper: none
                backlog: 1024
            auth_method: [internal]
            auth_password_format: scram
            auth_scram_hash: sha
            modules:
              mod_disco: {{}}
              mod_ping: {{}}
              mod_roster: {{}}
              mod_time: {{}}
              mod_version: {{show_os: false}}
              mod_muc:
                hosts: [{q(MUC)}]
                access_create: all
            """) + ("  mod_mam:\n    default: always\n" if archive else "")
        (d / "ejabberd.yml").write_text(cfg)
        (d / "db").mkdir(exist_ok=True)
        seeded = d / "seeded"
        # one node name per run (several runs, or the Debian service's ejabberd@localhost,
        # must not clash in epmd); distribution only on loopback
        node = f"xmppdbench{os.getpid()}p{self.port}@localhost"
        env = dict(os.environ, HOME=str(d),   # the Erlang cookie goes to $HOME
                   ERL_LIBS=self._ctl_setting("ERL_LIBS") or "/usr/lib/x86_64-linux-gnu",
                   EJABBERD_CONFIG_PATH=str(d / "ejabberd.yml"), EJABBERD_LOG_PATH=str(d / "ejabberd.log"),
                   ERL_CRASH_DUMP=str(d / "erl_crash.dump"), ERL_MAX_PORTS="65536",
                   ERL_MAX_ETS_TABLES="1400", ERL_EPMD_ADDRESS="127.0.0.1")
        env.pop("EJABBERD_PID_PATH", None)
        if os.path.exists("/etc/ejabberd/inetrc"):
            env["ERL_INETRC"] = "/etc/ejabberd/inetrc"
        cmd = [self._erl(), "-sname", node, "-noinput",
               # ejabberdctl's flags (+K is accepted and ignored by current OTP)
               "+K", "true", "+P", "250000", "-env", "ERL_CRASH_DUMP_BYTES", "0",
               # One scheduler (and one dirty CPU scheduler) on the one CPU the VM is
               # pinned to: by default the VM starts one per configured CPU, and two
               # schedulers sharing CPU 0 would only contend. All VM threads (schedulers,
               # dirty schedulers, async pool) inherit taskset's affinity.
               "+S", "1:1", "+SDcpu", "1:1",
               "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
               "-mnesia", "dir", _erl_string(str(d / "db")),
               "-eval", self._boot_and_seed(users, seeded)]
        if os.geteuid() == 0:   # like Prosody, run as the package's own user
            subprocess.run(["chown", "-R", "ejabberd:ejabberd", str(d)], check=True)
            os.chmod(d, 0o755)
            cmd = ["setpriv", "--reuid=ejabberd", "--regid=ejabberd", "--init-groups"] + cmd
        self.proc = subprocess.Popen(taskset(cmd, self.pin), cwd=d, env=env, stdout=self._output("ejabberd.out"),
                                     stderr=subprocess.STDOUT, preexec_fn=_raise_nofile_child)
        deadline = time.monotonic() + 60 + users / 100
        while not (seeded.exists() and seeded.read_text().endswith("\n")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = (d / "ejabberd.out").read_text(errors="replace")[-500:]
                self.stop()
                raise RuntimeError(f"ejabberd did not start and seed {users} users: {out}")
            time.sleep(0.05)
        status = seeded.read_text().split()
        if status[0] != "ok":
            self.stop()
            raise RuntimeError(f"ejabberd: seeding users failed: {' '.join(status)[:300]}")
        self.seed_seconds = int(status[1]) / 1000
        wait_port(self.port, self.proc, what="ejabberd")
        self.beam_pid = self._find_beam()

    @staticmethod
    def _boot_and_seed(users: int, seeded: Path) -> str:
        """An ``-eval`` expression: start ejabberd (what ``-s ejabberd`` does), then store
        the users through ejabberd's own auth API as ready-made SCRAM records (keys
        computed here once: same password and salt for all), so seeding costs no PBKDF2
        and the iteration count is ours (ejabberd_auth's API, not raw mnesia writes: those
        only halve the time). 1,000 users take ~1 s, 10,000 ~5 s (a mnesia transaction
        and a dets write each: passwd is a disc_only_copies table). It writes
        ``ok <ms>`` or the error to *seeded*; on an error the VM halts."""
        import base64
        salt = b"bench-salt-0123456789"
        stored, server = scram_sha1_keys(PASSWORD, salt, ITERATIONS)
        b64 = [base64.b64encode(x).decode() for x in (stored, server, salt)]
        scram = f'{{scram, <<"{b64[0]}">>, <<"{b64[1]}">>, <<"{b64[2]}">>, sha, {ITERATIONS}}}'
        out = _erl_string(str(seeded))
        return (
            "Out = " + out + ", "
            "try "
            "  {ok, _} = ejabberd:start(), "
            "  T0 = erlang:monotonic_time(millisecond), "
            f"  Scram = {scram}, "
            "  lists:foreach(fun(I) -> "
            "      ok = ejabberd_auth:try_register(<<\"u\", (integer_to_binary(I))/binary>>, "
            f"                                       <<\"{DOMAIN}\">>, Scram) "
            f"    end, lists:seq(0, {users - 1})), "
            "  ok = file:write_file(Out, io_lib:format(\"ok ~b~n\", "
            "                        [erlang:monotonic_time(millisecond) - T0])) "
            "catch C:E:S -> "
            "  file:write_file(Out, io_lib:format(\"error ~p:~p ~p~n\", [C, E, S])), "
            "  erlang:halt(3) "
            "end.")

    def _find_beam(self) -> int:
        """The beam.smp process: ours, or (should a wrapper not exec) its descendant."""
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop(0)
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "beam.smp":
                    return pid
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            todo += [int(k) for k in kids]
        raise RuntimeError(f"ejabberd: no beam.smp process under pid {self.proc.pid}")

    def has(self, feature):
        return feature in (None, "muc", "roster")

    def target(self) -> Target:
        t = super().target()
        t.server_pid = getattr(self, "beam_pid", None) or t.server_pid
        return t

    def stop(self) -> None:
        """SIGTERM to the VM (a clean init:stop()), SIGKILL after 10 s; its port helper
        (erl_child_setup) exits with it. epmd, shared by every node, is left running."""
        beam = getattr(self, "beam_pid", None)
        if beam and self.proc is not None and beam != self.proc.pid:
            try:
                os.kill(beam, signal.SIGTERM)
            except OSError:
                pass
        super().stop()


def _erl_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _raise_nofile_child():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class XmppdSafe(Xmppd):
    """xmppd with ``sqlite_tune = "safe"`` (an fsync per commit): the cost of
    durability against power loss (``--servers xmppd,xmppd_safe --scenarios msg_archived``)."""
    name = "xmppd_safe"
    sqlite_tune = "safe"


SERVERS = {"xmppd": Xmppd, "prosody": Prosody, "ejabberd": Ejabberd, "xmppd_safe": XmppdSafe,
           "xmppd_pg": XmppdPostgres}


def stop_system_prosody() -> None:
    """The Debian service instance must not share the CPU (or ports) with the benchmark.
    Only the service's own pid is stopped: other Prosody processes may be other people's."""
    if not shutil.which("prosody"):
        return
    subprocess.run(["service", "prosody", "stop"], capture_output=True, timeout=60)
    pidfile = Path("/run/prosody/prosody.pid")
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def stop_system_ejabberd() -> None:
    """The same for the Debian ejabberd service (node ejabberd@localhost): only its own pid."""
    if Ejabberd.available():
        return
    try:
        subprocess.run(["service", "ejabberd", "stop"], capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        pid = int(Path("/run/ejabberd/ejabberd.pid").read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------ machine
def machine() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(),
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": load,
            "mem_total_kib": _meminfo("MemTotal")}


def _meminfo(key: str):
    try:
        for line in open("/proc/meminfo"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None


# ------------------------------------------------------------------ running
# log lines that are no news: Prosody's shutdown notice; ejabberd's start-up chatter, its
# advice to load mod_mam along with mod_muc, pkix's complaint about the test CA's certificate
# (unknown_critical_extension: TLS works) and its note that more than 1,000 users (its
# default cache_size, left as it is) overflow its auth and roster caches
QUIET_LOG = ("Received SIG", "[info]", "[notice]", "is recommended for module", "Invalid certificate in",
             "Shrinking cache")


def run_one(server_cls, sc: Scenario, mode: str, certs: dict, base: Path, pin: bool,
            procs: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{server_cls.name}-{sc.name}-", dir=base))
    srv = server_cls(workdir, certs, pin)
    if not srv.has(sc.needs):
        return {"skipped": f"{sc.needs} module not available in {srv.name}"}
    try:
        if sc.seed_archive and not isinstance(srv, Xmppd):
            return {"skipped": "a seeded archive is written through xmppd's storage"}
        if sc.seed_archive:
            srv.seed_archive = sc.seed_archive
        srv.start(sc.users, archive=sc.archive, websocket=sc.websocket, upload=sc.upload)
        kw = dict(sc.kw, phase=phase_for(mode))
        p = procs if sc.kind in ("login", "msg", "msg_after_logins") else 1
        target = srv.target()
        if sc.websocket:
            target.ws_port = srv.ws_port
        if sc.upload:
            target.upload = UPLOAD
        return loadgen.run_scenario(sc.kind, target, sc.size, procs=p, **kw)
    finally:
        srv.stop()
        log = workdir / f"{srv.name}.log"
        if log.exists() and log.stat().st_size:
            tail = [ln for ln in log.read_text(errors="replace").strip().splitlines()
                    if not any(q in ln for q in QUIET_LOG)][-3:]
            if tail:
                print(f"    ({srv.name} logged warnings; last: {' | '.join(tail)[:300]})", file=sys.stderr)


def fmt(v: float) -> str:
    if v != v:
        return "nan"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def table(results: dict, servers: list[str], scs: list[Scenario]) -> str:
    head = ["scenario"] + [f"{s} median (min–max)" for s in servers]
    ratios = [(s, label) for s, label in (("prosody", "Prosody"), ("ejabberd", "ejabberd"),
                                          ("xmppd_pg", "xmppd_pg"))
              if "xmppd" in servers and s in servers]
    head += [f"xmppd/{label}" for _s, label in ratios]
    head.append("loadgen CPU% max")
    rows = [head]
    for sc in scs:
        for key, label, higher in sc.metrics:
            row = [f"{sc.name}: {label} {'↑' if higher else '↓'}"]
            meds = {}
            cpu = []
            for s in servers:
                runs = results.get(sc.name, {}).get(s, [])
                skipped = next((r["skipped"] for r in runs if "skipped" in r), None)
                errors = [r["error"] for r in runs if "error" in r]
                vals = [r[key] for r in runs if key in r]
                cpu += [r["client_cpu_pct"] for r in runs if "client_cpu_pct" in r]
                if vals:
                    m = summarise(vals)
                    meds[s] = m["median"]
                    row.append(f"{fmt(m['median'])} ({fmt(m['min'])}–{fmt(m['max'])})"
                               + (f" [{len(errors)} failed]" if errors else ""))
                elif skipped:
                    row.append(f"skipped: {skipped}")
                elif errors:
                    row.append(f"failed: {errors[0][:60]}")
                else:
                    row.append("-")
            for s, _label in ratios:
                if meds.get(s) and "xmppd" in meds:
                    row.append(f"{meds['xmppd'] / meds[s]:.2f}")
                else:
                    row.append("-")
            row.append(f"{max(cpu):.0f}" if cpu else "-")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes and 3 s windows")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scenarios", help="comma-separated, or \"storage\" (msg100, muc50 and the "
                    "MAM queries over a large archive) (default: all): "
                    + ",".join(s.name for s in scenarios("full")))
    ap.add_argument("--servers", default="xmppd,prosody,ejabberd",
                    help="comma-separated (default: xmppd,prosody,ejabberd; missing ones are skipped)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--procs", type=int, default=1, help="load generator processes (all on CPU 1) for the login and msg scenarios")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to CPUs (taskset)")
    ap.add_argument("--out", help="JSON results file (default: bench/results/<date>T<time>-<host>.json)")
    args = ap.parse_args(argv)
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    all_sc = scenarios(mode)
    if args.scenarios:
        want = args.scenarios.split(",")
        if want == ["storage"]:   # make bench-storage: what the storage backends change
            want = ["msg100", "muc50"] + [s.name for s in all_sc if s.kind == "mam"]
        unknown = [w for w in want if w not in {s.name for s in all_sc}]
        if unknown:
            ap.error(f"unknown scenario(s): {', '.join(unknown)}")
        all_sc = [s for s in all_sc if s.name in want]
    servers = []
    for name in args.servers.split(","):
        cls = SERVERS.get(name)
        if cls is None:
            if name != "ejabberd":   # the optional third column: quietly absent
                ap.error(f"unknown server {name!r} (known: {', '.join(SERVERS)})")
            continue
        why = cls.available()
        if why:
            print(f"note: {name} skipped: {why}", file=sys.stderr)
            continue
        servers.append(name)
    if pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    loadgen.raise_nofile()
    if "prosody" in servers:
        stop_system_prosody()
    if "ejabberd" in servers:
        stop_system_ejabberd()
    info = {"machine": machine(), "mode": mode, "runs": args.runs, "pinned": pin,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "versions": {s: SERVERS[s](Path("/tmp"), {}, False).version() for s in servers},
            "scenarios": {}}
    results: dict = info["scenarios"]
    with tempfile.TemporaryDirectory(prefix="xmppd-bench-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        certs = make_certs(base)
        for sc in all_sc:
            results[sc.name] = {s: [] for s in servers}
            skipped: set = set()
            for run in range(args.runs):
                for s in servers:   # interleaved, so a noisy minute hits both servers
                    if s in skipped:
                        continue
                    t0 = time.monotonic()
                    try:
                        r = run_one(SERVERS[s], sc, mode, certs, base, pin, args.procs)
                    except Exception as e:
                        r = {"error": f"{type(e).__name__}: {e}"}
                    results[sc.name][s].append(r)
                    shown = {k: round(v, 2) for k, v in r.items() if isinstance(v, float)}
                    print(f"  {sc.name} run {run + 1}/{args.runs} {s}: "
                          f"{r.get('error') or r.get('skipped') or shown} ({time.monotonic() - t0:.0f}s)",
                          file=sys.stderr, flush=True)
                    if "skipped" in r:
                        skipped.add(s)
    out = table(results, servers, all_sc)
    print(out)
    info["table"] = out
    info["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    path = Path(args.out) if args.out else (
        HERE / "results" / f"{datetime.datetime.now().strftime('%Y-%m-%dT%H%M')}-{socket.gethostname()}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=1, default=str) + "\n")
    print(f"results: {path}", file=sys.stderr)
    failed = any("error" in r for sc in results.values() for rs in sc.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

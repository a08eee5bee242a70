"""A real PostgreSQL for the tests: Debian's ``postgresql`` binaries, a cluster made
with ``initdb`` in a temporary directory, listening on a free port of 127.0.0.1 and
on a Unix socket in that directory, run as an unprivileged user (``nobody`` when
the tests run as root: PostgreSQL refuses to run as root).

One cluster per test process, started on first use and stopped at exit
(:func:`cluster`); each test gets a database of its own (:meth:`Cluster.new_database`)
owned by a user with a password, so the server is reached exactly as an admin's
``sql = { ... }`` reaches theirs (TCP, password authentication).
"""
from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "xmppd"
PASSWORD = "xmppd-test-password"
_counter = itertools.count(1)


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def available() -> bool:
    return bindir() is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, fsync: bool = False) -> None:
        self.bin = bindir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="xmppd-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = pwd.getpwnam("nobody")
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)
        self.dir.chmod(0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "scram-sha-256",
                  "--pwfile", str(pwfile), "-E", "UTF8", "--locale", "C.UTF-8")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "max_connections = 200\n")
            if fsync:   # as installed (the benchmark): durable, 128 MB of buffers
                f.write("shared_buffers = 128MB\n")
            else:       # the tests kill xmppd and restart PostgreSQL, never the machine
                f.write("fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\n")
        self.start()
        self.psql("CREATE ROLE xmppd LOGIN PASSWORD '%s' CREATEDB" % PASSWORD)

    # ------------------------------------------------------------------ process
    def _run(self, prog: str, *args: str, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess:
        kw = {}
        if self.run_as:
            kw = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = dict(os.environ, PGPASSWORD=PASSWORD, LC_ALL="C.UTF-8")
        return subprocess.run([str(self.bin / prog), *args], cwd=self.dir, env=env,
                              capture_output=True, text=True, check=check, timeout=timeout,
                              **kw)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
                  "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = self._run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
                      "-p", str(self.port), "-U", "postgres", "-d", database, "-At", "-c", sql)
        return r.stdout

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ use
    def new_database(self) -> dict:
        """A fresh database; the ``open_storage("postgres", **...)`` options to reach it."""
        name = f"xmppd_test_{os.getpid()}_{next(_counter)}"
        self.psql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.options(name)

    def options(self, database: str) -> dict:
        return {"database": database, "host": self.host, "port": self.port,
                "username": USER, "password": PASSWORD}

    def sql_table(self, database: str) -> str:
        """The configuration's ``sql = { ... }`` for that database."""
        return (f'sql = {{ driver = "PostgreSQL"; database = "{database}"; '
                f'host = "{self.host}"; port = {self.port}; username = "{USER}"; '
                f'password = "{PASSWORD}" }}')


_cluster: Cluster | None = None


def cluster(fsync: bool = False) -> Cluster:
    """The process's cluster, started on first use (a few seconds), stopped at exit
    (``fsync``: PostgreSQL's default durability, for the benchmark; the tests'
    cluster skips fsyncs)."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster(fsync)
        atexit.register(_cluster.destroy)
    return _cluster


def wait_until(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)

"""CLI fixtures: the real ``xmppctl`` and ``xmppd`` programs, run as subprocesses
against a configuration tree in ``tmp_path`` laid out like /etc/xmppd::

    tmp_path/xmppd.cfg.lua                 data_path = "var", Include "conf.d/*.cfg.lua"
    tmp_path/conf.avail/xmppd.test.cfg.lua VirtualHost "xmppd.test" (trustme certificate)
    tmp_path/conf.d/xmppd.test.cfg.lua  -> ../conf.avail/xmppd.test.cfg.lua
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

DOMAIN = "xmppd.test"
BIN = Path(sys.executable).parent


def program(name: str) -> list[str]:
    """The installed console script, else the module (same code)."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", {"xmppctl": "xmppd.cli.ctl", "xmppd": "xmppd.cli.daemon"}[name]]


@pytest.fixture(scope="session")
def ca():
    return trustme.CA()


@pytest.fixture(scope="session")
def cert_files(ca, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-certs")
    cert = ca.issue_cert(DOMAIN, f"*.{DOMAIN}")
    cert.private_key_pem.write_to_path(str(d / f"{DOMAIN}.key"))
    cert.cert_chain_pems[0].write_to_path(str(d / f"{DOMAIN}.crt"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return {"crt": str(d / f"{DOMAIN}.crt"), "key": str(d / f"{DOMAIN}.key"),
            "ca": str(d / "ca.pem")}


def free_port() -> int:
    """A port nobody listens on now (the config refuses port 0, so tests pick one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tree(root: Path, cert_files: dict | None, *, c2s_port: int | None = None,
               tls_port: int | None = None, extra: str = "", ssl: bool = True) -> Path:
    """A main config plus one enabled domain; returns the main file."""
    c2s_port = c2s_port or free_port()
    tls_port = tls_port or free_port()
    (root / "conf.avail").mkdir(exist_ok=True)
    (root / "conf.d").mkdir(exist_ok=True)
    main = root / "xmppd.cfg.lua"
    main.write_text(textwrap.dedent(f"""\
        admins = {{ "admin@{DOMAIN}" }}
        interfaces = {{ "127.0.0.1" }}
        c2s_ports = {{ {c2s_port} }}
        c2s_direct_tls_ports = {{ {tls_port} }}; s2s_ports = {{ {free_port()} }}
        data_path = "var"
        storage = "sqlite"
        log = {{ info = "*console" }}
        """) + extra + '\nInclude "conf.d/*.cfg.lua"\n')
    host = f'VirtualHost "{DOMAIN}"\n'
    if ssl and cert_files:
        host += f'    ssl = {{ certificate = "{cert_files["crt"]}"; key = "{cert_files["key"]}"; }}\n'
    (root / "conf.avail" / f"{DOMAIN}.cfg.lua").write_text(host)
    link = root / "conf.d" / f"{DOMAIN}.cfg.lua"
    if not link.is_symlink():
        os.symlink(f"../conf.avail/{DOMAIN}.cfg.lua", link)
    return main


@pytest.fixture
def cfg(tmp_path, cert_files) -> Path:
    return write_tree(tmp_path, cert_files)


def run_ctl(*args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(program("xmppctl") + list(args), input=input, capture_output=True,
                          text=True, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def run_ctl_here(*args: str) -> subprocess.CompletedProcess:
    """xmppctl run in this process, its output captured: what ``run_ctl`` does without
    the second or so a new interpreter takes to import every module (for tests that
    run it many times). Not for commands that read standard input."""
    import contextlib
    import io
    from xmppd.cli import ctl as xmppctl
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = xmppctl.main(list(args))
        except SystemExit as exc:   # argparse's usage errors (status 2), --help
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


async def ctl_async(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """xmppctl from a test's event loop, in a thread: in this process (``run_ctl_here``)
    unless it reads standard input, then the real program (``run_ctl``). Tests that run
    it many times save the start-up of an interpreter each time; the commands given
    ``input`` (``adduser --password-stdin``) still run the installed program."""
    import asyncio
    if input is not None:
        return await asyncio.to_thread(run_ctl, *args, input=input)
    return await asyncio.to_thread(run_ctl_here, *args)


@pytest.fixture
def ctl(cfg):
    """``ctl("adduser", "a@xmppd.test", input="pw\\n")`` with ``--config`` set: the
    real program when given ``input`` (standard input), else in-process (``run_ctl_here``)."""
    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        if input is None:
            return run_ctl_here("--config", str(cfg), *args)
        return run_ctl("--config", str(cfg), *args, input=input)
    return run


# -- the daemon -----------------------------------------------------------------

READY = re.compile(r"c2s on port\(s\) (\d+)(?:; direct TLS on port\(s\) (\d+))?")


@dataclass
class Daemon:
    proc: subprocess.Popen
    log: Path
    port: int = 0
    tls_port: int | None = None
    cafile: str = ""
    domain: str = DOMAIN

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> "Daemon":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = READY.search(self.output())
            if m:
                self.port = int(m.group(1))
                self.tls_port = int(m.group(2)) if m.group(2) else None
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"xmppd exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"xmppd did not report its ports in {timeout}s:\n{self.output()}")

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def start_daemon(tmp_path, cert_files):
    """``start_daemon(cfg)`` runs ``xmppd --config CFG`` (behind the ``wrap`` command,
    if given); every daemon started is killed at the end of the test."""
    started: list[Daemon] = []

    def start(config: Path, *extra: str, wrap: list[str] | None = None) -> Daemon:
        log = tmp_path / f"xmppd-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen((wrap or []) + program("xmppd") + ["--config", str(config), *extra],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        d = Daemon(proc, log, cafile=cert_files["ca"])
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()

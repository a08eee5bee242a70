"""contrib/logrotate/xmppd, run by the real ``logrotate`` against a running daemon:
the log is moved away (and compressed a rotation later) and xmppd goes on writing
a new one without a signal (its WatchedFileHandler reopens the moved file)."""
from __future__ import annotations

import grp
import gzip
import os
import pwd
import shutil
import subprocess
import time

import pytest

from .conftest import DOMAIN, run_ctl, write_tree
from .test_daemon import REPO, login

pytestmark = pytest.mark.external("logrotate")

CONF = REPO / "contrib" / "logrotate" / "xmppd"


def local_conf(tmp_path, logdir) -> str:
    """The shipped file, for this directory and this test's user instead of xmppd."""
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    text = CONF.read_text()
    assert text.count("/var/log/xmppd/") == 2 and text.count("xmppd xmppd") == 2
    text = text.replace("/var/log/xmppd/", f"{logdir}/").replace("xmppd xmppd", f"{user} {group}")
    path = tmp_path / "logrotate.conf"
    path.write_text(text)
    return str(path)


def rotate(tmp_path, conf: str) -> None:
    r = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "logrotate.state"), conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def wait_for(path, text: str) -> str:
    for _ in range(200):
        got = path.read_text() if path.exists() else ""
        if text in got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}:\n{got}")


async def test_xmppd_writes_on_after_logrotate(tmp_path, cert_files, start_daemon):
    if not shutil.which("logrotate"):
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    from tests.e2e.clients import slix_close
    logdir = tmp_path / "log"
    log = logdir / "xmppd.log"
    cfg = write_tree(tmp_path, cert_files, extra=f'log = {{ info = "{log}"; "*console" }}\n')
    for user in ("alice", "bob", "carol"):
        assert run_ctl("--config", str(cfg), "adduser", f"{user}@{DOMAIN}", "--password-stdin",
                       input="pw\n").returncode == 0
    conf = local_conf(tmp_path, logdir)
    r = subprocess.run(["logrotate", "--debug", "--state", str(tmp_path / "debug.state"), conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "error" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr

    d = start_daemon(cfg).wait_ready()
    c = await login(d, f"alice@{DOMAIN}", "pw")
    await slix_close(c)
    wait_for(log, "authenticated as alice@")

    rotate(tmp_path, conf)
    assert "authenticated as alice@" in (logdir / "xmppd.log.1").read_text()
    c = await login(d, f"bob@{DOMAIN}", "pw")
    await slix_close(c)
    now = wait_for(log, "authenticated as bob@")
    assert "alice@" not in now

    rotate(tmp_path, conf)     # a rotation later, the older one is compressed
    with gzip.open(logdir / "xmppd.log.2.gz", "rt") as f:
        assert "authenticated as alice@" in f.read()
    assert "authenticated as bob@" in (logdir / "xmppd.log.1").read_text()
    c = await login(d, f"carol@{DOMAIN}", "pw")
    await slix_close(c)
    now = wait_for(log, "authenticated as carol@")
    assert "bob@" not in now and d.proc.poll() is None

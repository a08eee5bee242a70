"""The benchmark harness at a tiny size, so it keeps working: every scenario of
``bench/run.py`` against a real xmppd subprocess. No timing assertions."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import run  # noqa: E402

TINY = {sc.name: sc for sc in run.scenarios("tiny")}


@pytest.fixture(scope="module")
def shared_dir():
    """A directory other users can read: Prosody, started as root, drops to its own user."""
    d = Path(tempfile.mkdtemp(prefix="xmppd-bench-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def certs(shared_dir):
    return run.make_certs(shared_dir)


@pytest.mark.parametrize("name", list(TINY))
def test_scenario_against_xmppd(name, certs, tmp_path):
    sc = TINY[name]
    r = run.run_one(run.Xmppd, sc, "tiny", certs, tmp_path, pin=False, procs=1)
    if "skipped" in r:
        assert sc.needs and sc.needs in r["skipped"]
        pytest.skip(r["skipped"])
    for key, _label, _higher in sc.metrics:
        assert r[key] == r[key], f"{key} is NaN: {r}"   # a number, measured
    assert r["client_cpu_pct"] >= 0
    assert "server_cpu_pct" in r
    if sc.kind == "msg":
        assert r["messages"] > 0
    if sc.kind == "roster":
        assert r["items"] >= sc.size


def test_msg_split_over_two_processes(certs, tmp_path):
    sc = TINY["msg100"]
    r = run.run_one(run.Xmppd, sc, "tiny", certs, tmp_path, pin=False, procs=2)
    assert r["procs"] == 2 and r["messages"] > 0 and r["p99_latency_ms"] >= r["p50_latency_ms"]


def test_table_has_one_row_per_metric_and_ratio():
    scs = [TINY["login"], TINY["msg10"]]
    results = {"login": {"xmppd": [{"logins_per_s": 400.0, "client_cpu_pct": 50.0}] * 3,
                         "prosody": [{"logins_per_s": 200.0, "client_cpu_pct": 40.0}] * 3},
               "msg10": {"xmppd": [{"error": "BenchError: boom"}], "prosody": []}}
    out = run.table(results, ["xmppd", "prosody"], scs)
    lines = out.splitlines()
    assert len(lines) == 2 + len(TINY["login"].metrics) + len(TINY["msg10"].metrics)
    cells = [c.strip() for c in lines[2].split("|")]
    assert "2.00" in cells and "400 (400–400)" in cells
    assert "failed: BenchError: boom" in lines[2 + len(TINY["login"].metrics)]


def test_counter_reads_latency_and_sender_across_chunks():
    c = loadgen.Counter(me=3)
    c.recording = True
    import time
    now = time.monotonic_ns()
    msg = f"<message from='a@b/c' id=\"L{now}s3\" type='chat'><body>x</body></message>".encode()
    c(msg[:20])
    c(msg[20:] + msg.replace(b"s3\"", b"s4\""))
    assert c.count == 2 and c.own == 1 and len(c.lat) == 2
    # a server's own id that happens to start with L (a stanza-id) is not ours
    c(b"<message from='r@muc/n' id=\"L%ds3\" type='groupchat'><body>x</body>"
      b"<stanza-id xmlns='urn:xmpp:sid:0' id='LbIPZO/lPMG6COxgAL1X6c2xJmitMzE=' by='r@muc'/></message>" % now)
    assert c.count == 3 and c.own == 2 and len(c.lat) == 3


@pytest.mark.external("prosody")
@pytest.mark.skipif(not shutil.which("prosody"), reason="prosody is not installed")
@pytest.mark.parametrize("name", ["login", "msg10"])
def test_scenario_against_prosody(name, certs, shared_dir):
    sc = TINY[name]
    r = run.run_one(run.Prosody, sc, "tiny", certs, shared_dir, pin=False, procs=1)
    assert r[sc.metrics[0][0]] > 0


@pytest.mark.external("ejabberd")
@pytest.mark.skipif(run.Ejabberd.available() is not None, reason="ejabberd is not installed")
@pytest.mark.parametrize("name", ["login", "msg10"])
def test_scenario_against_ejabberd(name, certs, shared_dir):
    sc = TINY[name]
    r = run.run_one(run.Ejabberd, sc, "tiny", certs, shared_dir, pin=False, procs=1)
    assert r[sc.metrics[0][0]] > 0
    assert r["server_cpu_pct"] > 0   # read from the beam.smp process itself


def test_table_has_a_ratio_per_other_server():
    scs = [TINY["login"]]
    results = {"login": {"xmppd": [{"logins_per_s": 400.0}], "prosody": [{"logins_per_s": 200.0}],
                         "ejabberd": [{"logins_per_s": 100.0}]}}
    lines = run.table(results, ["xmppd", "prosody", "ejabberd"], scs).splitlines()
    head = [c.strip() for c in lines[0].split("|")]
    cells = [c.strip() for c in lines[2].split("|")]
    assert cells[head.index("xmppd/Prosody")] == "2.00"
    assert cells[head.index("xmppd/ejabberd")] == "4.00"
    assert "xmppd/ejabberd" not in run.table(results, ["xmppd", "prosody"], scs)

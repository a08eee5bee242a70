"""bench/soak.py at its smoke size (30 s), so it keeps working and its checks keep
biting: a real xmppd subprocess under chat, MUC, churn, a non-reading client, a
flooder, garbage connections and password guessing. The long run is `make soak`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import soak  # noqa: E402


@pytest.mark.timeout(240)
def test_soak_smoke(tmp_path):
    out = tmp_path / "soak.jsonl"
    proc = subprocess.run([sys.executable, str(BENCH / "soak.py"), "--smoke", "--no-pin", "--out", str(out)],
                          capture_output=True, text=True, timeout=230)
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert "args" in lines[0] and "summary" in lines[-1], proc.stdout[-3000:] + proc.stderr[-3000:]
    samples, s = lines[1:-1], lines[-1]["summary"]
    assert proc.returncode == 0, (s["failures"], proc.stdout[-3000:], proc.stderr[-3000:])
    # one every 5 s for 30 s (a seventh when the last sleep ends late on a busy machine)
    assert len(samples) in (6, 7) and all(x["rss_kib"] and x["fds"] for x in samples)
    n = s["counts"]
    # everything between online clients arrived, and there was some of it
    assert n["chat_sent"] > 500 and s["chat_lost"] == 0 and s["received"]["C"] == n["chat_sent"]
    assert n["muc_sent"] >= 10 and s["muc_lost"] == 0
    assert n["logins"] >= 10 and n["login_failures"] == 0
    # the misbehaving clients were all dealt with
    assert n["nonreaders"] == n["nonreaders_cut"] == 1
    assert n["flooders"] == 1 and 0 < s["received"]["F"] < n["flood_sent"]    # read at the rate limit
    assert n["garbage"] >= 10 and n["garbage_closed"] == n["garbage"]
    assert n["garbage_stream_error"] >= 5
    assert n["guesses"] >= 5 and n["guesses_refused"] == n["guesses"]
    assert s["server_log_errors"] == [] and s["server_exit_status"] == 0


def test_soak_verdict_names_what_failed():
    ok = {"chat_lost": 0, "muc_lost": 0,
          "counts": {"guesses_succeeded": 0, "garbage_not_closed": 0, "nonreaders_not_cut": 0,
                     "login_failures": 0}}
    assert soak.verdict(ok, [], 0) == []
    bad = dict(ok, chat_lost=3, counts=dict(ok["counts"], nonreaders_not_cut=1))
    got = soak.verdict(bad, ["2026-12-05 ERROR xmppd: boom"], -9)
    assert len(got) == 4
    assert any("3 chat messages" in g for g in got) and any("never closed" in g for g in got)
    assert any("boom" in g for g in got) and any("status -9" in g for g in got)


def test_soak_memory_must_be_flat_in_the_second_half_of_a_long_run():
    ok = {"chat_lost": 0, "muc_lost": 0,
          "counts": {"guesses_succeeded": 0, "garbage_not_closed": 0, "nonreaders_not_cut": 0,
                     "login_failures": 0}}
    # caches filling early do not count; growth late in a long run does
    assert soak.verdict(dict(ok, duration_s=3600, rss_slope_second_half_mib_per_hour=0.3), [], 0) == []
    got = soak.verdict(dict(ok, duration_s=3600, rss_slope_second_half_mib_per_hour=9.0), [], 0)
    assert len(got) == 1 and "9.0 MiB/h" in got[0]
    # a smoke run is too short to judge
    assert soak.verdict(dict(ok, duration_s=30, rss_slope_second_half_mib_per_hour=50.0), [], 0) == []
    # the slope itself: 1 KiB per second is 3600/1024 MiB per hour
    assert abs(soak.rss_slope([(t, 1000 + t) for t in range(0, 100, 10)]) - 3600 / 1024) < 1e-9

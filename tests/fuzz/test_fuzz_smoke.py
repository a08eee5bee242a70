"""Each fuzz target (fuzz/) runs for a few seconds over its seed corpus: the targets
keep working as the code changes, and the seeds (which include every past finding)
still pass. Long runs are `make fuzz`."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"stream_parser": "stream", "config_parser": "config", "sasl": "sasl",
           "jid": "jid", "stanzas": "stanzas"}


def test_every_target_is_smoke_tested():
    assert {p.stem for p in (ROOT / "fuzz").glob("*.py")} - {"_common"} == set(TARGETS)
    for corpus in TARGETS.values():
        assert any((ROOT / "fuzz" / "corpus" / corpus).iterdir()), corpus


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target_runs(target, tmp_path):
    work = tmp_path / "corpus"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / f"{target}.py"), str(work),
         str(ROOT / "fuzz" / "corpus" / TARGETS[target]),
         "-max_total_time=4", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stat::number_of_executed_units" in proc.stderr
    assert not list(tmp_path.glob("crash-*")), proc.stderr[-4000:]

"""What every fuzz target shares: coverage for the xmppd package only, and the
command line (libFuzzer's: ``-max_total_time=N``, ``-runs=N``, a corpus directory).

    .venv/bin/python fuzz/stream_parser.py fuzz/corpus/stream -max_total_time=60

A finding is an exception the target does not expect (an ``XMPPError`` or the
documented error of the code under test is expected); libFuzzer then writes the
input to ``crash-<sha1>`` and exits non-zero.
"""
from __future__ import annotations

import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(test_one, *, corpus: str) -> None:
    """Fuzz ``test_one(data: bytes)``. Unless the command line names corpus
    directories, new inputs go to ``var/fuzz/<corpus>`` (not in git) and the seeds
    are read from ``fuzz/corpus/<corpus>`` (in git: findings are added there with
    their regression tests)."""
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        work = ROOT / "var" / "fuzz" / corpus
        work.mkdir(parents=True, exist_ok=True)
        args += [str(work), str(ROOT / "fuzz" / "corpus" / corpus)]
    if not any(a.startswith("-artifact_prefix=") for a in args):
        (ROOT / "var" / "fuzz" / "findings").mkdir(parents=True, exist_ok=True)
        args.append(f"-artifact_prefix={ROOT / 'var' / 'fuzz' / 'findings'}/{corpus}-")
    atheris.Setup(args, test_one)
    atheris.Fuzz()

"""An acknowledged write survives ``kill -9`` of the server process (SQLite in WAL
mode with synchronous=NORMAL; PostgreSQL).

A child process writes through the storage API and prints ``ok <kind> <i>`` after
each awaited write, exactly as the server acknowledges a stanza after awaiting its
store. We SIGKILL it mid-stream, reopen the database, and require every write
the child acknowledged to be there.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from xmppd.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, json, sys
from xmppd.storage import open_storage

async def writer(storage, kind, n):
    kv = storage.keyval("falcot.com", "accounts")
    m = storage.map("falcot.com", "roster")
    a = storage.archive("falcot.com", "archive")
    for i in range(n):
        if kind == "kv":
            await kv.set(f"user{i}", {"i": i, "pad": "x" * 200})
        elif kind == "map":
            await m.set_many("joe", {f"c{i}": {"i": i}, f"d{i}": {"i": i}})
        else:
            await a.append("joe", {"i": i}, key=f"k{i}", with_jid="a@x")
        sys.stdout.write(f"ok {kind} {i}\n")
        sys.stdout.flush()

async def main():
    storage = await open_storage(sys.argv[1], **json.loads(sys.argv[2]))
    sys.stdout.write("ready\n"); sys.stdout.flush()
    await asyncio.gather(*(writer(storage, k, 1_000_000) for k in ("kv", "map", "arc")))

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres",
                                                         marks=pytest.mark.external("postgres"))])
async def test_acknowledged_writes_survive_kill_9(tmp_path, kind, request):
    if kind == "sqlite":
        options = {"path": str(tmp_path / "var" / "xmppd.sqlite")}
    else:
        options = request.getfixturevalue("pg_database")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, kind, json.dumps(options), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    acked: dict[str, set[int]] = {"kv": set(), "map": set(), "arc": set()}
    try:
        async def read_until(total: int) -> None:
            while sum(map(len, acked.values())) < total:
                line = await proc.stdout.readline()
                if not line:
                    err = (await proc.stderr.read()).decode(errors="replace")
                    pytest.fail(f"child exited early (rc={await proc.wait()}):\n{err}")
                parts = line.split()
                if parts and parts[0] == b"ok":
                    acked[parts[1].decode()].add(int(parts[2]))

        await asyncio.wait_for(read_until(600), timeout=30)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
    # lines written before the kill were acknowledged too: drain the pipe
    rest, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == b"ok":
            acked[parts[1].decode()].add(int(parts[2]))
    assert proc.returncode == -signal.SIGKILL
    assert all(acked.values()), acked

    storage = await open_storage(kind, **options)
    try:
        kv = storage.keyval("falcot.com", "accounts")
        users = set(await kv.users())
        missing = [i for i in acked["kv"] if f"user{i}" not in users]
        assert not missing, f"acknowledged keyval writes lost: {missing[:10]}"
        for i in sorted(acked["kv"])[-3:]:
            assert (await kv.get(f"user{i}"))["i"] == i

        roster = await storage.map("falcot.com", "roster").items("joe")
        missing = [i for i in acked["map"] if f"c{i}" not in roster or f"d{i}" not in roster]
        assert not missing, f"acknowledged map writes lost: {missing[:10]}"
        # set_many is atomic: never one key of a pair without the other
        assert all((f"d{k[1:]}" in roster) for k in roster if k.startswith("c"))

        a = storage.archive("falcot.com", "archive")
        keys = {it.key for it in await a.query("joe")}
        missing = [i for i in acked["arc"] if f"k{i}" not in keys]
        assert not missing, f"acknowledged archive appends lost: {missing[:10]}"
        assert await a.count("joe", with_jid="a@x") == len(keys)
    finally:
        await storage.close()

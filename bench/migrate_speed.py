"""``xmppctl storage migrate`` speed on an archive: SQLite → PostgreSQL and back,
through ``xmppd.cli.storage_migrate.migrate`` (what the command runs, copy then
verification), on a seeded archive.

    .venv/bin/python bench/migrate_speed.py [--rows 200000] [--users 20]

The SQLite database is seeded with ``rows`` archive items (``users`` users, 10
correspondents each, a message of about 120 bytes each) straight into the table;
it is then migrated into a fresh PostgreSQL database (a cluster of its own made
with initdb, tests/pg.py, fsync on, as installed), and that database migrated into
a fresh SQLite file. Each migration is timed whole (copy and verification), then
its verification alone (``--verify``), so the copy's own rate is the difference.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from archive_scale import seed_sqlite  # noqa: E402
from xmppd.cli.storage_migrate import migrate  # noqa: E402
from xmppd.storage import open_storage  # noqa: E402


async def timed_migrate(src, dst) -> tuple[float, float]:
    t = time.monotonic()
    problems = await migrate(src, dst, out=io.StringIO())
    whole = time.monotonic() - t
    assert not problems, problems
    t = time.monotonic()
    assert not await migrate(src, dst, verify_only=True, out=io.StringIO())
    return whole, time.monotonic() - t


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=20)
    args = ap.parse_args()
    from tests import pg
    with tempfile.TemporaryDirectory(prefix="xmppd-migrate-speed-") as tmp:
        a = await open_storage("sqlite", path=str(Path(tmp) / "a.sqlite"))
        p = await open_storage("postgres", **pg.cluster(fsync=True).new_database())
        b = await open_storage("sqlite", path=str(Path(tmp) / "b.sqlite"))
        try:
            await seed_sqlite(a, args.users, args.rows // args.users)
            for name, src, dst in (("SQLite → PostgreSQL", a, p),
                                   ("PostgreSQL → SQLite", p, b)):
                whole, verify = await timed_migrate(src, dst)
                copy = whole - verify
                print(f"{name}: {args.rows:,} items: migrate {whole:.1f} s "
                      f"(copy {copy:.1f} s, {args.rows / copy:,.0f} items/s; "
                      f"verification {verify:.1f} s)", flush=True)
        finally:
            for s in (a, p, b):
                await s.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

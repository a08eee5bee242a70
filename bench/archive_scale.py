"""Archive queries over a large archive, SQLite and PostgreSQL side by side, through
the storage API alone (no XMPP): what a MAM or MUC archive query costs the storage
when the table holds ten million messages.

    .venv/bin/python bench/archive_scale.py [--rows 10000000] [--users 10] [--queries 300]

The archive holds ``rows`` messages spread over ``users`` users (and 10
correspondents each), one per ``span / per_user`` seconds. Each measured query is
what ``xmppd.xmpp.mam.run`` asks for one XEP-0313 page: the page (50 items) and the
count of the result set (``mam_include_total``, the default), timed apart, for
three kinds of query in turn: the last page of a user's archive, the last page with one
correspondent, and the page from a random date on. Prints p50 and p99 per kind and
backend, and how long seeding took; PostgreSQL is a cluster of its own made with
initdb (tests/pg.py, fsync on).
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from xmppd.storage import open_storage  # noqa: E402

HOST = "bench.test"
T0 = 1_700_000_000.0
SPAN = 1_000_000.0
VALUE = "\"<message xmlns='jabber:client' type='chat'><body>Art thou not Romeo, and a Montague? {}</body></message>\""


async def seed_sqlite(s, users: int, per_user: int) -> None:
    step = SPAN / per_user
    for u in range(users):
        for lo in range(0, per_user, 100_000):
            rows = [(HOST, "archive", f"u{u}", f"u{u}-{i}", T0 + i * step, f"peer{i % 10}@example.org",
                     VALUE.format(i)) for i in range(lo, min(per_user, lo + 100_000))]

            async def load(conn, rows=rows):
                await conn.executemany(
                    'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            await s.transaction(load)


async def seed_postgres(s, users: int, per_user: int) -> None:
    head, tail = VALUE.split("{}")
    for u in range(users):
        await s.execute(
            'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
            "SELECT $1, 'archive', $2, $2 || '-' || i, $3 + i * $4, "
            "'peer' || (i % 10) || '@example.org', $5 || i || $6 "
            "FROM generate_series(0, $7 - 1) i", HOST, f"u{u}", T0, SPAN / per_user, head, tail,
            per_user)
    await s.execute("VACUUM ANALYZE archive")   # what autovacuum does after a bulk load


async def measure(s, users: int, queries: int) -> dict[str, list[float]]:
    """Per kind of query, the times (ms) of the page alone and of the count."""
    a = s.archive(HOST, "archive")
    rnd = random.Random(7)
    kinds = ["last page", "last page with one peer", "page from a date"]
    out: dict[str, list[float]] = {f"{k}{what}": [] for k in kinds for what in ("", ": count")}
    for n in range(queries):
        user = f"u{rnd.randrange(users)}"
        kind = kinds[n % 3]
        if kind == "last page":
            page = dict(limit=50, reverse=True)
            sel: dict = {}
        elif kind == "last page with one peer":
            sel = dict(with_jid=f"peer{rnd.randrange(10)}@example.org")
            page = dict(limit=50, reverse=True)
        else:
            sel = dict(start=T0 + rnd.random() * SPAN * 0.99)
            page = dict(limit=50)
        t = time.perf_counter()
        items = await a.query(user, **sel, **page)
        t1 = time.perf_counter()
        await a.count(user, **sel)
        t2 = time.perf_counter()
        out[kind].append((t1 - t) * 1e3)
        out[f"{kind}: count"].append((t2 - t1) * 1e3)
        assert len(items) == 50, (kind, len(items))
    return out


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    per_user = args.rows // args.users
    from tests import pg
    results = {}
    with tempfile.TemporaryDirectory(prefix="xmppd-archive-scale-") as tmp:
        for kind in ("sqlite", "postgres"):
            if kind == "sqlite":
                s = await open_storage("sqlite", path=str(Path(tmp) / "xmppd.sqlite"))
                seed = seed_sqlite
            else:
                s = await open_storage("postgres", **pg.cluster(fsync=True).new_database())
                seed = seed_postgres
            try:
                t = time.monotonic()
                await seed(s, args.users, per_user)
                seeded = time.monotonic() - t
                await measure(s, args.users, 30)   # warm the caches
                results[kind] = (seeded, await measure(s, args.users, args.queries))
            finally:
                await s.close()
            print(f"{kind}: seeded {args.rows:,} rows in {seeded:.0f} s; p50 / p99 ms: "
                  + ", ".join(f"{q} {statistics.median(v):.2f} / {pct(v, 0.99):.2f}"
                              for q, v in results[kind][1].items()), file=sys.stderr, flush=True)
    print(f"| query ({args.rows:,} archived messages, {args.users} users): a page of 50, then "
          "the count of what the query selects (MAM's total) "
          "| SQLite p50 / p99 ms | PostgreSQL p50 / p99 ms |")
    print("|---|---|---|")
    for q in results["sqlite"][1]:
        cells = []
        for kind in ("sqlite", "postgres"):
            v = results[kind][1][q]
            cells.append(f"{statistics.median(v):.2f} / {pct(v, 0.99):.2f}")
        print(f"| {q} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

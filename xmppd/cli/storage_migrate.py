"""``xmppctl storage migrate --from sqlite --to sql`` (and back): every store of every
host copied from one backend to the other, then verified.

The backends are named as in the configuration: ``sqlite`` (or ``internal``) is
xmppd's SQLite database (data_path/xmppd.sqlite), ``sql`` the database of the
``sql`` option (PostgreSQL). xmppd must be stopped: it would write to the source
while it is copied.

What is copied: the source's ``stores()`` — every (host, kind, store) with data,
whatever module wrote it — keyval values, map keys, archive items with their key,
time and peer, in their order (``BATCH`` items per transaction). The copy is
resumable: a keyval value is written again (the same value), a map user's keys are
made exactly the source's in one transaction, and an archive user whose items are
already all in the target (same count, same checksum) is skipped, otherwise that
user's items in the target are replaced. So an interrupted migration is finished
by running it again.

Verification, per store: the number of items and a SHA-256 over every item (user,
key, value; for archives time, peer and order too) on both sides; a difference is
an error naming the store (exit status 1). ``--verify`` only compares.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass

PAGE = 1000     # archive items read per query
BATCH = 2000    # archive items written per transaction (append_many)


class Progress:
    """One line per store, redrawn in place on a terminal (a bar and counts);
    elsewhere, only the final line of each store."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.label = ""
        self.total = 0
        self.done = 0
        self._last = 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        width = 30
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width)
        self.out.write(f"\r{self.label:<48.48} [{bar:<{width}}] {self.done}/{self.total}\x1b[K")
        self.out.flush()

    def finish(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")
        print(f"{self.label}: {text}", file=self.out, flush=True)


def _line(*parts) -> bytes:
    return json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclass
class Summary:
    count: int
    digest: str


async def keyval_summary(storage, host: str, store: str) -> Summary:
    kv = storage.keyval(host, store)
    h = hashlib.sha256()
    users = await kv.users()
    for user in users:
        h.update(_line(user, await kv.get(user)))
    return Summary(len(users), h.hexdigest())


async def map_summary(storage, host: str, store: str) -> Summary:
    m = storage.map(host, store)
    h = hashlib.sha256()
    n = 0
    for user in await m.users():
        items = await m.items(user)
        for key in sorted(items):
            h.update(_line(user, key, items[key]))
        n += len(items)
    return Summary(n, h.hexdigest())


async def archive_items(a, user: str):
    after = None
    while True:
        page = await a.query(user, after=after, limit=PAGE)
        for it in page:
            yield it
        if len(page) < PAGE:
            return
        after = page[-1].key


async def archive_user_digest(a, user: str) -> str:
    h = hashlib.sha256()
    async for it in archive_items(a, user):
        h.update(_line(user, it.key, repr(float(it.when)), it.with_jid, it.value))
    return h.hexdigest()


async def archive_summary(storage, host: str, store: str) -> Summary:
    a = storage.archive(host, store)
    h = hashlib.sha256()
    n = 0
    for user in await a.users():
        n += await a.count(user)
        h.update(_line(user, await archive_user_digest(a, user)))
    return Summary(n, h.hexdigest())


SUMMARY = {"keyval": keyval_summary, "map": map_summary, "archive": archive_summary}


async def copy_keyval(src, dst, host: str, store: str, progress: Progress) -> None:
    s, d = src.keyval(host, store), dst.keyval(host, store)
    users = await s.users()
    progress.start(f"{host} {store} (keyval)", len(users))
    for user in users:
        value = await s.get(user)
        if value is not None and await d.get(user) != value:
            await d.set(user, value)
        progress.advance()


async def copy_map(src, dst, host: str, store: str, progress: Progress) -> None:
    s, d = src.map(host, store), dst.map(host, store)
    users = await s.users()
    progress.start(f"{host} {store} (map)", len(users))
    for user in users:
        items = await s.items(user)
        have = await d.items(user)
        if have != items:
            # exactly the source's keys, in one transaction
            await d.set_many(user, {**{k: None for k in have if k not in items}, **items})
        progress.advance()


async def copy_archive(src, dst, host: str, store: str, progress: Progress) -> None:
    s, d = src.archive(host, store), dst.archive(host, store)
    users = await s.users()
    counts = {user: await s.count(user) for user in users}
    progress.start(f"{host} {store} (archive)", sum(counts.values()))
    for user in users:
        n = counts[user]
        if await d.count(user) == n and \
                await archive_user_digest(d, user) == await archive_user_digest(s, user):
            progress.advance(n)     # copied by an earlier run
            continue
        await d.delete(user)         # a partial copy is done again, in order
        batch = []
        async for it in archive_items(s, user):
            batch.append((it.key, it.when, it.with_jid, it.value))
            if len(batch) >= BATCH:
                progress.advance(await d.append_many(user, batch))
                batch = []
        if batch:
            progress.advance(await d.append_many(user, batch))


COPY = {"keyval": copy_keyval, "map": copy_map, "archive": copy_archive}


async def migrate(src, dst, *, verify_only: bool = False, out=None) -> list[str]:
    """Copy (unless ``verify_only``) and verify every store; the differences found."""
    progress = Progress(out)
    stores = await src.stores()
    problems: list[str] = []
    for host, kind, store in stores:
        if not verify_only:
            await COPY[kind](src, dst, host, store, progress)
        else:
            progress.start(f"{host} {store} ({kind})", 0)
        a = await SUMMARY[kind](src, host, store)
        b = await SUMMARY[kind](dst, host, store)
        if (a.count, a.digest) == (b.count, b.digest):
            progress.finish(f"{a.count} item(s), sha256 {a.digest[:16]}, identical")
        else:
            what = (f"{a.count} item(s) in the source, {b.count} in the target" if a.count != b.count
                    else f"{a.count} item(s) on both sides, but their contents differ")
            progress.finish(f"DIFFERENT: {what}")
            problems.append(f"{host} {store} ({kind}): {what}")
    # a store the target has and the source does not
    for host, kind, store in await dst.stores():
        if (host, kind, store) not in stores:
            problems.append(f"{host} {store} ({kind}): only in the target")
    if not stores:
        print("the source holds no data", file=progress.out)
    return problems


async def cmd_storage_migrate(args, cfg) -> int:
    from . import ctl
    from ..core.storage_setup import StorageConfigError, backend_kind, open_backend
    try:
        kinds = [backend_kind(cfg, args.source), backend_kind(cfg, args.target)]
    except StorageConfigError as exc:
        raise ctl.CtlError(str(exc)) from None
    for name, kind in zip((args.source, args.target), kinds):
        if kind == "memory":
            raise ctl.CtlError(f"{name}: memory storage holds nothing to migrate")
    if kinds[0] == kinds[1]:
        raise ctl.CtlError(f"--from {args.source} and --to {args.target} are the same "
                           f"database ({kinds[0]})")
    ctl.refuse_while_running(cfg, "migrating its storage (it would write to the source "
                             "during the copy)")
    path = ctl.data_path(cfg)
    opened = []
    try:
        for kind in kinds:
            try:
                s = await open_backend(cfg, path, kind)
            except StorageConfigError as exc:
                raise ctl.CtlError(str(exc)) from None
            except Exception as exc:
                raise ctl.CtlError(f"cannot open the {kind} storage: {exc}") from None
            opened.append(ctl._OwnedStorage(s, path) if kind == "sqlite" else s)
        src, dst = opened
        started = time.monotonic()
        problems = await migrate(src, dst, verify_only=args.verify)
    finally:
        for s in opened:
            await s.close()
    if problems:
        for p in problems:
            print(f"xmppctl: {p}", file=sys.stderr)
        raise ctl.CtlError(f"{len(problems)} store(s) differ between {args.source} and "
                           f"{args.target}" + ("" if args.verify else
                                               " (run the migration again to finish it)"))
    took = time.monotonic() - started
    if args.verify:
        print(f"{args.source} and {args.target} hold the same data")
    else:
        print(f"migrated from {args.source} to {args.target} in {took:.1f} s and verified; "
              f"set storage = \"{args.target}\" in the configuration, then start xmppd")
    return 0


def register(sub, common, add) -> None:
    p = add("storage", None, "the storage: `storage migrate --from sqlite --to sql` copies "
            "everything to PostgreSQL (and back)")
    actions = p.add_subparsers(dest="action", metavar="migrate")
    actions.required = True
    m = actions.add_parser(
        "migrate", parents=[common],
        help="copy every store of every host from one backend to the other, then verify "
        "counts and checksums; resumable (run it again after an interruption); xmppd "
        "must be stopped")
    m.set_defaults(func=cmd_storage_migrate)
    m.add_argument("--from", dest="source", required=True, metavar="BACKEND",
                   help="sqlite (data_path/xmppd.sqlite) or sql (the sql option's database)")
    m.add_argument("--to", dest="target", required=True, metavar="BACKEND",
                   help="sql or sqlite")
    m.add_argument("--verify", action="store_true",
                   help="only compare the two (counts and checksums), copy nothing")

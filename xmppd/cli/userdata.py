"""A user's data as the migration commands move it: written into xmppd's stores by
*filling in what xmppd lacks* (an account, a roster item, a vCard, a private fragment,
a PEP node that xmppd already has is kept and counted as such, never overwritten),
and read back for ``xmppctl export``.

Where each thing lives (the stores the core and the modules use):

* ``accounts`` (keyval): SCRAM credentials, :mod:`..core.credentials`;
* ``roster`` (map): contact → item record, :mod:`..core.roster` (``""`` holds the version);
* ``vcard`` (keyval): the vcard-temp ``<vCard/>`` as XML text;
* ``private`` (map): ``name:namespace`` → the fragment's XML text (XEP-0049);
* ``offline`` (archive): messages waiting, XML text, keyed;
* ``archive`` (archive): the message archive (MAM), XML text, keyed by archive id,
  ``with`` the contact's bare JID; ``archive_cleanup`` (map): day (``YYYY-MM-DD``,
  UTC) → user → true, the days the expiry (``archive_expires_after``) looks at;
* ``blocklist`` (keyval): the sorted blocked JIDs (XEP-0191);
* PEP nodes: :mod:`.pepstore`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ARCHIVE_BATCH = 2000   # archived messages written per transaction (append_many)


@dataclass
class Tally:
    imported: int = 0
    unchanged: int = 0
    kept: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.imported += other.imported
        self.unchanged += other.unchanged
        self.kept += other.kept
        self.errors += other.errors


def same_credentials(a: dict, b: dict, hash_key: str) -> bool:
    return all(a.get(k) == b.get(k) for k in ("iterations", "salt", hash_key))


async def merge_roster(storage, host: str, user: str, wanted: dict[str, dict], tally: Tally,
                       *, dry_run: bool) -> None:
    """``wanted``: contact → roster record (:func:`..core.roster.new_item` shape)."""
    from ..core import roster as rs
    store = storage.map(host, rs.STORE)
    existing = await store.items(user)
    values: dict = {}
    for jid, rec in wanted.items():
        old = existing.get(jid)
        if old is None:
            values[jid] = rec
            tally.imported += 1
        elif rs.visible(old) == rs.visible(rec) and bool(old.get("pending_in")) == bool(rec.get("pending_in")):
            tally.unchanged += 1
        else:
            tally.kept += 1
    if values and not dry_run:
        meta_old = existing.get(rs.META)
        ver = int(meta_old.get("version", 0)) if isinstance(meta_old, dict) else 0
        values[rs.META] = {"version": ver + 1}
        await store.set_many(user, values)


async def merge_xml_keyval(storage, host: str, store_name: str, user: str, text: str,
                           tally: Tally, *, dry_run: bool) -> None:
    kv = storage.keyval(host, store_name)
    old = await kv.get(user)
    if old is None:
        if not dry_run:
            await kv.set(user, text)
        tally.imported += 1
    elif old == text:
        tally.unchanged += 1
    else:
        tally.kept += 1


async def merge_private(storage, host: str, user: str, fragments: dict[str, str], tally: Tally,
                        *, dry_run: bool) -> None:
    """``fragments``: ``name:namespace`` → XML text."""
    store = storage.map(host, "private")
    existing = await store.items(user)
    values = {}
    for key, text in fragments.items():
        if key not in existing:
            values[key] = text
            tally.imported += 1
        elif existing[key] == text:
            tally.unchanged += 1
        else:
            tally.kept += 1
    if values and not dry_run:
        await store.set_many(user, values)


async def merge_blocklist(storage, host: str, user: str, jids: set[str], tally: Tally,
                          *, dry_run: bool) -> None:
    kv = storage.keyval(host, "blocklist")
    old = set(await kv.get(user) or ())
    new = jids - old
    tally.unchanged += len(jids & old)
    tally.imported += len(new)
    if new and not dry_run:
        await kv.set(user, sorted(old | jids))


async def merge_pep(storage, host: str, user: str, nodes: list, tally: Tally,
                    *, dry_run: bool) -> None:
    """``nodes``: :class:`.pepstore.PepNode`; a node xmppd has with the same
    configuration and items is unchanged, with others kept."""
    from . import pepstore
    existing = await pepstore.read_nodes(storage, host, user)
    new = []
    for node in nodes:
        old = existing.get(node.name)
        if old is None:
            new.append(node)
            tally.imported += 1
        elif (old.config, [(i.id, i.xml) for i in old.items]) == (
                {**old.config, **node.config},
                [(i.id, i.xml) for i in node.items[-pepstore.limit(node):]]):
            tally.unchanged += 1
        else:
            tally.kept += 1
    if new and not dry_run:
        await pepstore.write_nodes(storage, host, user, new)


async def add_offline(storage, host: str, user: str, messages: list, seen: set[str],
                      tally: Tally, *, dry_run: bool) -> list[str]:
    """``messages``: ``(key, <message/> element, when)``; one whose key was imported
    before (``seen``) or is stored is unchanged. Returns the keys."""
    from ..xmpp.jid import bare
    from ..xmpp.stanza import to_xml
    archive = storage.archive(host, "offline")
    keys = []
    for key, el, when in messages:
        keys.append(key)
        if key in seen or await archive.get(user, key) is not None:
            tally.unchanged += 1
            continue
        if not dry_run:
            await archive.append(user, to_xml(el), with_jid=bare(el.get("from")), when=when, key=key)
        tally.imported += 1
    return keys


async def add_archive(storage, host: str, user: str, messages: list, tally: Tally,
                      *, dry_run: bool) -> None:
    """``messages``: ``(key, <message/> element, when, with)`` for the message archive
    (MAM); one whose key the archive has is unchanged. The new ones are written
    ``ARCHIVE_BATCH`` per transaction."""
    import time as _time
    from ..xmpp.stanza import to_xml
    archive = storage.archive(host, "archive")
    days = set()
    batch: list = []
    seen: set[str] = set()
    for key, el, when, with_jid in messages:
        if key in seen or await archive.get(user, key) is not None:
            tally.unchanged += 1
            continue
        seen.add(key)
        if not dry_run:
            batch.append((key, when, with_jid, to_xml(el)))
            days.add(_time.strftime("%Y-%m-%d", _time.gmtime(when)))
            if len(batch) >= ARCHIVE_BATCH:
                await archive.append_many(user, batch)
                batch = []
        tally.imported += 1
    if batch:
        await archive.append_many(user, batch)
    for day in sorted(days):
        await storage.map(host, "archive_cleanup").set(day, user, True)


# -- reading, for export ---------------------------------------------------------

async def read_user(storage, host: str, user: str) -> dict:
    """Everything the export writes for one account (values as stored)."""
    from . import pepstore
    from ..core import roster as rs
    roster = await storage.map(host, rs.STORE).items(user)
    roster.pop(rs.META, None)
    return {
        "credentials": await storage.keyval(host, "accounts").get(user),
        "roster": roster,
        "vcard": await storage.keyval(host, "vcard").get(user),
        "private": await storage.map(host, "private").items(user),
        "offline": await storage.archive(host, "offline").query(user),
        "archive": await storage.archive(host, "archive").query(user),
        "blocklist": await storage.keyval(host, "blocklist").get(user) or [],
        "pep": await pepstore.read_nodes(storage, host, user),
    }

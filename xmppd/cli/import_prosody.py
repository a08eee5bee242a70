"""``xmppctl import prosody [DATA_PATH] [--sql FILE] [--internal] [--dry-run] [--host H]``:
accounts and their data from Prosody's storage (Prosody 0.12 and 13), flat files
(``storage = "internal"``) or SQLite (``storage = "sql"``).

Prosody keeps ``DATA_PATH/<host>/<store>/<user>.dat`` (``return { ... };``) and
``.list`` files (``item({ ... });`` per item), names %-encoded (``prosody%2eexample``)
(:class:`FlatSource`); with SQL, the same values in the tables ``prosody`` and
``prosodyarchive`` of ``prosody.sqlite`` (:class:`SqlSource`, :mod:`.prosody_sql`).
For each enabled VirtualHost of xmppd's configuration that Prosody has data for:

* ``accounts``: ``internal_hashed`` records (SCRAM-SHA-1 ``stored_key``, ``server_key``,
  ``salt``, ``iteration_count``) become xmppd credentials holding only the SCRAM-SHA-1
  keys: the password is unchanged (SCRAM-SHA-1 and PLAIN work; SCRAM-SHA-256 is not
  offered on the host while such accounts exist, ``core/accounts.py``; the next
  password change stores both). Prosody 13's SHA-256 records (``password_hash =
  "SHA-256"``, 32-byte keys) give SCRAM-SHA-256 keys. ``internal_plain`` records get
  full credentials from their password;
* ``roster`` (items, and pending subscription requests), ``vcard`` (vcard-temp),
  ``private`` (XEP-0049), ``offline`` (messages waiting), ``archive`` (MAM, with the
  archive ids), ``blocklist`` (XEP-0191) and ``pep`` (the nodes' configuration,
  affiliations and subscriptions, with the items of the archives ``pep_<node>``) are
  written where xmppd's roster service and modules keep them (:mod:`.userdata`,
  :mod:`.pepstore`).

The import fills in what xmppd lacks and never overwrites: an account, a roster item,
a vCard, a private fragment or a PEP node that xmppd already has is kept (and counted
as such). What was imported is remembered per user (the ``prosody_import`` store: a
digest of each Prosody file or set of rows, and the keys of the offline messages), so
a second run over the same data changes nothing and says so, even after users changed
things in xmppd, and offline messages delivered since are not imported twice. A file
or value that cannot be read is reported with its path (and row) and skipped; the
rest is imported.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .luadata import FALSE, LuaError, Table, parse_dat, parse_list, to_element
from . import userdata
from .userdata import Tally
from ..xmpp.vcard4 import vcard4_to_temp

STORES = ("accounts", "roster", "vcard", "private", "offline", "archive", "blocklist", "pep")
MARKER = "prosody_import"


def encode_name(s: str) -> str:
    """A host or user name as Prosody's datamanager writes it in a path."""
    return "".join(c if c.isalnum() and c.isascii() else
                   "".join(f"%{b:02x}" for b in c.encode("utf-8")) for c in s)


def decode_name(s: str) -> str:
    return urllib.parse.unquote(s, errors="strict")


class Skip(Exception):
    """A file or entry that cannot be imported (the message says why)."""


@dataclass
class Entry:
    user: str
    path: str          # where it was read, for messages
    digest: str
    value: object


class FlatSource:
    """Prosody's flat files (``storage = "internal"``) under its data_path."""

    def __init__(self, root: Path):
        self.root = root
        self.describe = str(root)

    def has_host(self, host: str) -> bool:
        return (self.root / encode_name(host)).is_dir()

    def _files(self, host: str, store: str, ext: str, user: str | None = None):
        d = self.root / encode_name(host) / encode_name_store(store)
        if user is not None:
            p = d / (encode_name(user) + ext)
            return [p] if p.is_file() else []
        if not d.is_dir():
            return []
        return [p for p in sorted(d.iterdir()) if p.suffix == ext and p.is_file()]

    def _read(self, paths, parse) -> list:
        out = []
        for path in paths:
            try:
                raw = decode_name(path.stem)
                data = path.read_bytes()
                out.append((raw, str(path), hashlib.sha256(data).hexdigest(), parse(data)))
            except (OSError, LuaError, UnicodeDecodeError) as exc:
                out.append((path.stem, str(path), "", exc))
        return out

    def keyval(self, host: str, store: str) -> list:
        """``(user, label, digest, value or the exception met reading it)`` per user."""
        return self._read(self._files(host, store, ".dat"), parse_dat)

    def archive(self, host: str, store: str, user: str | None = None) -> list:
        return self._read(self._files(host, store, ".list", user), parse_list)

    def archive_stores(self, host: str, prefix: str) -> list[str]:
        d = self.root / encode_name(host)
        enc = encode_name_store(prefix)
        return sorted(decode_name(p.name) for p in d.iterdir()
                      if p.is_dir() and p.name.startswith(enc)) if d.is_dir() else []

    def close(self) -> None:
        pass


class SqlSource:
    """Prosody's SQL storage in SQLite (``storage = "sql"``): :mod:`.prosody_sql`."""

    def __init__(self, path: Path):
        from .prosody_sql import ProsodySQL
        self.db = ProsodySQL(path)
        self.describe = f"{path} (SQL)"
        self._hosts = self.db.hosts()

    def has_host(self, host: str) -> bool:
        return host in self._hosts

    def _rows(self, data: dict, store: str) -> list:
        return [(user, f"{self.db.path}: {store} of {user}", digest, value)
                for user, (digest, value) in sorted(data.items())]

    def keyval(self, host: str, store: str) -> list:
        return self._rows(self.db.keyval(host, store), store)

    def archive(self, host: str, store: str, user: str | None = None) -> list:
        return self._rows(self.db.archive(host, store, user), store)

    def archive_stores(self, host: str, prefix: str) -> list[str]:
        return self.db.archive_stores(host, prefix)

    def close(self) -> None:
        self.db.close()


class Importer:
    def __init__(self, storage, accounts, source, *, dry_run: bool, out):
        self.storage = storage
        self.accounts = accounts
        self.src = source
        self.dry_run = dry_run
        self.out = out
        self.total = Tally()
        self.sha1_only: list[str] = []   # accounts without SCRAM-SHA-256 keys, per host

    # -- reading ------------------------------------------------------------------

    def _entries(self, rows: list, tally: Tally) -> list[Entry]:
        from ..xmpp.jid import InvalidJID, nodeprep
        out = []
        for raw, label, digest, value in rows:
            if isinstance(value, Exception):
                tally.errors.append(f"{label}: {value} (skipped)")
                continue
            try:
                user = nodeprep(raw)
            except InvalidJID as exc:
                tally.errors.append(f"{label}: {exc} (skipped)")
                continue
            out.append(Entry(user, label, digest, value))
        return out

    def entries(self, host: str, store: str, tally: Tally) -> list[Entry]:
        if store in ("offline", "archive"):
            return self._entries(self.src.archive(host, store), tally)
        if store == "pep":
            return self.pep_entries(host, tally)
        return self._entries(self.src.keyval(host, store), tally)

    def pep_entries(self, host: str, tally: Tally) -> list[Entry]:
        """Each user's PEP nodes (the ``pep`` map: node → name, config, subscribers,
        affiliations) with their items (the archive ``pep_<node>``)."""
        out = []
        for e in self._entries(self.src.keyval(host, "pep"), tally):
            if not isinstance(e.value, Table):
                tally.errors.append(f"{e.path}: not PEP nodes (skipped)")
                continue
            digest = hashlib.sha256(e.digest.encode())
            nodes = {}
            for name, rec in sorted(e.value.items(), key=lambda kv: str(kv[0])):
                if not isinstance(name, str) or not name:
                    continue
                if rec is True:      # Prosody's old form: the node exists, no configuration
                    rec = Table()
                rows = self.src.archive(host, "pep_" + name, e.user)
                items = []
                for _raw, label, d, value in rows:
                    if isinstance(value, Exception):
                        tally.errors.append(f"{label}: {value} (node {name} skipped)")
                        items = None
                        break
                    digest.update(d.encode())
                    items = value
                if items is not None:
                    nodes[name] = (rec, items)
            out.append(Entry(e.user, e.path, digest.hexdigest(), nodes))
        return out

    def vcard4_entries(self, host: str, have: set[str], tally: Tally) -> list[Entry]:
        """vCards that Prosody's ``vcard_legacy`` (Debian's default) keeps as vCard4 in
        PEP (and the avatar in PEP too), for users without a ``vcard`` entry: turned
        into vcard-temp as ``vcard_legacy`` shows them to vcard-temp clients."""
        out = []
        for e in self._entries(self.src.archive(host, "pep_urn:xmpp:vcard4"), tally):
            if e.user in have:
                continue
            try:
                vcard4 = _last_payload(e.value)
                photo, more = _avatar(self.src, host, e.user)
            except LuaError as exc:
                tally.errors.append(f"{e.path}: {exc} (skipped)")
                continue
            if vcard4 is None:
                continue
            el = vcard4_to_temp(vcard4, photo)
            out.append(Entry(e.user, e.path, hashlib.sha256((e.digest + more).encode()).hexdigest(), el))
        return out

    # -- the marker: what was imported before ---------------------------------------

    async def marker(self, host: str, user: str) -> dict:
        v = await self.storage.keyval(host, MARKER).get(user)
        return v if isinstance(v, dict) else {}

    async def remember(self, host: str, user: str, store: str, digest: str, **extra) -> None:
        if self.dry_run:
            return
        kv = self.storage.keyval(host, MARKER)
        m = await self.marker(host, user)
        m[store] = {"digest": digest, **extra}
        await kv.set(user, m)

    # -- the stores ---------------------------------------------------------------

    async def run_host(self, host: str) -> None:
        if not self.src.has_host(host):
            self.out(f"{host}: no Prosody data in {self.src.describe}")
            return
        known = set(await self.accounts.users(host))
        for store in STORES:
            tally = Tally()
            entries = self.entries(host, store, tally)
            if store == "vcard":
                entries += self.vcard4_entries(host, {e.user for e in entries}, tally)
            if store == "accounts":
                self.sha1_only = []
                for e in entries:
                    await self.one(host, store, e, tally, self.account)
                if self.sha1_only and not self.dry_run:
                    await self.accounts.mark_sha1_only(host, self.sha1_only)
                known = set(await self.accounts.users(host)) | (
                    {e.user for e in entries} if self.dry_run else set())
            else:
                for e in entries:
                    if e.user not in known:
                        tally.errors.append(f"{e.path}: no account {e.user}@{host} (skipped)")
                        continue
                    await self.one(host, store, e, tally, getattr(self, store))
            self.report(host, store, tally)

    async def one(self, host: str, store: str, e: Entry, tally: Tally, func) -> None:
        done = (await self.marker(host, e.user)).get(store)
        if store != "accounts" and isinstance(done, dict) and done.get("digest") == e.digest:
            items = done.get("items")
            tally.unchanged += items if isinstance(items, int) and items >= 0 else 1
            return
        before = tally.imported + tally.unchanged + tally.kept
        try:
            extra = await func(host, e, tally, done if isinstance(done, dict) else {})
        except (Skip, LuaError) as exc:
            tally.errors.append(f"{e.path}: {exc} (skipped)")
            return
        if store != "accounts":
            items = tally.imported + tally.unchanged + tally.kept - before
            await self.remember(host, e.user, store, e.digest, items=items, **(extra or {}))

    def report(self, host: str, store: str, t: Tally) -> None:
        for line in t.errors:
            self.out(f"error: {line}")
        if not (t.imported or t.unchanged or t.kept or t.errors):
            return
        verb = "to import" if self.dry_run else "imported"
        parts = [f"{t.imported} {verb}", f"{t.unchanged} unchanged"]
        if t.kept:
            parts.append(f"{t.kept} kept (xmppd has its own, not overwritten)")
        if t.errors:
            parts.append(f"{len(t.errors)} skipped")
        self.out(f"{host} {store}: {', '.join(parts)}")
        self.total.imported += t.imported
        self.total.unchanged += t.unchanged
        self.total.kept += t.kept
        self.total.errors += t.errors

    async def account(self, host: str, e: Entry, tally: Tally, _done) -> None:
        from ..core.credentials import make_credentials_async, verify_password_async
        rec = e.value
        if not isinstance(rec, Table):
            raise Skip("not an account record")
        existing = await self.accounts.get_credentials(host, e.user)
        if isinstance(rec.get("password"), str):          # internal_plain
            if existing is not None:
                same = await verify_password_async(existing, rec["password"])
                if same:
                    tally.unchanged += 1
                else:
                    tally.kept += 1
                return
            try:
                creds = await make_credentials_async(rec["password"])
            except ValueError as exc:
                raise Skip(str(exc)) from None
        else:
            creds = scram_credentials(rec)
            hash_key = "scram-sha-1" if "scram-sha-1" in creds else "scram-sha-256"
            if existing is not None:
                if all(existing.get(k) == creds[k] for k in ("iterations", "salt", hash_key)):
                    if "scram-sha-256" not in existing:
                        self.sha1_only.append(e.user)
                    tally.unchanged += 1
                else:
                    tally.kept += 1
                return
        if not self.dry_run:
            await self.storage.keyval(host, "accounts").set(e.user, creds)
        if "scram-sha-256" not in creds:
            self.sha1_only.append(e.user)
        tally.imported += 1

    async def roster(self, host: str, e: Entry, tally: Tally, _done) -> None:
        from ..core import roster as rs
        from ..xmpp.jid import bare
        from ..xmpp.stanza import to_xml
        t = e.value
        if not isinstance(t, Table):
            raise Skip("not a roster")
        meta = t.get(FALSE) if isinstance(t.get(FALSE), Table) else Table()
        wanted: dict[str, dict] = {}
        for contact, item in t.items():
            if not isinstance(contact, str) or not isinstance(item, Table):
                continue
            jid = bare(contact)
            if jid is None:
                tally.errors.append(f"{e.path}: contact {contact!r} is not a JID (skipped)")
                continue
            rec = rs.new_item()
            sub = item.get("subscription")
            rec["subscription"] = sub if sub in ("none", "to", "from", "both") else "none"
            rec["ask"] = "subscribe" if item.get("ask") == "subscribe" else None
            rec["name"] = item.get("name") if isinstance(item.get("name"), str) and item.get("name") else None
            groups = item.get("groups") if isinstance(item.get("groups"), Table) else Table()
            rec["groups"] = sorted(g for g, v in groups.items() if isinstance(g, str) and v)
            wanted[jid] = rec
        pending = meta.get("pending") if isinstance(meta.get("pending"), Table) else Table()
        for contact, stanza in pending.items():
            jid = bare(contact) if isinstance(contact, str) else None
            if jid is None:
                continue
            rec = wanted.get(jid) or rs.new_item(listed=False)
            if rec["subscription"] in ("from", "both"):
                continue
            rec["pending_in"] = True
            try:
                el = to_element(stanza)
                nick = [c for c in el if c.tag in ("{http://jabber.org/protocol/nick}nick",
                                                   "{jabber:client}status")]
                out = to_element(Table(name="presence", attr=Table(type="subscribe")))
                out.extend(nick)
                req = to_xml(out)
            except LuaError:
                req = None
            rec["request"] = req
            wanted[jid] = rec
        await userdata.merge_roster(self.storage, host, e.user, wanted, tally, dry_run=self.dry_run)

    async def vcard(self, host: str, e: Entry, tally: Tally, _done) -> None:
        from ..xmpp.stanza import to_xml
        el = e.value if isinstance(e.value, ET.Element) else to_element(e.value, "vcard-temp")
        if el.tag != "{vcard-temp}vCard":
            raise Skip(f"not a vcard-temp vCard ({el.tag})")
        await userdata.merge_xml_keyval(self.storage, host, "vcard", e.user, to_xml(el), tally,
                                        dry_run=self.dry_run)

    async def private(self, host: str, e: Entry, tally: Tally, _done) -> None:
        from ..xmpp.stanza import split_tag, to_xml
        if not isinstance(e.value, Table):
            raise Skip("not private XML storage")
        values = {}
        for _key, frag in e.value.items():
            el = to_element(frag, "")
            xmlns, name = split_tag(el.tag)
            if not xmlns or xmlns in ("jabber:client", "jabber:server", "jabber:iq:private"):
                tally.errors.append(f"{e.path}: fragment {el.tag} may not be stored (skipped)")
                continue
            values[f"{name}:{xmlns}"] = to_xml(el)
        await userdata.merge_private(self.storage, host, e.user, values, tally, dry_run=self.dry_run)

    async def offline(self, host: str, e: Entry, tally: Tally, done: dict) -> dict:
        from ..xmpp.jid import bare
        from ..xmpp.stanza import add_delay, to_xml
        archive = self.storage.archive(host, "offline")
        seen = set(done.get("keys") or ())
        keys = []
        for item in e.value:
            if not isinstance(item, Table):
                tally.errors.append(f"{e.path}: an item is not a message (skipped)")
                continue
            key, when = item.get("key"), item.get("when")
            body = Table({k: v for k, v in item.items() if k not in ("key", "when", "with")})
            attr = body.get("attr")
            if isinstance(attr, Table):
                stamp = attr.pop("stamp", None)
            if not isinstance(when, (int, float)):
                from ..xmpp.time import parse_stamp
                try:
                    when = parse_stamp(stamp)
                except Exception:
                    when = None
            try:
                el = to_element(body)
            except LuaError as exc:
                tally.errors.append(f"{e.path}: {exc} (skipped)")
                continue
            if el.tag != "{jabber:client}message":
                tally.errors.append(f"{e.path}: an item is a {el.tag}, not a message (skipped)")
                continue
            key = key if isinstance(key, str) and key else hashlib.sha256(to_xml(el).encode()).hexdigest()[:24]
            keys.append(key)
            if key in seen or await archive.get(e.user, key) is not None:
                tally.unchanged += 1
                continue
            add_delay(el, host, when)
            if not self.dry_run:
                await archive.append(e.user, to_xml(el), with_jid=bare(el.get("from")),
                                     when=when, key=key)
            tally.imported += 1
        return {"keys": sorted(seen | set(keys))}

    async def archive(self, host: str, e: Entry, tally: Tally, _done) -> None:
        """The message archive (``mod_mam``'s ``archive`` store): each item a message
        with its archive id (``key``), time and contact (``with``)."""
        from ..xmpp.jid import bare
        messages = []
        for item in e.value:
            if not isinstance(item, Table) or not isinstance(item.get("key"), str):
                tally.errors.append(f"{e.path}: an item is not an archived message (skipped)")
                continue
            when, with_jid = item.get("when"), item.get("with")
            body = Table({k: v for k, v in item.items() if k not in ("key", "when", "with")})
            if isinstance(body.get("attr"), Table):
                body["attr"] = Table({k: v for k, v in body["attr"].items() if k != "stamp"})
            try:
                el = to_element(body)
            except LuaError as exc:
                tally.errors.append(f"{e.path}: {exc} (skipped)")
                continue
            if el.tag != "{jabber:client}message":
                tally.errors.append(f"{e.path}: an item is a {el.tag}, not a message (skipped)")
                continue
            messages.append((item["key"], el, float(when) if isinstance(when, (int, float)) else 0.0,
                             bare(with_jid) if isinstance(with_jid, str) else None))
        await userdata.add_archive(self.storage, host, e.user, messages, tally, dry_run=self.dry_run)

    async def blocklist(self, host: str, e: Entry, tally: Tally, _done) -> None:
        from ..xmpp.jid import bare
        if not isinstance(e.value, Table):
            raise Skip("not a blocklist")
        jids = set()
        for k, v in e.value.items():
            if isinstance(k, str) and v:
                j = bare(k) if "/" not in k else k
                if j:
                    jids.add(j)
        await userdata.merge_blocklist(self.storage, host, e.user, jids, tally, dry_run=self.dry_run)

    async def pep(self, host: str, e: Entry, tally: Tally, _done) -> None:
        nodes = []
        for name, (rec, items) in e.value.items():
            try:
                nodes.append(pep_node(name, rec, items))
            except (LuaError, ValueError) as exc:
                tally.errors.append(f"{e.path}: node {name}: {exc} (skipped)")
        await userdata.merge_pep(self.storage, host, e.user, nodes, tally, dry_run=self.dry_run)


def encode_name_store(s: str) -> str:
    """A store name as Prosody writes it in a path (``_`` and letters kept)."""
    return "".join(c if (c.isalnum() and c.isascii()) or c == "_" else
                   "".join(f"%{b:02x}" for b in c.encode("utf-8")) for c in s)


def _last_payload(items: list) -> ET.Element | None:
    """The payload of the last item of a PEP node's archive (``.list``)."""
    for item in reversed(items):
        if not isinstance(item, Table):
            continue
        t = Table({k: v for k, v in item.items() if k not in ("key", "when", "with")})
        if isinstance(t.get("attr"), Table):
            t["attr"] = Table({k: v for k, v in t["attr"].items() if k != "stamp"})
        el = to_element(t, "")
        if el.tag.endswith("}item"):
            children = list(el)
            if not children:
                continue
            el = children[0]
        return el
    return None


def _avatar(src, host: str, user: str) -> tuple[tuple[str | None, str] | None, str]:
    """``((type, base64 data), digest of what was read)`` of the user's PEP avatar."""
    meta_rows = src.archive(host, "pep_urn:xmpp:avatar:metadata", user)
    data_rows = src.archive(host, "pep_urn:xmpp:avatar:data", user)
    if not meta_rows or not data_rows:
        return None, ""
    (_, _, meta_digest, meta_items), (_, _, data_digest, data_items) = meta_rows[0], data_rows[0]
    for v in (meta_items, data_items):
        if isinstance(v, Exception):
            raise LuaError(str(v))
    digests = meta_digest + data_digest
    meta = _last_payload(meta_items)
    info = meta.find("{urn:xmpp:avatar:metadata}info") if meta is not None else None
    if info is None or not info.get("id"):
        return None, digests
    for item in data_items:
        if isinstance(item, Table) and item.get("key") == info.get("id"):
            payload = _last_payload([item])
            if payload is not None and payload.text:
                return (info.get("type"), "".join(payload.text.split())), digests
    return None, digests


# Prosody's node configuration names (mod_pubsub's node_config_form) -> XEP-0060 fields
_PEP_FIELDS = {"payload_type": "pubsub#type", "notify_items": "pubsub#deliver_notifications",
               "include_payload": "pubsub#deliver_payloads"}
# mod_pep's node_defaults over util/pubsub's defaults
_PEP_DEFAULTS = {"pubsub#max_items": 1, "pubsub#persist_items": True,
                 "pubsub#access_model": "presence", "pubsub#publish_model": "publishers",
                 "pubsub#send_last_published_item": "on_sub_and_presence"}


def pep_node(name: str, rec, items: list):
    """A :class:`.pepstore.PepNode` from Prosody's node record (``pep`` map) and the
    items of its archive (oldest first; the newest of an id wins)."""
    from . import pepstore
    from ..xmpp.stanza import to_xml
    if not isinstance(rec, Table):
        raise LuaError("not a node record")
    node = pepstore.PepNode(name, dict(_PEP_DEFAULTS))
    config = rec.get("config") if isinstance(rec.get("config"), Table) else Table()
    for key, value in config.items():
        if not isinstance(key, str):
            continue
        var = _PEP_FIELDS.get(key, "pubsub#" + key)
        if isinstance(value, Table):
            value = [v for v in value.values() if isinstance(v, str)]
        try:
            node.config[var] = pepstore.config_value(var, value)
        except ValueError:
            if var == "pubsub#access_model":     # one xmppd lacks: the closest closed one
                node.config[var] = "whitelist"
    affs = rec.get("affiliations") if isinstance(rec.get("affiliations"), Table) else Table()
    for jid, aff in affs.items():
        if isinstance(jid, str) and aff in pepstore.AFFILIATIONS:
            node.affiliations[jid] = aff
    subs = rec.get("subscribers") if isinstance(rec.get("subscribers"), Table) else Table()
    for jid, sub in subs.items():
        if isinstance(jid, str) and sub:
            node.subscriptions[jid] = "subscribed"
    by_id: dict = {}
    for item in items:
        if not isinstance(item, Table) or not isinstance(item.get("key"), str):
            continue
        payload = _last_payload([item])
        when = item.get("when")
        publisher = item.get("with")
        by_id.pop(item["key"], None)
        by_id[item["key"]] = pepstore.PepItem(
            item["key"], to_xml(payload) if payload is not None else "",
            publisher if isinstance(publisher, str) else "",
            float(when) if isinstance(when, (int, float)) else 0.0)
    node.items = list(by_id.values())[-pepstore.limit(node):]
    return node


def scram_credentials(rec: Table) -> dict:
    """xmppd credentials from an ``internal_hashed`` record: SCRAM-SHA-1 keys (20
    bytes; Prosody's default), or SCRAM-SHA-256 ones (32 bytes: Prosody 13 with
    ``password_hash = "SHA-256"``); Prosody 13's ``disabled`` flag is kept."""
    from ..core.credentials import MIN_ITERATIONS
    try:
        salt = rec["salt"]
        stored = binascii.unhexlify(rec["stored_key"])
        server = binascii.unhexlify(rec["server_key"])
        iterations = rec["iteration_count"]
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise Skip("not an internal_hashed account (stored_key, server_key, salt, "
                   "iteration_count)") from None
    hash_key = {20: "scram-sha-1", 32: "scram-sha-256"}.get(len(stored))
    if not isinstance(salt, str) or hash_key is None or len(server) != len(stored):
        raise Skip("keys of neither SCRAM-SHA-1 nor SCRAM-SHA-256")
    if not isinstance(iterations, int) or iterations < MIN_ITERATIONS:
        raise Skip(f"iteration count {iterations!r} below {MIN_ITERATIONS}")
    b64 = lambda b: base64.b64encode(b).decode("ascii")   # noqa: E731
    creds = {"iterations": iterations, "salt": b64(salt.encode("utf-8")),
             hash_key: {"stored_key": b64(stored), "server_key": b64(server)}}
    if rec.get("disabled") is True:
        creds["disabled"] = True
    return creds


def pick_source(args, hosts: list[str]):
    """Flat files or SQLite: ``--sql FILE`` (relative to DATA_PATH, as Prosody's
    ``database``), a DATA_PATH that is a file, or a DATA_PATH holding
    ``prosody.sqlite`` and no host directory; ``--internal`` insists on flat files."""
    from . import ctl
    from .prosody_sql import SqlError
    base = Path(args.data_path) if args.data_path else None
    sql = Path(args.sql) if args.sql else None
    if base is None and sql is None:
        raise ctl.CtlError("say where Prosody's data is: DATA_PATH (e.g. /var/lib/prosody) "
                           "or --sql FILE")
    if sql is not None and base is not None and not sql.is_absolute():
        sql = base / sql
    if sql is None and base is not None and base.is_file():
        sql = base
    if sql is None and not args.internal:
        if not base.is_dir():
            raise ctl.CtlError(f"{base}: not a directory (Prosody's data_path, e.g. /var/lib/prosody)")
        candidate = base / "prosody.sqlite"
        if candidate.is_file():
            flat = [h for h in hosts if (base / encode_name(h)).is_dir()]
            if flat:
                raise ctl.CtlError(
                    f"{base} has both flat files ({base / encode_name(flat[0])}) and "
                    f"{candidate}: say which Prosody used, --internal (storage = \"internal\") "
                    f"or --sql {candidate.name} (storage = \"sql\")")
            sql = candidate
    if sql is not None:
        if not sql.is_file():
            raise ctl.CtlError(f"{sql}: no such file (Prosody's SQLite database)")
        try:
            return SqlSource(sql)
        except SqlError as exc:
            raise ctl.CtlError(str(exc)) from None
    if not base.is_dir():
        raise ctl.CtlError(f"{base}: not a directory (Prosody's data_path, e.g. /var/lib/prosody)")
    return FlatSource(base)


async def cmd_import_prosody(args, cfg) -> int:
    from . import ctl
    from ..core.accounts import Accounts
    if not args.dry_run:
        ctl.refuse_while_running(cfg, "importing (it keeps rosters and block lists in memory), "
                                 "or try --dry-run")
    hosts = ctl.selected_hosts(cfg, args.host)
    src = pick_source(args, hosts)
    try:
        storage = await ctl.open_storage(cfg)
        try:
            imp = Importer(storage, Accounts(storage), src, dry_run=args.dry_run, out=print)
            if args.dry_run:
                print(f"dry run: nothing is written (reading {src.describe})")
            for host in hosts:
                await imp.run_host(host)
        finally:
            await storage.close()
    finally:
        src.close()
    t = imp.total
    if t.imported:
        print(f"{'would import' if args.dry_run else 'imported'} {t.imported}, "
              f"{t.unchanged} unchanged, {t.kept} kept, {len(t.errors)} skipped")
    else:
        print(f"nothing to import: {t.unchanged} unchanged, {t.kept} kept, "
              f"{len(t.errors)} skipped")
    return 1 if t.errors else 0


def register(sub, common, add) -> None:
    p = add("import", None, "import accounts and their data from another server "
            "(import prosody DATA_PATH, import xep227 FILE)")
    kinds = p.add_subparsers(dest="source", metavar="prosody|xep227")
    kinds.required = True
    q = kinds.add_parser("prosody", parents=[common],
                         help="Prosody's storage, flat files or SQLite: accounts (passwords "
                         "unchanged), rosters, vCards, private XML, offline messages, archives, "
                         "block lists, PEP nodes")
    q.set_defaults(func=cmd_import_prosody)
    q.add_argument("data_path", metavar="DATA_PATH", nargs="?",
                   help="Prosody's data_path, e.g. /var/lib/prosody (flat files, or the "
                   "prosody.sqlite there)")
    q.add_argument("--sql", metavar="FILE",
                   help="Prosody's SQLite database (storage = \"sql\"), relative to DATA_PATH")
    q.add_argument("--internal", action="store_true",
                   help="read the flat files (storage = \"internal\") even if DATA_PATH "
                   "has a prosody.sqlite")
    q.add_argument("--dry-run", action="store_true", help="say what would be imported, write nothing")
    q.add_argument("--host", action="append", metavar="HOST",
                   help="only this VirtualHost (repeatable; default: every enabled one)")
    return kinds

"""``xmppctl import prosody DATA_PATH [--dry-run] [--host H]``: accounts and their data
from Prosody's flat-file storage (``storage = "internal"``, Prosody 0.12 and 13).

Prosody keeps ``DATA_PATH/<host>/<store>/<user>.dat`` (``return { ... };``) and
``.list`` files (``item({ ... });`` per item), names %-encoded (``prosody%2eexample``).
For each enabled VirtualHost of xmppd's configuration with a directory there:

* ``accounts``: ``internal_hashed`` records (SCRAM-SHA-1 ``stored_key``, ``server_key``,
  ``salt``, ``iteration_count``) become xmppd credentials holding only the SCRAM-SHA-1
  keys: the password is unchanged (SCRAM-SHA-1 and PLAIN work; SCRAM-SHA-256 is not
  offered on the host while such accounts exist, ``core/accounts.py``; the next
  password change stores both). Prosody 13's SHA-256 records (``password_hash =
  "SHA-256"``, 32-byte keys) give SCRAM-SHA-256 keys. ``internal_plain`` records get
  full credentials from their password;
* ``roster`` (items, and pending subscription requests), ``vcard`` (vcard-temp),
  ``private`` (XEP-0049), ``offline`` (messages waiting) and ``blocklist`` (XEP-0191)
  are written where xmppd's roster service and modules keep them.

The import fills in what xmppd lacks and never overwrites: an account, a roster item,
a vCard or a private fragment that xmppd already has is kept (and counted as such).
What was imported is remembered per user (the ``prosody_import`` store: a digest of
each Prosody file, and the keys of the offline messages), so a second run over the
same files changes nothing and says so, even after users changed things in xmppd,
and offline messages delivered since are not imported twice. A file that cannot be
read is reported with its path and skipped; the rest is imported.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .luadata import FALSE, LuaError, Table, parse_dat, parse_list, to_element
from ..xmpp.vcard4 import vcard4_to_temp

STORES = ("accounts", "roster", "vcard", "private", "offline", "blocklist")
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
class Tally:
    imported: int = 0
    unchanged: int = 0
    kept: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Entry:
    user: str
    path: Path
    digest: str
    value: object


class Importer:
    def __init__(self, storage, accounts, prosody_dir: Path, *, dry_run: bool, out):
        self.storage = storage
        self.accounts = accounts
        self.dir = prosody_dir
        self.dry_run = dry_run
        self.out = out
        self.total = Tally()
        self.sha1_only: list[str] = []   # accounts without SCRAM-SHA-256 keys, per host

    # -- reading ------------------------------------------------------------------

    def entries(self, host_dir: Path, store: str, tally: Tally) -> list[Entry]:
        from ..xmpp.jid import InvalidJID, nodeprep
        d = host_dir / store
        if not d.is_dir():
            return []
        ext = ".list" if store == "offline" else ".dat"
        out = []
        for path in sorted(d.iterdir()):
            if path.suffix != ext or not path.is_file():
                continue
            try:
                user = nodeprep(decode_name(path.stem))
                data = path.read_bytes()
                value = parse_list(data) if ext == ".list" else parse_dat(data)
            except (OSError, LuaError, InvalidJID, UnicodeDecodeError) as exc:
                tally.errors.append(f"{path}: {exc} (skipped)")
                continue
            out.append(Entry(user, path, hashlib.sha256(data).hexdigest(), value))
        return out

    def vcard4_entries(self, host_dir: Path, have: set[str], tally: Tally) -> list[Entry]:
        """vCards that Prosody's ``vcard_legacy`` (Debian's default) keeps as vCard4 in
        PEP (and the avatar in PEP too), for users without a ``vcard/`` file: turned
        into vcard-temp as ``vcard_legacy`` shows them to vcard-temp clients."""
        from ..xmpp.jid import InvalidJID, nodeprep
        d = host_dir / encode_name_store("pep_urn:xmpp:vcard4")
        if not d.is_dir():
            return []
        out = []
        for path in sorted(d.iterdir()):
            if path.suffix != ".list" or not path.is_file():
                continue
            try:
                user = nodeprep(decode_name(path.stem))
                if user in have:
                    continue
                raw = path.read_bytes()
                vcard4 = _last_payload(parse_list(raw))
                photo, more = _avatar(host_dir, path.name)
            except (OSError, LuaError, InvalidJID, UnicodeDecodeError) as exc:
                tally.errors.append(f"{path}: {exc} (skipped)")
                continue
            if vcard4 is None:
                continue
            el = vcard4_to_temp(vcard4, photo)
            out.append(Entry(user, path, hashlib.sha256(raw + more).hexdigest(), el))
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
        host_dir = self.dir / encode_name(host)
        if not host_dir.is_dir():
            self.out(f"{host}: no Prosody data (no {host_dir})")
            return
        known = set(await self.accounts.users(host))
        for store in STORES:
            tally = Tally()
            entries = self.entries(host_dir, store, tally)
            if store == "vcard":
                entries += self.vcard4_entries(host_dir, {e.user for e in entries}, tally)
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
        store = self.storage.map(host, rs.STORE)
        existing = await store.items(e.user)
        values: dict = {}
        for jid, rec in wanted.items():
            old = existing.get(jid)
            if old is None:
                values[jid] = rec
                tally.imported += 1
            elif rs.visible(old) == rs.visible(rec) and bool(old.get("pending_in")) == rec["pending_in"]:
                tally.unchanged += 1
            else:
                tally.kept += 1
        if values and not self.dry_run:
            meta_old = existing.get(rs.META)
            ver = int(meta_old.get("version", 0)) if isinstance(meta_old, dict) else 0
            values[rs.META] = {"version": ver + 1}
            await store.set_many(e.user, values)

    async def _xml_keyval(self, host: str, store_name: str, user: str, el, tally: Tally) -> None:
        from ..xmpp.stanza import to_xml
        kv = self.storage.keyval(host, store_name)
        text = to_xml(el)
        old = await kv.get(user)
        if old is None:
            if not self.dry_run:
                await kv.set(user, text)
            tally.imported += 1
        elif old == text:
            tally.unchanged += 1
        else:
            tally.kept += 1

    async def vcard(self, host: str, e: Entry, tally: Tally, _done) -> None:
        el = e.value if isinstance(e.value, ET.Element) else to_element(e.value, "vcard-temp")
        if el.tag != "{vcard-temp}vCard":
            raise Skip(f"not a vcard-temp vCard ({el.tag})")
        await self._xml_keyval(host, "vcard", e.user, el, tally)

    async def private(self, host: str, e: Entry, tally: Tally, _done) -> None:
        from ..xmpp.stanza import split_tag, to_xml
        if not isinstance(e.value, Table):
            raise Skip("not private XML storage")
        store = self.storage.map(host, "private")
        existing = await store.items(e.user)
        values = {}
        for _key, frag in e.value.items():
            el = to_element(frag, "")
            xmlns, name = split_tag(el.tag)
            if not xmlns or xmlns in ("jabber:client", "jabber:server", "jabber:iq:private"):
                tally.errors.append(f"{e.path}: fragment {el.tag} may not be stored (skipped)")
                continue
            key = f"{name}:{xmlns}"
            text = to_xml(el)
            if key not in existing:
                values[key] = text
                tally.imported += 1
            elif existing[key] == text:
                tally.unchanged += 1
            else:
                tally.kept += 1
        if values and not self.dry_run:
            await store.set_many(e.user, values)

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
        kv = self.storage.keyval(host, "blocklist")
        old = set(await kv.get(e.user) or ())
        new = jids - old
        tally.unchanged += len(jids & old)
        tally.imported += len(new)
        if new and not self.dry_run:
            await kv.set(e.user, sorted(old | jids))


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


def _avatar(host_dir: Path, filename: str) -> tuple[tuple[str | None, str] | None, bytes]:
    """``((type, base64 data), raw bytes read)`` of the user's PEP avatar, if any."""
    meta_path = host_dir / encode_name_store("pep_urn:xmpp:avatar:metadata") / filename
    data_path = host_dir / encode_name_store("pep_urn:xmpp:avatar:data") / filename
    if not meta_path.is_file() or not data_path.is_file():
        return None, b""
    meta_raw, data_raw = meta_path.read_bytes(), data_path.read_bytes()
    meta = _last_payload(parse_list(meta_raw))
    info = meta.find("{urn:xmpp:avatar:metadata}info") if meta is not None else None
    if info is None or not info.get("id"):
        return None, meta_raw + data_raw
    for item in parse_list(data_raw):
        if isinstance(item, Table) and item.get("key") == info.get("id"):
            payload = _last_payload([item])
            if payload is not None and payload.text:
                return (info.get("type"), "".join(payload.text.split())), meta_raw + data_raw
    return None, meta_raw + data_raw


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


async def cmd_import_prosody(args, cfg) -> int:
    from . import ctl
    from ..core.accounts import Accounts
    from ..xmpp.jid import InvalidJID, nameprep
    src = Path(args.data_path)
    if not src.is_dir():
        raise ctl.CtlError(f"{src}: not a directory (Prosody's data_path, e.g. /var/lib/prosody)")
    if not args.dry_run and ctl.call_running(cfg, "status", required=False) is not ctl.NOT_RUNNING:
        raise ctl.CtlError("xmppd is running: stop it before importing (it keeps rosters and "
                           "block lists in memory), or try --dry-run")
    hosts = [h.name for h in cfg.virtual_hosts() if h.enabled]
    if args.host:
        try:
            wanted = [nameprep(h) for h in args.host]
        except InvalidJID as exc:
            raise ctl.CtlError(f"invalid host: {exc}") from None
        for h in wanted:
            ctl.check_domain(cfg, h)
        hosts = wanted
    storage = await ctl.open_storage(cfg)
    try:
        imp = Importer(storage, Accounts(storage), src, dry_run=args.dry_run, out=print)
        if args.dry_run:
            print(f"dry run: nothing is written (reading {src})")
        for host in hosts:
            await imp.run_host(host)
    finally:
        await storage.close()
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
            "(import prosody DATA_PATH)")
    kinds = p.add_subparsers(dest="source", metavar="prosody")
    kinds.required = True
    q = kinds.add_parser("prosody", parents=[common],
                         help="Prosody's internal storage: accounts (passwords unchanged), "
                         "rosters, vCards, private XML, offline messages, block lists")
    q.set_defaults(func=cmd_import_prosody)
    q.add_argument("data_path", metavar="DATA_PATH", help="Prosody's data_path, e.g. /var/lib/prosody")
    q.add_argument("--dry-run", action="store_true", help="say what would be imported, write nothing")
    q.add_argument("--host", action="append", metavar="HOST",
                   help="only this VirtualHost (repeatable; default: every enabled one)")

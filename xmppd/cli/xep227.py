"""XEP-0227 (Portable Import/Export Format): ``xmppctl export [--host H] FILE`` and
``xmppctl import xep227 FILE [--dry-run] [--host H]``.

The file is ``<server-data xmlns='urn:xmpp:pie:0'>`` with a ``<host jid=.../>`` per
VirtualHost and a ``<user name=.../>`` per account. What is carried, per user:

* the credentials: ``<scram-credentials xmlns='urn:xmpp:pie:0#scram'>`` (SCRAM-SHA-1 and
  SCRAM-SHA-256 keys, the password itself staying unknown), or a ``password``
  attribute (plaintext, as older exports have it; xmppd never writes one);
* the roster (``jabber:iq:roster``) and incoming subscription requests
  (``<presence type='subscribe'/>``), the vCard (``vcard-temp``), private XML
  (``jabber:iq:private``), ``<offline-messages/>``;
* PEP nodes: ``<pubsub xmlns='http://jabber.org/protocol/pubsub'>`` (items) and
  ``<pubsub xmlns='...#owner'>`` (configuration forms, affiliations, subscriptions),
  the layout Prosody's ``mod_storage_xep0227`` uses;
* the block list (XEP-0191) as ``<blocklist xmlns='urn:xmpp:blocking'>``, an
  extension (XEP-0227 has no element for it), and on import also ejabberd's block
  list, its privacy list "Blocked contacts";
* the message archive (MAM) as ``<archive xmlns='urn:xmpp:pie:0#mam'>`` (XEP-0227 1.1).

Not carried: privacy lists other than ejabberd's block list (they are counted and
reported). ejabberd's ``export_piefxis`` writes a top-level file that
includes one file per host (XInclude, ``<xi:include href=.../>``), keys base64-encoded
twice (ejabberd 23.01); both are read.

Import reads the file as a stream (lxml's ``iterparse``): one ``<user/>`` at a time is
in memory, converted whole (a user with bad data is reported with file and line and
skipped: nothing of it is written), then written by filling in what xmppd lacks, as
``import prosody`` does (:mod:`.userdata`). On a terminal a progress line shows the
bytes read. Export writes the file under a temporary name, mode 0600 (it holds
credentials), and renames it when complete.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .userdata import Tally

NS = "urn:xmpp:pie:0"
OLD_NS = "http://www.xmpp.org/extensions/xep-0227.html#ns"   # ejabberd before 15.x
PIE_NS = (NS, OLD_NS, "")
XI = "http://www.w3.org/2001/XInclude"
SCRAM = "urn:xmpp:pie:0#scram"
MAM = "urn:xmpp:pie:0#mam"
CLIENT = "jabber:client"
ROSTER = "jabber:iq:roster"
PRIVATE = "jabber:iq:private"
PRIVACY = "jabber:iq:privacy"
VCARD = "vcard-temp"
BLOCKING = "urn:xmpp:blocking"
PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"
XDATA = "jabber:x:data"
DELAY = "urn:xmpp:delay"
MAM2 = "urn:xmpp:mam:2"
FORWARD = "urn:xmpp:forward:0"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
MECHANISMS = {"SCRAM-SHA-1": ("scram-sha-1", 20), "SCRAM-SHA-256": ("scram-sha-256", 32)}
STORES = ("accounts", "roster", "vcard", "private", "offline", "archive", "blocklist", "pep")
MARKER = "xep227_import"
MAX_INCLUDE_DEPTH = 4


class InputError(Exception):
    """Bad input; the message starts with ``FILE:LINE:``."""


def split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


# -- reading the file, streamed --------------------------------------------------------

class Progress:
    """``reading FILE: 12.5 MB of 300.0 MB (4%)`` on a terminal's line, redrawn at most
    every 0.2 s; nothing when ``stream`` is not a terminal."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = 0.0
        self.shown = False

    def update(self, name: str, done: int, total: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        pct = f" ({done * 100 // total}%)" if total else ""
        self.stream.write(f"\rreading {name}: {done / 1e6:.1f} MB of {total / 1e6:.1f} MB{pct}\x1b[K")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.enabled and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class _Counting:
    def __init__(self, f, path: Path, progress: Progress | None):
        self.f = f
        self.n = 0
        self.name = path.name
        self.total = os.fstat(f.fileno()).st_size
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.n += len(data)
        if self.progress is not None:
            self.progress.update(self.name, self.n, self.total, force=not data)
        return data


def _forget(el) -> None:
    """Free what iterparse built so far: the element's content and the siblings before it."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def read_dump(path: Path, progress: Progress | None = None, _depth: int = 0):
    """Yield ``("host", jid, where)``, ``("user", host, element, where)`` and
    ``("end-host", jid, where)`` from a XEP-0227 file and the files it includes;
    ``element`` is a standalone ElementTree element. InputError on malformed XML,
    an unknown root, an unreadable file."""
    from lxml import etree
    if _depth > MAX_INCLUDE_DEPTH:
        raise InputError(f"{path}: XInclude nested more than {MAX_INCLUDE_DEPTH} deep")
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    with f:
        src = _Counting(f, path, progress)
        events = etree.iterparse(src, events=("start", "end"), resolve_entities=False,
                                 no_network=True, load_dtd=False, remove_comments=True,
                                 remove_pis=True)
        host = None
        depth = 0
        try:
            for event, el in events:
                ns, local = split(el.tag) if isinstance(el.tag, str) else ("", "")
                if event == "start":
                    depth += 1
                    if depth == 1 and (ns not in PIE_NS or local not in ("server-data", "host")):
                        raise InputError(f"{path}:{el.sourceline}: <{local}/> in {ns or 'no namespace'}"
                                         f" is not XEP-0227 data (<server-data xmlns='{NS}'/>)")
                    if depth == 1 and el.getroottree().docinfo.doctype:
                        raise InputError(f"{path}:1: a DOCTYPE (DTD, entities) has no place in "
                                         "XEP-0227 data")
                    if local == "host" and ns in PIE_NS and depth <= 2:
                        host = el.get("jid") or ""
                        yield ("host", host, f"{path}:{el.sourceline}")
                    continue
                depth -= 1
                parent = el.getparent()
                pns, plocal = split(parent.tag) if parent is not None else ("", "")
                if local == "user" and ns in PIE_NS and plocal == "host" and pns in PIE_NS:
                    where = f"{path}:{el.sourceline}"
                    try:
                        user = ET.fromstring(etree.tostring(el))
                    except ET.ParseError as exc:
                        raise InputError(f"{where}: {exc}") from None
                    _forget(el)
                    yield ("user", host, user, where)
                elif local == "include" and ns == XI and depth <= 2:
                    href = el.get("href") or ""
                    where = f"{path}:{el.sourceline}"
                    _forget(el)
                    if not href or "://" in href:
                        raise InputError(f"{where}: <xi:include/> needs a relative file name in href")
                    yield from read_dump(path.parent / href, progress, _depth + 1)
                elif local == "host" and ns in PIE_NS and depth <= 1:
                    yield ("end-host", host, f"{path}:{el.sourceline}")
                    host = None
                    _forget(el)
                elif parent is not None and (parent.getparent() is None or
                                             (plocal == "host" and pns in PIE_NS)):
                    _forget(el)      # something else beside the users: not kept either
        except etree.XMLSyntaxError as exc:
            line = exc.lineno if exc.lineno else "?"
            raise InputError(f"{path}:{line}: malformed XML: {exc.msg}") from None


# -- one user, converted -----------------------------------------------------------------

@dataclass
class UserData:
    name: str
    password: str | None = None
    creds: dict | None = None
    roster: dict | None = None            # contact -> roster record
    vcard: str | None = None
    private: dict | None = None           # name:ns -> XML text
    offline: list = field(default_factory=list)   # (key, element, when)
    archive: list = field(default_factory=list)   # (key, element, when, with)
    blocklist: set | None = None
    pep: list = field(default_factory=list)       # pepstore.PepNode
    not_imported: list = field(default_factory=list)


def _unb64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None


def scram_credentials(els: list) -> dict | None:
    """xmppd credentials from ``<scram-credentials/>`` elements: the SCRAM-SHA-256 keys
    and, if they share its salt and iteration count, the SCRAM-SHA-1 ones (xmppd keeps
    one salt per account); else the SCRAM-SHA-1 keys alone."""
    from ..core.credentials import MIN_ITERATIONS
    found = {}
    for el in els:
        mech = el.get("mechanism") or ""
        if mech not in MECHANISMS:
            continue
        key, size = MECHANISMS[mech]
        text = {n: el.findtext(f"{{{SCRAM}}}{n}") for n in ("iter-count", "salt", "server-key", "stored-key")}
        try:
            iterations = int((text["iter-count"] or "").strip())
        except ValueError:
            raise ValueError(f"{mech}: iter-count is not a number") from None
        if iterations < MIN_ITERATIONS:
            raise ValueError(f"{mech}: iteration count {iterations} below {MIN_ITERATIONS}")
        stored = _unb64(text["stored-key"], f"{mech} stored-key")
        server = _unb64(text["server-key"], f"{mech} server-key")
        salt = _unb64(text["salt"], f"{mech} salt")
        if len(stored) != size:
            # ejabberd (23.01) base64-encodes its already base64-encoded keys and salt
            try:
                stored = _unb64(stored.decode("ascii"), "")
                server = _unb64(server.decode("ascii"), "")
                salt = _unb64(salt.decode("ascii"), "")
            except (ValueError, UnicodeDecodeError):
                pass
        if len(stored) != size or len(server) != size:
            raise ValueError(f"{mech}: keys are not {size} bytes")
        if not salt:
            raise ValueError(f"{mech}: empty salt")
        found[key] = (iterations, salt, stored, server)
    if not found:
        return None
    main = found.get("scram-sha-256") or found["scram-sha-1"]
    b64 = lambda b: base64.b64encode(b).decode("ascii")   # noqa: E731
    creds = {"iterations": main[0], "salt": b64(main[1])}
    for key, (iterations, salt, stored, server) in found.items():
        if (iterations, salt) == main[:2]:
            creds[key] = {"stored_key": b64(stored), "server_key": b64(server)}
    return creds


def _client_ns(el: ET.Element) -> ET.Element:
    """A stanza whose namespace is the dump's (inherited default) put in jabber:client."""
    for e in el.iter():
        ns, local = split(e.tag)
        if ns in (NS, OLD_NS):
            e.tag = f"{{{CLIENT}}}{local}"
    return el


def _form_values(x: ET.Element) -> dict[str, list[str]]:
    out = {}
    for f in x.findall(f"{{{XDATA}}}field"):
        var = f.get("var")
        if var:
            out[var] = [v.text or "" for v in f.findall(f"{{{XDATA}}}value")]
    return out


def convert_user(el: ET.Element, host: str) -> UserData:
    """Everything of one ``<user/>``, checked; ValueError says what is wrong."""
    from . import pepstore
    from ..core import roster as rs
    from ..xmpp.jid import InvalidJID, bare, nodeprep
    from ..xmpp.stanza import add_delay, to_xml
    from ..xmpp.time import parse_stamp
    try:
        name = nodeprep(el.get("name") or "")
    except InvalidJID as exc:
        raise ValueError(f"user name {el.get('name')!r}: {exc}") from None
    u = UserData(name)
    me = f"{name}@{host}"
    if el.get("password"):
        u.password = el.get("password")
    u.creds = scram_credentials(el.findall(f"{{{SCRAM}}}scram-credentials"))
    pending = {}
    for child in el:
        ns, local = split(child.tag)
        if (ns, local) == (ROSTER, "query"):
            u.roster = {}
            for item in child.findall(f"{{{ROSTER}}}item"):
                jid = bare(item.get("jid") or "")
                if jid is None:
                    raise ValueError(f"roster item {item.get('jid')!r} is not a JID")
                if jid == me:
                    continue
                rec = rs.new_item()
                sub = item.get("subscription")
                rec["subscription"] = sub if sub in ("none", "to", "from", "both") else "none"
                rec["ask"] = "subscribe" if item.get("ask") == "subscribe" else None
                rec["name"] = item.get("name") or None
                rec["approved"] = item.get("approved") in ("true", "1")
                rec["groups"] = sorted({g.text for g in item.findall(f"{{{ROSTER}}}group") if g.text})
                u.roster[jid] = rec
        elif local == "presence" and ns in (CLIENT, *PIE_NS) and child.get("type") == "subscribe":
            jid = bare(child.get("from") or "")
            if jid is None:
                raise ValueError(f"subscription request from {child.get('from')!r}: not a JID")
            req = ET.Element(f"{{{CLIENT}}}presence", {"type": "subscribe"})
            for c in child:
                cns, clocal = split(c.tag)
                if clocal in ("status", "nick") and c.text:
                    _client_ns(c)
                    c.tail = None
                    req.append(c)
            pending[jid] = to_xml(req)
        elif (ns, local) == (VCARD, "vCard"):
            u.vcard = to_xml(child)
        elif (ns, local) == (PRIVATE, "query"):
            u.private = {}
            for frag in child:
                fns, flocal = split(frag.tag)
                if not fns or fns in (CLIENT, "jabber:server", PRIVATE):
                    raise ValueError(f"private XML <{flocal}/> in {fns or 'no namespace'} may not be stored")
                frag.tail = None
                u.private[f"{flocal}:{fns}"] = to_xml(frag)
        elif local == "offline-messages" and ns in PIE_NS:
            for msg in child:
                mns, mlocal = split(msg.tag)
                if mlocal != "message" or mns not in (CLIENT, *PIE_NS):
                    raise ValueError(f"<{mlocal}/> in offline-messages is not a message")
                msg = _client_ns(msg)
                msg.tail = None
                delay = msg.find(f"{{{DELAY}}}delay")
                when = None
                if delay is not None:
                    try:
                        when = parse_stamp(delay.get("stamp"))
                    except Exception:
                        raise ValueError(f"offline message: bad delay stamp {delay.get('stamp')!r}") from None
                else:
                    when = time.time()
                    add_delay(msg, host, when)
                key = hashlib.sha256(to_xml(msg).encode()).hexdigest()[:24]
                u.offline.append((key, msg, when))
        elif (ns, local) == (BLOCKING, "blocklist"):
            u.blocklist = set()
            for item in child.findall(f"{{{BLOCKING}}}item"):
                j = item.get("jid") or ""
                jid = bare(j) if "/" not in j else j
                if not jid:
                    raise ValueError(f"blocked {j!r} is not a JID")
                u.blocklist.add(jid)
        elif (ns, local) == (PRIVACY, "query"):
            # ejabberd keeps XEP-0191 blocks as the privacy list "Blocked contacts"
            for lst in child.findall(f"{{{PRIVACY}}}list"):
                if lst.get("name") == "Blocked contacts":
                    u.blocklist = u.blocklist or set()
                    for item in lst.findall(f"{{{PRIVACY}}}item"):
                        if item.get("type") == "jid" and item.get("action") == "deny" and item.get("value"):
                            u.blocklist.add(item.get("value"))
                else:
                    u.not_imported.append(f"privacy list {lst.get('name')!r}")
        elif (ns, local) in ((PUBSUB, "pubsub"), (OWNER, "pubsub")):
            pass   # below, once both are seen
        elif (ns, local) == (MAM, "archive"):
            for res in child:
                if split(res.tag)[1] != "result" or not res.get("id"):
                    raise ValueError("archive: an entry is not a <result id=.../>")
                msg = res.find(f"{{{FORWARD}}}forwarded/{{{CLIENT}}}message")
                delay = res.find(f"{{{FORWARD}}}forwarded/{{{DELAY}}}delay")
                stamp = delay.get("stamp") if delay is not None else None
                if msg is None or not stamp:
                    raise ValueError(f"archive: result {res.get('id')!r} has no forwarded message "
                                     "with a delay")
                try:
                    when = parse_stamp(stamp)
                except Exception:
                    raise ValueError(f"archive: result {res.get('id')!r}: bad stamp {stamp!r}") from None
                msg.tail = None
                to_bare, from_bare = bare(msg.get("to") or ""), bare(msg.get("from") or "")
                u.archive.append((res.get("id"), msg, when, from_bare if to_bare == me else to_bare))
    if pending:
        u.roster = u.roster if u.roster is not None else {}
        for jid, req in pending.items():
            rec = u.roster.get(jid) or rs.new_item(listed=False)
            if rec["subscription"] in ("from", "both"):
                continue
            rec["pending_in"] = True
            rec["request"] = req
            u.roster[jid] = rec
    nodes: dict[str, pepstore.PepNode] = {}

    def node(name: str | None) -> pepstore.PepNode:
        if not name:
            raise ValueError("a PEP node without a name")
        return nodes.setdefault(name, pepstore.PepNode(name))

    for ps in el.findall(f"{{{OWNER}}}pubsub"):
        for part in ps:
            _, plocal = split(part.tag)
            n = node(part.get("node"))
            if plocal == "configure":
                x = part.find(f"{{{XDATA}}}x")
                for var, values in (_form_values(x) if x is not None else {}).items():
                    if var == "FORM_TYPE" or var not in pepstore.CONFIG_FIELDS:
                        continue
                    value = values if pepstore.multi(var) else (values[0] if values else "")
                    try:
                        n.config[var] = pepstore.config_value(var, value)
                    except ValueError as exc:
                        raise ValueError(f"PEP node {n.name}: {exc}") from None
            elif plocal == "affiliations":
                for a in part.findall(f"{{{OWNER}}}affiliation"):
                    if a.get("jid") and a.get("affiliation") in pepstore.AFFILIATIONS:
                        n.affiliations[a.get("jid")] = a.get("affiliation")
            elif plocal == "subscriptions":
                for s in part.findall(f"{{{OWNER}}}subscription"):
                    if s.get("jid") and (s.get("subscription") or s.get("subscribed")) == "subscribed":
                        n.subscriptions[s.get("jid")] = "subscribed"
    for ps in el.findall(f"{{{PUBSUB}}}pubsub"):
        for items in ps.findall(f"{{{PUBSUB}}}items"):
            n = node(items.get("node"))
            by_id = {}
            for it in items.findall(f"{{{PUBSUB}}}item"):
                iid = it.get("id")
                if not iid:
                    raise ValueError(f"PEP node {n.name}: an item without id")
                payload = next(iter(it), None)
                if payload is not None:
                    payload.tail = None
                try:
                    when = float(it.get("when") or 0.0)   # our own extension attribute
                except ValueError:
                    when = 0.0
                by_id.pop(iid, None)
                by_id[iid] = pepstore.PepItem(iid, to_xml(payload) if payload is not None else "",
                                              it.get("publisher") or me, when)
            n.items = list(by_id.values())
    u.pep = list(nodes.values())
    return u


# -- writing into xmppd ------------------------------------------------------------------

class Importer:
    def __init__(self, storage, accounts, *, dry_run: bool, out):
        self.storage = storage
        self.accounts = accounts
        self.dry_run = dry_run
        self.out = out
        self.tallies: dict[str, Tally] = {}
        self.total = Tally()
        self.errors: list[str] = []
        self.users = 0
        self.sha1_only: list[str] = []
        self.not_imported: dict[str, int] = {}

    def tally(self, store: str) -> Tally:
        return self.tallies.setdefault(store, Tally())

    async def user(self, host: str, el: ET.Element, where: str) -> None:
        from ..core.credentials import _prepare, make_credentials_async, verify_password_async
        from . import userdata
        try:
            u = convert_user(el, host)
            existing = await self.accounts.get_credentials(host, u.name)
            creds = u.creds
            if existing is None and u.password is not None:
                if self.dry_run:      # the password is checked (SASLprep), no PBKDF2 run
                    _prepare(u.password)
                    creds = {"scram-sha-256": {}}
                else:
                    creds = await make_credentials_async(u.password)   # both SCRAM hashes
        except ValueError as exc:
            self.errors.append(f"{where}: user {el.get('name')!r}: {exc} (user skipped)")
            return
        if existing is None and creds is None:
            self.errors.append(f"{where}: user {u.name!r}: no password and no SCRAM credentials "
                               "(user skipped)")
            return
        self.users += 1
        t = self.tally("accounts")
        if existing is None:
            if not self.dry_run:
                await self.storage.keyval(host, "accounts").set(u.name, creds)
            t.imported += 1
            existing = creds
        elif u.password is not None:
            same = await verify_password_async(existing, u.password)
            t.unchanged += same
            t.kept += not same
        elif creds and any(k in creds and userdata.same_credentials(existing, creds, k)
                           for k in ("scram-sha-256", "scram-sha-1")):
            t.unchanged += 1
        else:
            t.kept += 1
        if "scram-sha-256" not in existing:
            self.sha1_only.append(u.name)
        dry = self.dry_run
        if u.roster is not None:
            await userdata.merge_roster(self.storage, host, u.name, u.roster, self.tally("roster"), dry_run=dry)
        if u.vcard is not None:
            await userdata.merge_xml_keyval(self.storage, host, "vcard", u.name, u.vcard,
                                            self.tally("vcard"), dry_run=dry)
        if u.private:
            await userdata.merge_private(self.storage, host, u.name, u.private, self.tally("private"), dry_run=dry)
        if u.offline:
            kv = self.storage.keyval(host, MARKER)
            mark = await kv.get(u.name) or {}
            seen = set(mark.get("offline") or ())
            keys = await userdata.add_offline(self.storage, host, u.name, u.offline, seen,
                                              self.tally("offline"), dry_run=dry)
            if not dry and not seen.issuperset(keys):
                await kv.set(u.name, {**mark, "offline": sorted(seen | set(keys))})
        if u.archive:
            await userdata.add_archive(self.storage, host, u.name, u.archive, self.tally("archive"),
                                       dry_run=dry)
        if u.blocklist:
            await userdata.merge_blocklist(self.storage, host, u.name, u.blocklist, self.tally("blocklist"),
                                           dry_run=dry)
        if u.pep:
            await userdata.merge_pep(self.storage, host, u.name, u.pep, self.tally("pep"), dry_run=dry)
        for what in u.not_imported:
            kind = what.split(" (")[0].split(" '")[0]
            self.not_imported[kind] = self.not_imported.get(kind, 0) + 1

    async def end_host(self, host: str) -> None:
        if self.sha1_only and not self.dry_run:
            await self.accounts.mark_sha1_only(host, self.sha1_only)
        self.sha1_only = []
        verb = "to import" if self.dry_run else "imported"
        for store in STORES:
            t = self.tallies.get(store)
            if t is None or not (t.imported or t.unchanged or t.kept):
                continue
            parts = [f"{t.imported} {verb}", f"{t.unchanged} unchanged"]
            if t.kept:
                parts.append(f"{t.kept} kept (xmppd has its own, not overwritten)")
            self.out(f"{host} {store}: {', '.join(parts)}")
            self.total.add(t)
        for kind, n in sorted(self.not_imported.items()):
            self.out(f"{host}: not imported: {kind} of {n} user(s)")
        self.tallies = {}
        self.not_imported = {}


async def cmd_import_xep227(args, cfg) -> int:
    from . import ctl
    from ..core.accounts import Accounts
    from ..xmpp.jid import InvalidJID, nameprep
    path = Path(args.file)
    if not path.is_file():
        raise ctl.CtlError(f"{path}: no such file (a XEP-0227 export, e.g. ejabberdctl export_piefxis's "
                           "top-level file)")
    if not args.dry_run:
        ctl.refuse_while_running(cfg, "importing (it keeps rosters and block lists in memory), "
                                 "or try --dry-run")
    configured = {h.name for h in cfg.virtual_hosts() if h.enabled}
    wanted = set(ctl.selected_hosts(cfg, args.host)) if args.host else None
    storage = await ctl.open_storage(cfg)
    progress = Progress()
    imp = Importer(storage, Accounts(storage), dry_run=args.dry_run, out=print)
    failed = None
    try:
        if args.dry_run:
            print(f"dry run: nothing is written (reading {path})")
        host = None
        skipping = False
        for event in read_dump(path, progress):
            if event[0] == "host":
                progress.done()
                try:
                    host = nameprep(event[1])
                except InvalidJID:
                    host = event[1]
                skipping = False
                if wanted is not None and host not in wanted:
                    skipping = True
                    print(f"{host}: not selected (skipped)")
                elif host not in configured:
                    skipping = True
                    imp.errors.append(f"{event[2]}: host {event[1]!r} is not an enabled VirtualHost "
                                      "of this xmppd (its users skipped)")
            elif event[0] == "user":
                if not skipping:
                    await imp.user(host, event[2], event[3])
            elif event[0] == "end-host":
                progress.done()
                if not skipping:
                    await imp.end_host(host)
                host = None
    except InputError as exc:
        failed = str(exc)
    finally:
        progress.done()
        await storage.close()
    for line in imp.errors:
        print(f"error: {line}")
    if failed:
        print(f"error: {failed} (reading stopped there; the users before it were imported)")
    t = imp.total
    skipped = len(imp.errors) + bool(failed)
    if t.imported:
        print(f"{'would import' if args.dry_run else 'imported'} {t.imported}, "
              f"{t.unchanged} unchanged, {t.kept} kept, {skipped} error(s)")
    else:
        print(f"nothing to import: {t.unchanged} unchanged, {t.kept} kept, {skipped} error(s)")
    return 1 if skipped else 0


# -- export --------------------------------------------------------------------------------

def user_element(host: str, user: str, data: dict) -> ET.Element:
    from ..core import roster as rs
    from ..xmpp.stanza import from_xml
    el = ET.Element(f"{{{NS}}}user", {"name": user})
    creds = data["credentials"] or {}
    for key in ("scram-sha-1", "scram-sha-256"):
        keys = creds.get(key)
        if not isinstance(keys, dict):
            continue
        mech = next(m for m, (k, _) in MECHANISMS.items() if k == key)
        sc = ET.SubElement(el, f"{{{SCRAM}}}scram-credentials", {"mechanism": mech})
        for name, value in (("iter-count", str(creds.get("iterations"))), ("salt", creds.get("salt")),
                            ("server-key", keys.get("server_key")), ("stored-key", keys.get("stored_key"))):
            ET.SubElement(sc, f"{{{SCRAM}}}{name}").text = value
    roster = data["roster"]
    items = {c: i for c, i in roster.items() if isinstance(i, dict) and i.get("listed", True)}
    if items:
        q = ET.SubElement(el, f"{{{ROSTER}}}query")
        for contact, item in sorted(items.items()):
            q.append(rs.item_element(contact, item))
    for contact, item in sorted(roster.items()):
        if isinstance(item, dict) and item.get("pending_in"):
            p = None
            if item.get("request"):
                try:
                    p = from_xml(item["request"])
                except ET.ParseError:
                    p = None
            if p is None:
                p = ET.Element(f"{{{CLIENT}}}presence")
            p.set("type", "subscribe")
            p.set("from", contact)
            p.set("to", f"{user}@{host}")
            el.append(p)
    if data["vcard"]:
        el.append(from_xml(data["vcard"]))
    if data["private"]:
        q = ET.SubElement(el, f"{{{PRIVATE}}}query")
        for _key, text in sorted(data["private"].items()):
            q.append(from_xml(text))
    if data["offline"]:
        om = ET.SubElement(el, f"{{{NS}}}offline-messages")
        for item in data["offline"]:
            if isinstance(item.value, str):
                om.append(from_xml(item.value))
    if data["archive"]:
        from ..xmpp.time import utc_stamp_ms
        ar = ET.SubElement(el, f"{{{MAM}}}archive")
        for item in data["archive"]:
            if not isinstance(item.value, str):
                continue
            res = ET.SubElement(ar, f"{{{MAM2}}}result", {"id": item.key})
            fwd = ET.SubElement(res, f"{{{FORWARD}}}forwarded")
            ET.SubElement(fwd, f"{{{DELAY}}}delay", {"stamp": utc_stamp_ms(item.when)})
            fwd.append(from_xml(item.value))
    if data["blocklist"]:
        bl = ET.SubElement(el, f"{{{BLOCKING}}}blocklist")
        for jid in data["blocklist"]:
            ET.SubElement(bl, f"{{{BLOCKING}}}item", {"jid": jid})
    nodes = data["pep"]
    if nodes:
        owner = ET.SubElement(el, f"{{{OWNER}}}pubsub")
        pubsub = ET.Element(f"{{{PUBSUB}}}pubsub")
        for name, node in sorted(nodes.items()):
            conf = ET.SubElement(owner, f"{{{OWNER}}}configure", {"node": name})
            x = ET.SubElement(conf, f"{{{XDATA}}}x", {"type": "submit"})
            f = ET.SubElement(x, f"{{{XDATA}}}field", {"var": "FORM_TYPE", "type": "hidden"})
            ET.SubElement(f, f"{{{XDATA}}}value").text = NODE_CONFIG
            for var, value in sorted(node.config.items()):
                f = ET.SubElement(x, f"{{{XDATA}}}field", {"var": var})
                for v in (value if isinstance(value, list) else [value]):
                    ET.SubElement(f, f"{{{XDATA}}}value").text = (
                        ("true" if v else "false") if isinstance(v, bool) else str(v))
            if node.affiliations:
                affs = ET.SubElement(owner, f"{{{OWNER}}}affiliations", {"node": name})
                for jid, aff in sorted(node.affiliations.items()):
                    ET.SubElement(affs, f"{{{OWNER}}}affiliation", {"jid": jid, "affiliation": aff})
            if node.subscriptions:
                subs = ET.SubElement(owner, f"{{{OWNER}}}subscriptions", {"node": name})
                for jid in sorted(node.subscriptions):
                    ET.SubElement(subs, f"{{{OWNER}}}subscription", {"jid": jid, "subscription": "subscribed"})
            if node.items:
                its = ET.SubElement(pubsub, f"{{{PUBSUB}}}items", {"node": name})
                for item in node.items:
                    attrs = {"id": item.id}
                    if item.publisher:
                        attrs["publisher"] = item.publisher
                    if item.when:
                        attrs["when"] = repr(float(item.when))
                    it = ET.SubElement(its, f"{{{PUBSUB}}}item", attrs)
                    if item.xml:
                        it.append(from_xml(item.xml))
        if len(pubsub):
            el.append(pubsub)
    return el


async def cmd_export(args, cfg) -> int:
    from . import ctl
    from .userdata import read_user
    from ..xmpp.stanza import to_xml
    hosts = ctl.selected_hosts(cfg, args.host)
    out = Path(args.file)
    if out.is_dir():
        raise ctl.CtlError(f"{out}: is a directory (give the file to write)")
    from ..net.tls import private_file
    storage = await ctl.open_storage(cfg)
    counts = {}
    try:
        with private_file(out, 0o600, text=True) as f:
            f.write(f"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{NS}'>\n")
            for host in hosts:
                f.write(f"<host jid={quoteattr(host)}>\n")
                users = [u for u in await storage.keyval(host, "accounts").users() if u]
                for user in users:
                    data = await read_user(storage, host, user)
                    f.write(to_xml(user_element(host, user, data)))
                    f.write("\n")
                f.write("</host>\n")
                counts[host] = len(users)
            f.write("</server-data>\n")
    except OSError as exc:       # the file (or its directory) cannot be written, a full disk
        raise ctl.CtlError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        await storage.close()
    for host, n in counts.items():
        print(f"{host}: {n} account(s)")
    print(f"exported to {out} (XEP-0227; it holds the accounts' SCRAM keys: keep it private)")
    return 0


def register(sub, common, add, import_kinds) -> None:
    q = import_kinds.add_parser("xep227", parents=[common],
                                help="a XEP-0227 file (xmppctl export, ejabberdctl export_piefxis, "
                                "Prosody's mod_storage_xep0227): accounts (passwords unchanged), "
                                "rosters, vCards, private XML, offline messages, archives, PEP nodes, block lists")
    q.set_defaults(func=cmd_import_xep227)
    q.add_argument("file", metavar="FILE", help="the XEP-0227 file (ejabberd: the top-level file; "
                   "the per-host files it includes are read from its directory)")
    q.add_argument("--dry-run", action="store_true", help="say what would be imported, write nothing")
    q.add_argument("--host", action="append", metavar="HOST",
                   help="only this VirtualHost (repeatable; default: every one in the file)")
    p = add("export", cmd_export, "write the accounts and their data to a XEP-0227 file "
            "(for xmppctl import xep227 on another server, or another server's XEP-0227 import)")
    p.add_argument("file", metavar="FILE", help="the file to write (replaced when complete)")
    p.add_argument("--host", action="append", metavar="HOST",
                   help="only this VirtualHost (repeatable; default: every enabled one)")

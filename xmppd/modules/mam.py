"""Message Archive Management (XEP-0313, ``urn:xmpp:mam:2`` and ``#extended``)
for accounts, with unique stanza ids (XEP-0359) and archive preferences (XEP-0441).

**What is archived.** One-to-one messages of an account, both ways, in the
user's ``archive`` store (one item per message and user, its key the stable
archive id):

* *incoming*, on the recipient's host (``message/bare``, ``message/full``, at
  ``NORMAL``: before carbons and delivery) when addressed to an existing account;
  the delivered message gets ``<stanza-id xmlns='urn:xmpp:sid:0' by='user@host'
  id='…'/>``, and any stanza-id claiming to be ``by`` that account that came
  from outside is removed first (archived or not);
* *outgoing*, on the sender's host (``pre-message/*``); a message to one's own
  account is stored once, as incoming.

Archived: ``chat`` and ``normal`` messages with a body, or with a payload
clients keep in the conversation (encrypted OMEMO/OpenPGP payloads, receipts,
chat markers, corrections, retractions, reactions, jingle message initiation),
or with the XEP-0334 ``<store/>`` hint. Not archived: ``groupchat``,
``headline``, ``error``, messages with ``<no-store/>`` or
``<no-permanent-store/>`` (unless ``<store/>``), chat-state-only messages. Chat
states (``dont_archive_namespaces``) are stripped from the stored copy.
Preferences decide per contact (``always``/``never`` lists, then the default:
``always``, ``never`` or ``roster``).

**Queries** (IQ set ``<query xmlns='urn:xmpp:mam:2'/>`` to one's own bare JID):
form fields ``with`` (bare JID), ``start``, ``end``, ``before-id``, ``after-id``,
``ids``; RSM ``max``/``after``/``before``/``index``; ``<flip-page/>``. Each hit is a
``<message><result queryid id><forwarded><delay/><message/></forwarded></result>``
sent to the querying resource, then the IQ result ``<fin complete>`` with
``<set><first/><last/><count/></set>``. ``complete='true'`` when the page reaches the
end of the results in the paging direction (the start for ``<before/>`` paging).
Pages are at most ``max_archive_query_results`` items. An unknown id gives
``item-not-found``. ``<metadata/>`` (get) gives the first and last items; an IQ
get of ``<query/>`` gives the form.

**Retention.** ``archive_expires_after`` (Prosody syntax: ``"1w"``, ``"3d"``,
``"2m"``, ``"1y"``, a number of seconds, or ``"never"``); every
``archive_cleanup_interval`` seconds the items older than that are deleted for
the users that archived something on an expired day.
"""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from datetime import datetime, timezone

from xmppd.config.lexer import ConfigError
from xmppd.config.options import Option
from xmppd.core import events as ev
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split
from xmppd.storage.api import ItemNotFound

from xmppd.xmpp.stanza import from_xml, to_xml

PROTOCOLS = ["XEP-0313", "XEP-0359", "XEP-0441", "XEP-0059", "XEP-0297"]

NS = "urn:xmpp:mam:2"
NS_EXT = "urn:xmpp:mam:2#extended"
NS_SID = "urn:xmpp:sid:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_XDATA = "jabber:x:data"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
CLIENT = "jabber:client"
STORE = "archive"
PREFS_STORE = "archive_prefs"
CLEANUP_STORE = "archive_cleanup"

OPTIONS = [
    Option("archive_expires_after", "any", "1w", "both",
           "How long archived messages are kept: \"1d\", \"2w\", \"3m\" (31 days), \"1y\", "
           "a number of seconds, or \"never\"."),
    Option("archive_cleanup_interval", "number", 4 * 60 * 60, "both",
           "Seconds between two runs of the expiry of old archived messages.", min=1),
    Option("max_archive_query_results", "integer", 50, "both",
           "Most messages returned in one page of an archive query.", min=1),
    Option("default_archive_policy", "any", True, "both",
           "Archive by default: true (always), false (never) or \"roster\" (only "
           "contacts in the roster). Users change it with their MAM preferences."),
    Option("dont_archive_namespaces", "list", [NS_CHATSTATES], "both",
           "Payload namespaces removed from archived copies (a message left with "
           "nothing else is not archived)."),
    Option("mam_include_total", "boolean", True, "both",
           "Include the total number of matching messages (RSM count) in query results."),
]

BODY = f"{{{CLIENT}}}body"
STANZA_ID = f"{{{NS_SID}}}stanza-id"
# Payloads that keep a body-less message in the conversation history.
ARCHIVABLE_PAYLOADS = frozenset({
    "eu.siacs.conversations.axolotl",    # OMEMO (legacy)
    "urn:xmpp:omemo:2",                  # OMEMO 2
    "urn:xmpp:openpgp:0",                # OX
    "jabber:x:encrypted",                # legacy OpenPGP
    "urn:xmpp:eme:0",                    # XEP-0380 (with an encrypted payload)
    "urn:xmpp:receipts",                 # XEP-0184
    "urn:xmpp:chat-markers:0",           # XEP-0333
    "urn:xmpp:message-correct:0",        # XEP-0308
    "urn:xmpp:message-retract:0",        # XEP-0424
    "urn:xmpp:message-retract:1",
    "urn:xmpp:fasten:0",                 # XEP-0422
    "urn:xmpp:reactions:0",              # XEP-0444
    "urn:xmpp:jingle-message:0",         # XEP-0353
    "urn:xmpp:jingle-message:1",
})
FORM_FIELDS = ("with", "start", "end", "before-id", "after-id", "ids")
_EXPIRY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwmy]?)\s*$", re.I)
_UNITS = {"": 1, "d": 86400, "w": 7 * 86400, "m": 31 * 86400, "y": 365.2425 * 86400}


# ---------------------------------------------------------------- helpers
def parse_expiry(value) -> float | None:
    """Seconds to keep messages, or None for "never"; ValueError when unreadable."""
    if value is None or value is False:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration like \"1w\" or \"never\"")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("expected a positive number of seconds")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like \"1w\", got {value!r}")
    if value.strip().lower() == "never":
        return None
    mt = _EXPIRY.match(value)
    if not mt or float(mt.group(1)) <= 0:
        raise ValueError(f"expected a duration like \"1d\", \"2w\", \"1y\" or \"never\", got {value!r}")
    return float(mt.group(1)) * _UNITS[mt.group(2).lower()]


def parse_policy(value) -> str:
    if value is True or (isinstance(value, str) and value.lower() in ("always", "true")):
        return "always"
    if value is False or (isinstance(value, str) and value.lower() in ("never", "false")):
        return "never"
    if isinstance(value, str) and value.lower() == "roster":
        return "roster"
    raise ValueError(f"expected true, false or \"roster\", got {value!r}")


def stamp(when: float) -> str:
    """XEP-0082 DateTime, UTC, with milliseconds."""
    dt = datetime.fromtimestamp(when, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> float:
    text = (text or "").strip()
    if not text:
        raise ValueError("empty timestamp")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return dt.timestamp()


def _ns(tag: str) -> str:
    return tag[1:tag.index("}")] if tag[:1] == "{" else ""


def bare_of(jid: str) -> str | None:
    try:
        node, domain, _ = jid_split(jid)
    except InvalidJID:
        return None
    return f"{node}@{domain}" if node else domain


def archivable(stanza: ET.Element) -> bool:
    t = stanza.get("type") or "normal"
    if t not in ("chat", "normal"):
        return False
    hint_store = stanza.find(f"{{{NS_HINTS}}}store") is not None
    if not hint_store and (stanza.find(f"{{{NS_HINTS}}}no-store") is not None
                           or stanza.find(f"{{{NS_HINTS}}}no-permanent-store") is not None):
        return False
    if hint_store or stanza.find(BODY) is not None or stanza.find("body") is not None:
        return True
    return any(_ns(child.tag) in ARCHIVABLE_PAYLOADS for child in stanza)


def _client_ns(el: ET.Element) -> ET.Element:
    """A copy of ``el`` with ``jabber:server`` tags as ``jabber:client`` (s2s input)."""
    def conv(e):
        tag = e.tag
        if tag.startswith("{jabber:server}"):
            tag = "{jabber:client}" + tag[15:]
        out = ET.Element(tag, dict(e.attrib))
        out.text, out.tail = e.text, e.tail
        out.extend(conv(c) for c in e)
        return out
    return conv(el)


def _copy(el: ET.Element, drop=None) -> ET.Element:
    out = ET.Element(el.tag, dict(el.attrib))
    out.text = el.text
    out.extend(c for c in el if drop is None or not drop(c))
    return out


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip()


class MamControl:
    """What this module provides to others (and tests): running the expiry now."""

    def __init__(self, cleanup):
        self.cleanup = cleanup


# ---------------------------------------------------------------- module
def setup(m) -> None:
    host = m.host
    archive = m.open_store(STORE, "archive")
    prefs_store = m.open_store(PREFS_STORE, "keyval")
    cleanup_map = m.open_store(CLEANUP_STORE, "map")

    def option_error(name, exc):
        setting = m.server.config.where(name, host=host.name)
        if setting is not None:
            return ConfigError(setting.file, setting.line, setting.col, f"{name}: {exc}")
        return ConfigError("<config>", 0, 0, f"{name}: {exc}")

    try:
        expires = parse_expiry(m.get_option("archive_expires_after"))
    except ValueError as exc:
        raise option_error("archive_expires_after", exc) from None
    try:
        default_policy = parse_policy(m.get_option("default_archive_policy"))
    except ValueError as exc:
        raise option_error("default_archive_policy", exc) from None
    max_results = m.get_option("max_archive_query_results")
    strip_ns = frozenset(m.get_option("dont_archive_namespaces") or ())
    include_total = m.get_option("mam_include_total")

    m.add_feature(NS, to="account")
    m.add_feature(NS_EXT, to="account")
    m.add_feature(NS_SID, to="account")

    # -- preferences (XEP-0441) -------------------------------------------
    prefs_cache: OrderedDict[str, dict] = OrderedDict()
    PREFS_CACHE_SIZE = 4096

    async def get_prefs(user: str) -> dict:
        p = prefs_cache.get(user)
        if p is None:
            p = await prefs_store.get(user) or {}
            prefs_cache[user] = p
            if len(prefs_cache) > PREFS_CACHE_SIZE:
                prefs_cache.popitem(last=False)
        else:
            prefs_cache.move_to_end(user)
        return p

    async def in_roster(user: str, contact: str) -> bool:
        return await host.roster.get_item(user, contact) is not None

    async def shall_store(user: str, contact: str | None) -> bool:
        p = await get_prefs(user)
        if contact:
            if contact in (p.get("never") or ()):
                return False
            if contact in (p.get("always") or ()):
                return True
        policy = p.get("default") or default_policy
        if policy == "always":
            return True
        if policy == "never":
            return False
        return bool(contact) and (contact == f"{user}@{host.name}" or await in_roster(user, contact))

    def prefs_element(p: dict) -> ET.Element:
        el = ET.Element(f"{{{NS}}}prefs", {"default": p.get("default") or default_policy})
        for kind in ("always", "never"):
            lst = ET.SubElement(el, f"{{{NS}}}{kind}")
            for jid in p.get(kind) or ():
                ET.SubElement(lst, f"{{{NS}}}jid").text = jid
        return el

    def own(event) -> str:
        """The querying user, who must be the archive's owner, on a client session."""
        origin = event.origin
        user = event.to_node
        if (getattr(origin, "kind", None) != "c2s" or origin.host is not host
                or origin.username != user):
            raise StanzaError("service-unavailable")
        return user

    async def prefs_get(event):
        user = own(event)
        return prefs_element(await get_prefs(user))

    async def prefs_set(event):
        user = own(event)
        el = event.payload
        default = el.get("default")
        if default not in ("always", "never", "roster"):
            raise StanzaError("bad-request", "default must be always, never or roster")
        new = {"default": default}
        for kind in ("always", "never"):
            jids: list[str] = []
            lst = el.find(f"{{{NS}}}{kind}")
            if lst is not None:
                for j in lst.findall(f"{{{NS}}}jid"):
                    b = bare_of(_text(j) or "")
                    if b is None:
                        raise StanzaError("jid-malformed", f"bad JID in <{kind}/>")
                    if b not in jids:
                        jids.append(b)
            new[kind] = jids
        new["always"] = [j for j in new["always"] if j not in new["never"]]
        await prefs_store.set(user, new)
        prefs_cache[user] = new
        return prefs_element(new)

    m.hook_iq("get", NS, "prefs", prefs_get, to=("bare",))
    m.hook_iq("set", NS, "prefs", prefs_set, to=("bare",))

    # -- archiving ----------------------------------------------------------
    last_day: OrderedDict[str, str] = OrderedDict()

    async def note_for_cleanup(user: str, when: float) -> None:
        if expires is None:
            return
        day = time.strftime("%Y-%m-%d", time.gmtime(when))
        if last_day.get(user) == day:
            last_day.move_to_end(user)
            return
        await cleanup_map.set(day, user, True)
        last_day[user] = day
        if len(last_day) > 10000:
            last_day.popitem(last=False)

    def strip_foreign_ids(stanza: ET.Element, user_bare: str) -> ET.Element:
        """Remove stanza-ids that claim to come from our user's archive."""
        if stanza.find(STANZA_ID) is None:
            return stanza
        return _copy(stanza, lambda c: c.tag == STANZA_ID and bare_of(c.get("by") or "") == user_bare)

    async def store(user: str, stanza: ET.Element, contact: str | None) -> str | None:
        if not archivable(stanza):
            return None
        stored = _client_ns(stanza)
        if strip_ns:
            for c in [c for c in stored if _ns(c.tag) in strip_ns]:
                stored.remove(c)
            if len(stored) == 0:
                return None
        if not await shall_store(user, contact):
            return None
        now = time.time()
        key = await archive.append(user, to_xml(stored), with_jid=contact, when=now)
        await note_for_cleanup(user, now)
        return key

    async def incoming(sev):
        user = sev.to_node
        if not user:
            return None
        user_bare = f"{user}@{host.name}"
        stanza = strip_foreign_ids(sev.stanza, user_bare)
        sev.stanza = stanza
        t = stanza.get("type") or "normal"
        if t not in ("chat", "normal"):
            return None
        if sev.to_type == "full" and t != "chat" and host.get_session(user, sev.to_resource) is None:
            return None  # bounced by the message module: not part of any conversation
        if not host.sessions_of(user) and not await m.server.accounts.exists(host.name, user):
            return None
        key = await store(user, stanza, sev.from_bare or None)
        if key is not None:
            out = _copy(stanza)
            ET.SubElement(out, STANZA_ID, {"by": user_bare, "id": key})
            sev.stanza = out
        return None

    async def outgoing(sev):
        origin = sev.origin
        user = origin.username
        user_bare = f"{user}@{host.name}"
        stanza = strip_foreign_ids(sev.stanza, user_bare)
        sev.stanza = stanza
        if sev.to_bare == user_bare:
            return None  # to one's own account: archived once, as incoming
        target = sev.host
        if (target is not None and target.is_virtualhost and sev.to_node
                and not target.sessions_of(sev.to_node)
                and not await m.server.accounts.exists(target.name, sev.to_node)):
            return None  # bounced with service-unavailable: not a conversation
        await store(user, stanza, sev.to_bare)
        return None

    for to_type in ("bare", "full"):
        m.hook(ev.stanza_event("message", to_type), incoming, ev.NORMAL)
        m.hook(ev.stanza_event("message", to_type, pre=True), outgoing, ev.NORMAL)

    # -- queries --------------------------------------------------------------
    def query_form(type_: str = "form") -> ET.Element:
        x = ET.Element(f"{{{NS_XDATA}}}x", {"type": type_})
        f = ET.SubElement(x, f"{{{NS_XDATA}}}field", {"var": "FORM_TYPE", "type": "hidden"})
        ET.SubElement(f, f"{{{NS_XDATA}}}value").text = NS
        for var, ftype in (("with", "jid-single"), ("start", "text-single"),
                           ("end", "text-single"), ("before-id", "text-single"),
                           ("after-id", "text-single"), ("ids", "text-multi")):
            ET.SubElement(x, f"{{{NS_XDATA}}}field", {"var": var, "type": ftype})
        return x

    async def form_get(event):
        own(event)
        q = ET.Element(f"{{{NS}}}query")
        q.append(query_form())
        return q

    def parse_form(query: ET.Element) -> dict:
        out: dict = {}
        x = query.find(f"{{{NS_XDATA}}}x")
        if x is None:
            return out
        if x.get("type", "submit") != "submit":
            raise StanzaError("bad-request", "the query form must be of type submit")
        for field in x.findall(f"{{{NS_XDATA}}}field"):
            var = field.get("var")
            values = [(v.text or "").strip() for v in field.findall(f"{{{NS_XDATA}}}value")]
            values = [v for v in values if v]
            if var == "FORM_TYPE":
                if values and values[0] != NS:
                    raise StanzaError("bad-request", f"unknown FORM_TYPE {values[0]}")
                continue
            if var not in FORM_FIELDS:
                raise StanzaError("bad-request", f"unknown field {var!r}")
            if not values:
                continue
            if var == "ids":
                out[var] = values
            elif var == "with":
                b = bare_of(values[0])
                if b is None:
                    raise StanzaError("jid-malformed", "bad JID in 'with'")
                out[var] = b
            elif var in ("start", "end"):
                try:
                    out[var] = parse_stamp(values[0])
                except ValueError:
                    raise StanzaError("bad-request", f"invalid timestamp in {var!r}") from None
            else:
                out[var] = values[0]
        return out

    def parse_rsm(query: ET.Element) -> dict:
        rsm = query.find(f"{{{NS_RSM}}}set")
        out: dict = {}
        if rsm is None:
            return out
        for name in ("max", "index"):
            v = _text(rsm.find(f"{{{NS_RSM}}}{name}"))
            if v is not None:
                try:
                    n = int(v)
                except ValueError:
                    raise StanzaError("bad-request", f"RSM <{name}/> must be a number") from None
                if n < 0:
                    raise StanzaError("bad-request", f"RSM <{name}/> must not be negative")
                out[name] = n
        after = _text(rsm.find(f"{{{NS_RSM}}}after"))
        if after:
            out["after"] = after
        before = rsm.find(f"{{{NS_RSM}}}before")
        if before is not None:
            out["before"] = _text(before)  # "" means "the last page"
        return out

    async def position(user: str, key: str) -> float:
        item = await archive.get(user, key)
        if item is None:
            raise StanzaError("item-not-found", f"no archived message with id {key}")
        return item.when

    async def order_of(user: str, a: str, b: str) -> int:
        """-1 if item ``a`` comes before ``b`` in the archive, 1 if after, 0 if same."""
        if a == b:
            return 0
        wa, wb = await position(user, a), await position(user, b)
        if wa != wb:
            return -1 if wa < wb else 1
        keys = [i.key for i in await archive.query(user, start=wa, end=wa)]
        return -1 if keys.index(a) < keys.index(b) else 1

    def result_message(event, qid, item) -> ET.Element:
        msg = ET.Element(f"{{{CLIENT}}}message", {"to": event.stanza.get("from") or "",
                                                  "from": f"{event.to_node}@{host.name}"})
        res = ET.SubElement(msg, f"{{{NS}}}result", {"id": item.key})
        if qid is not None:
            res.set("queryid", qid)
        fwd = ET.SubElement(res, f"{{{NS_FORWARD}}}forwarded")
        ET.SubElement(fwd, f"{{{NS_DELAY}}}delay", {"stamp": stamp(item.when)})
        try:
            inner = from_xml(item.value)
        except ET.ParseError:
            m.log.error("archived message %s of %s is unreadable", item.key, event.to_node)
            inner = ET.Element(f"{{{CLIENT}}}message")
        fwd.append(inner)
        return msg

    async def run_query(event):
        user = own(event)
        query = event.payload
        qid = query.get("queryid")
        form = parse_form(query)
        rsm = parse_rsm(query)
        flip = query.find(f"{{{NS}}}flip-page") is not None
        limit = min(rsm.get("max", max_results), max_results)
        with_jid, start, end = form.get("with"), form.get("start"), form.get("end")

        after, before = form.get("after-id"), form.get("before-id")
        for key in (after, before):
            if key is not None:
                await position(user, key)
        if rsm.get("after"):
            await position(user, rsm["after"])
            if after is None or await order_of(user, rsm["after"], after) > 0:
                after = rsm["after"]
        if rsm.get("before"):
            await position(user, rsm["before"])
            if before is None or await order_of(user, rsm["before"], before) < 0:
                before = rsm["before"]
        backward = "before" in rsm
        index = rsm.get("index")

        first_index = None
        if form.get("ids") is not None:
            items = []
            for key in form["ids"]:
                item = await archive.get(user, key)
                if item is None:
                    raise StanzaError("item-not-found", f"no archived message with id {key}")
                if ((with_jid is None or item.with_jid == with_jid)
                        and (start is None or item.when >= start)
                        and (end is None or item.when <= end)):
                    items.append(item)
            items.sort(key=lambda i: i.when)
            complete = len(items) <= limit
            items = items[:limit]
            total = len(items)
        else:
            kw = dict(with_jid=with_jid, start=start, end=end, after=after, before=before)
            try:
                if limit == 0:
                    items, complete = [], False
                elif backward:
                    items = await archive.query(user, limit=limit + 1, reverse=True, **kw)
                    complete = len(items) <= limit
                    items = items[:limit][::-1]
                else:
                    skip = index or 0
                    items = await archive.query(user, limit=skip + limit + 1, **kw)
                    items = items[skip:]
                    complete = len(items) <= limit
                    items = items[:limit]
                    if after is None:
                        first_index = skip
            except ItemNotFound:
                raise StanzaError("item-not-found") from None
            total = None
            if include_total or limit == 0:
                total = await archive.count(user, with_jid=with_jid, start=start, end=end)
                # the form's after-id/before-id narrow the set too (not RSM's)
                for key, sign in ((form.get("after-id"), 1), (form.get("before-id"), -1)):
                    if key is not None and total:
                        w = await position(user, key)
                        kw2 = dict(with_jid=with_jid, start=start, end=end)
                        if sign > 0:
                            kw2["end"] = w if end is None else min(end, w)
                        else:
                            kw2["start"] = w if start is None else max(start, w)
                        total = max(0, total - await archive.count(user, **kw2))

        for item in (items[::-1] if flip else items):
            event.origin.send(result_message(event, qid, item))

        fin = ET.Element(f"{{{NS}}}fin", {"complete": "true" if complete else "false"})
        if qid is not None:
            fin.set("queryid", qid)
        rs = ET.SubElement(fin, f"{{{NS_RSM}}}set")
        if items:
            first = ET.SubElement(rs, f"{{{NS_RSM}}}first")
            first.text = items[0].key
            if first_index is not None:
                first.set("index", str(first_index))
            ET.SubElement(rs, f"{{{NS_RSM}}}last").text = items[-1].key
        if total is not None:
            ET.SubElement(rs, f"{{{NS_RSM}}}count").text = str(total)
        return fin

    async def metadata(event):
        user = own(event)
        md = ET.Element(f"{{{NS}}}metadata")
        first = await archive.query(user, limit=1)
        if first:
            last = await archive.query(user, limit=1, reverse=True)
            for name, item in (("start", first[0]), ("end", last[0])):
                ET.SubElement(md, f"{{{NS}}}{name}", {"id": item.key, "timestamp": stamp(item.when)})
        return md

    m.hook_iq("get", NS, "query", form_get, to=("bare",))
    m.hook_iq("set", NS, "query", run_query, to=("bare",))
    m.hook_iq("get", NS, "metadata", metadata, to=("bare",))

    # -- retention --------------------------------------------------------------
    async def cleanup(now: float | None = None) -> int:
        """Delete expired items; returns how many went."""
        if expires is None:
            return 0
        now = time.time() if now is None else now
        cutoff = now - expires
        cut_day = time.strftime("%Y-%m-%d", time.gmtime(cutoff))
        users: set[str] = set()
        for day in await cleanup_map.users():
            if day > cut_day:
                continue
            users.update(await cleanup_map.items(day))
            if day < cut_day:
                await cleanup_map.clear(day)  # every message of that day has expired
        removed = 0
        for user in sorted(users):
            removed += await archive.delete(user, before_when=cutoff)
        if removed:
            m.log.info("deleted %d expired archived messages of %d users", removed, len(users))
        return removed

    if expires is not None:
        m.add_timer(60, cleanup)  # soon after start, then periodically
        m.add_timer(m.get_option("archive_cleanup_interval"), cleanup, repeat=True)
    m.provide(MamControl(cleanup))


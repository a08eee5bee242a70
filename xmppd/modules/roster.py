"""Rosters (RFC 6121 §2) and the presence subscription state machine (§3, Appendix A).

The module (``modules_enabled = { "roster" }``) answers ``jabber:iq:roster`` get/set
from the account itself, pushes changes to every *interested* resource (those that
fetched the roster), supports roster versioning (§2.6) and advertises the
``rosterver`` and ``pre-approval`` stream features.

Roster data and the subscription state machine live here as plain functions, so
that the ``presence`` module (always loaded) and other modules can use them
whether or not this module is enabled on a host (as Prosody's rostermanager).

Helper API for other modules (``host`` is the ``Host`` object, ``user`` a
normalised localpart, ``contact`` a normalised bare JID)::

    from xmppd.modules import roster

    await roster.get_roster(host, user)            -> dict[contact, item]
    await roster.get_item(host, user, contact)      -> item | None
    await roster.subscription(host, user, contact)  -> "none"|"to"|"from"|"both"
    roster.is_subscribed(item, "to")    # user receives the contact's presence
    roster.is_subscribed(item, "from")  # contact receives the user's presence
    await roster.pending_requests(host, user)       -> dict[contact, <presence/> Element]

An item is a dict ``{"name": str|None, "subscription": "none"|"to"|"from"|"both",
"ask": "subscribe"|None, "groups": [str], "approved": bool}`` (plus internal keys);
only items on the roster proper are returned (a stranger's pending subscription
request is not a roster item). Never modify the store directly: use
``update``/``push`` so versions and pushes stay right.

Storage: one ``map`` store ``roster`` per host; key = contact bare JID, value =
the item dict; the key ``""`` holds ``{"version": n}``.
"""
from __future__ import annotations

import asyncio
import collections
import copy
import secrets
import weakref
import xml.etree.ElementTree as ET
from typing import Callable

from xmppd.config.options import Option
from xmppd.errors import StanzaError
from xmppd.jid import InvalidJID, split as jid_split
from xmppd.stream import SharedContent, copy_of, serialize

PROTOCOLS = ["RFC 6121 §2", "RFC 6121 §2.6 (roster versioning)", "RFC 6121 §3.4 (pre-approval)"]
OPTIONS = [
    Option("max_roster_items", "integer", 1000, "both",
           "Most items a user's roster may hold; adding more is refused with not-allowed.",
           min=1),
]

NS = "jabber:iq:roster"
NS_VER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
STORE = "roster"
META = ""            # the key holding {"version": n}; no JID is empty
MAX_TEXT = 1023      # bytes, for a name or a group (RFC 6121 §2.3.3 lets the server choose)

Q = f"{{{NS}}}query"
ITEM = f"{{{NS}}}item"
GROUP = f"{{{NS}}}group"

# ---------------------------------------------------------------- the state machine
# The nine states of RFC 6121 Appendix A.1, with the names the RFC uses.
NONE, NONE_OUT, NONE_IN, NONE_OUT_IN = "None", "None + Pending Out", "None + Pending In", "None + Pending Out+In"
TO, TO_IN, FROM, FROM_OUT, BOTH = "To", "To + Pending In", "From", "From + Pending Out", "Both"
STATES = (NONE, NONE_OUT, NONE_IN, NONE_OUT_IN, TO, TO_IN, FROM, FROM_OUT, BOTH)

# state -> (subscription, pending out, pending in)
_PARTS = {
    NONE: ("none", False, False), NONE_OUT: ("none", True, False),
    NONE_IN: ("none", False, True), NONE_OUT_IN: ("none", True, True),
    TO: ("to", False, False), TO_IN: ("to", False, True),
    FROM: ("from", False, False), FROM_OUT: ("from", True, False),
    BOTH: ("both", False, False),
}
_BY_PARTS = {v: k for k, v in _PARTS.items()}

# (direction, presence type) -> {existing state: (new state or None for "no state
# change", whether the stanza is routed (outbound) or delivered to the client (inbound))}.
# RFC 6121 Appendix A.2 (outbound) and A.3 (inbound). Outbound "subscribed" without a
# pending request is a pre-approval (§3.4) and is not routed; outbound "unsubscribed"
# is routed only where it cancels something.
TRANSITIONS: dict[tuple[str, str], dict[str, tuple[str | None, bool]]] = {
    ("outbound", "subscribe"): {
        NONE: (NONE_OUT, True), NONE_OUT: (None, True), NONE_IN: (NONE_OUT_IN, True),
        NONE_OUT_IN: (None, True), TO: (None, True), TO_IN: (None, True),
        FROM: (FROM_OUT, True), FROM_OUT: (None, True), BOTH: (None, True),
    },
    ("outbound", "unsubscribe"): {
        NONE: (None, True), NONE_OUT: (NONE, True), NONE_IN: (None, True),
        NONE_OUT_IN: (NONE_IN, True), TO: (NONE, True), TO_IN: (NONE_IN, True),
        FROM: (None, True), FROM_OUT: (FROM, True), BOTH: (FROM, True),
    },
    ("outbound", "subscribed"): {
        NONE: (None, False), NONE_OUT: (None, False), NONE_IN: (FROM, True),
        NONE_OUT_IN: (FROM_OUT, True), TO: (None, False), TO_IN: (BOTH, True),
        FROM: (None, False), FROM_OUT: (None, False), BOTH: (None, False),
    },
    ("outbound", "unsubscribed"): {
        NONE: (None, False), NONE_OUT: (None, False), NONE_IN: (NONE, True),
        NONE_OUT_IN: (NONE_OUT, True), TO: (None, False), TO_IN: (TO, True),
        FROM: (NONE, True), FROM_OUT: (NONE_OUT, True), BOTH: (TO, True),
    },
    ("inbound", "subscribe"): {
        NONE: (NONE_IN, True), NONE_OUT: (NONE_OUT_IN, True), NONE_IN: (None, False),
        NONE_OUT_IN: (None, False), TO: (TO_IN, True), TO_IN: (None, False),
        FROM: (None, False), FROM_OUT: (None, False), BOTH: (None, False),
    },
    ("inbound", "unsubscribe"): {
        NONE: (None, False), NONE_OUT: (None, False), NONE_IN: (NONE, True),
        NONE_OUT_IN: (NONE_OUT, True), TO: (None, False), TO_IN: (TO, True),
        FROM: (NONE, True), FROM_OUT: (NONE_OUT, True), BOTH: (TO, True),
    },
    ("inbound", "subscribed"): {
        NONE: (None, False), NONE_OUT: (TO, True), NONE_IN: (None, False),
        NONE_OUT_IN: (TO_IN, True), TO: (None, False), TO_IN: (None, False),
        FROM: (None, False), FROM_OUT: (BOTH, True), BOTH: (None, False),
    },
    ("inbound", "unsubscribed"): {
        NONE: (None, False), NONE_OUT: (NONE, True), NONE_IN: (None, False),
        NONE_OUT_IN: (NONE_IN, True), TO: (NONE, True), TO_IN: (NONE_IN, True),
        FROM: (None, False), FROM_OUT: (FROM, True), BOTH: (FROM, True),
    },
}
SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})


def transition(direction: str, ptype: str, state: str) -> tuple[str, bool]:
    """``(new state, route/deliver?)`` for a subscription stanza in ``state``."""
    new, passes = TRANSITIONS[(direction, ptype)][state]
    return (new or state), passes


def state_of(item: dict | None) -> str:
    if item is None:
        return NONE
    return _BY_PARTS[(item.get("subscription") or "none", bool(item.get("ask")), bool(item.get("pending_in")))]


def set_state(item: dict, state: str) -> dict:
    sub, out, inn = _PARTS[state]
    item["subscription"] = sub
    item["ask"] = "subscribe" if out else None
    item["pending_in"] = inn
    if not inn:
        item["request"] = None
    if sub in ("from", "both"):
        item["approved"] = False   # a pre-approval has no meaning once subscribed
    return item


def is_subscribed(item: dict | None, direction: str) -> bool:
    """``"to"``: the user receives the contact's presence; ``"from"``: the contact
    receives the user's presence."""
    if item is None:
        return False
    sub = item.get("subscription") or "none"
    return sub == "both" or sub == direction


def new_item(listed: bool = True) -> dict:
    return {"name": None, "subscription": "none", "ask": None, "groups": [], "approved": False,
            "pending_in": False, "request": None, "listed": listed}


def _normalise(value: dict) -> dict:
    item = new_item()
    item.update(value)
    item["groups"] = list(item.get("groups") or ())   # never share the cached list
    return item


# ---------------------------------------------------------------- storage
def _store(host):
    return host.server.storage.map(host.name, STORE)


_locks: "weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock]" = weakref.WeakValueDictionary()


def _lock(host, user: str) -> asyncio.Lock:
    key = (host.name, user)
    lock = _locks.get(key)
    if lock is None:
        lock = asyncio.Lock()
        _locks[key] = lock
    return lock


# Rosters read from storage are kept (most recently used first) so that a
# roster fetch, a presence broadcast or a subscription check costs no database
# round trip; every write goes through ``update``/``remove_all``, which keep the
# cached copy in step.
_CACHE_SIZE = 10000


def _host_lru(host, name: str) -> collections.OrderedDict:
    """A per-host LRU dict in ``host.state`` (per server: tests run many servers in
    one process)."""
    c = host.state.get(name)
    if c is None:
        c = host.state[name] = collections.OrderedDict()
    return c


def _cache(host) -> "collections.OrderedDict[str, dict]":
    """The host's roster cache."""
    return _host_lru(host, "roster.cache")


async def _raw(host, user: str) -> dict:
    cache = _cache(host)
    raw = cache.get(user)
    if raw is not None:
        cache.move_to_end(user)
        return raw
    raw = await _store(host).items(user)
    cache[user] = raw
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return raw


def _cache_update(host, user: str, values: dict) -> None:
    raw = _cache(host).get(user)
    if raw is None:
        return
    for k, v in values.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = copy.deepcopy(v)   # callers keep and may change their copy


async def _records(host, user: str) -> dict[str, dict]:
    raw = await _raw(host, user)
    return {k: _normalise(v) for k, v in raw.items() if k != META and isinstance(v, dict)}


async def get_roster(host, user: str) -> dict[str, dict]:
    """The user's roster: contact bare JID -> item (items on the roster only)."""
    return {k: v for k, v in (await _records(host, user)).items() if v.get("listed")}


async def get_record(host, user: str, contact: str) -> dict | None:
    """The item for ``contact``, or a stranger's pending-request record (``listed`` False)."""
    v = (await _raw(host, user)).get(contact)
    return _normalise(v) if isinstance(v, dict) else None


async def get_item(host, user: str, contact: str) -> dict | None:
    item = await get_record(host, user, contact)
    return item if item is not None and item.get("listed") else None


async def subscription(host, user: str, contact: str) -> str:
    if contact == f"{user}@{host.name}":
        return "both"
    item = await get_item(host, user, contact)
    return (item or {}).get("subscription") or "none"


async def version(host, user: str) -> int:
    meta = (await _raw(host, user)).get(META)
    return int(meta.get("version", 0)) if isinstance(meta, dict) else 0


async def pending_requests(host, user: str) -> dict[str, ET.Element]:
    """Inbound subscription requests not yet answered: contact -> the stored ``<presence/>``."""
    out = {}
    for contact, item in (await _records(host, user)).items():
        if item.get("pending_in"):
            out[contact] = _request_element(item, contact, f"{user}@{host.name}")
    return out


def _request_element(item: dict, contact: str, to: str) -> ET.Element:
    el = None
    if item.get("request"):
        try:
            el = ET.fromstring(item["request"])
        except ET.ParseError:
            el = None
    if el is None:
        el = ET.Element("{jabber:client}presence")
    el.set("type", "subscribe")
    el.set("from", contact)
    el.set("to", to)
    return el


def stanza_to_text(el: ET.Element) -> str:
    return serialize(el, default_ns="")


async def update(host, user: str, contact: str,
                 change: Callable[[dict | None], dict | None]) -> tuple[dict | None, dict | None, int]:
    """Atomically change one record: ``change(copy of the record or None)`` returns
    the new record (or None to delete it). Returns ``(old, new, version)``; the
    roster version goes up when the roster proper changed. Pushes are the caller's."""
    async with _lock(host, user):
        store = _store(host)
        raw = (await _raw(host, user)).get(contact)
        old = _normalise(raw) if isinstance(raw, dict) else None
        new = change(dict(old, groups=list(old["groups"])) if old is not None else None)
        if new is not None and not new.get("listed") and state_of(new) == NONE:
            new = None   # a stranger's record with nothing pending is forgotten
        ver = await version(host, user)
        if new == old:
            return old, new, ver
        visible_old = _visible(old)
        visible_new = _visible(new)
        values = {contact: new}
        if visible_old != visible_new:
            ver += 1
            values[META] = {"version": ver}
        await store.set_many(user, values)
        _cache_update(host, user, values)
        return old, new, ver


def _visible(item: dict | None):
    if item is None or not item.get("listed"):
        return None
    return (item.get("name"), item.get("subscription"), item.get("ask"),
            tuple(item.get("groups") or ()), bool(item.get("approved")))


async def remove_all(host, user: str) -> None:
    """Forget the user's whole roster (account deletion)."""
    await _store(host).clear(user)
    _cache(host).pop(user, None)
    _results(host).pop(user, None)


# The items of the last roster result per user, kept while the roster version is
# unchanged: a fetch at login then costs no item building and no serializing (the
# items are serialized once, see SharedContent). After a change, only the items
# that changed are built and serialized again. Bounded; rebuilt when evicted.
_RESULTS_SIZE = 1000


def _results(host) -> "collections.OrderedDict[str, tuple]":
    return _host_lru(host, "roster.results")


async def result_query(host, user: str) -> ET.Element:
    """``<query ver=.../>`` with every item of the user's roster (for a roster get)."""
    raw = await _raw(host, user)
    ver = await version(host, user)
    results = _results(host)
    hit = results.get(user)
    if hit is not None and hit[0] is raw and hit[1] == ver:
        results.move_to_end(user)
        shared = hit[2]
    else:
        # straight from the stored records (item_element only reads them); an item
        # whose visible fields are unchanged since the last result is reused as is
        before = hit[3] if hit is not None and hit[0] is raw else {}
        parts: dict[str, tuple] = {}
        listed = [k for k, v in raw.items()
                  if k != META and isinstance(v, dict) and v.get("listed", True)]
        listed.sort()
        for k in listed:
            item = raw[k]
            seen = (item.get("name"), item.get("subscription"), item.get("ask"),
                    tuple(item.get("groups") or ()), item.get("approved"))
            part = before.get(k)
            if part is None or part[0] != seen:
                el = item_element(k, item)
                part = (seen, el, serialize(el, default_ns=NS))
            parts[k] = part
        tmpl = ET.Element(Q)
        tmpl.extend([part[1] for part in parts.values()])
        shared = SharedContent(tmpl)
        shared.preset(NS, "".join([part[2] for part in parts.values()]))
        results[user] = (raw, ver, shared, parts)
        if len(results) > _RESULTS_SIZE:
            results.popitem(last=False)
    return copy_of(ET.Element(Q), shared, ver=str(ver))


# ---------------------------------------------------------------- XML
def item_element(contact: str, item: dict | None) -> ET.Element:
    """``<item/>`` for a result or a push; ``item`` None (or unlisted) is a removal."""
    el = ET.Element(ITEM, {"jid": contact})
    if item is None or not item.get("listed", True):
        el.set("subscription", "remove")
        return el
    if item.get("name"):
        el.set("name", item["name"])
    el.set("subscription", item.get("subscription") or "none")
    if item.get("ask"):
        el.set("ask", "subscribe")
    if item.get("approved"):
        el.set("approved", "true")
    for g in item.get("groups") or ():
        ET.SubElement(el, GROUP).text = g
    return el


def push(host, user: str, contact: str, item: dict | None, ver: int) -> None:
    """Roster push (§2.1.6) to every interested resource of the user."""
    bare = f"{user}@{host.name}"
    for sess in list(host.sessions_of(user).values()):
        if not sess.interested:
            continue
        iq = ET.Element("{jabber:client}iq", {"type": "set", "id": "push" + secrets.token_hex(6),
                                               "to": sess.full_jid, "from": bare})
        q = ET.SubElement(iq, Q, {"ver": str(ver)})
        q.append(item_element(contact, item))
        sess.send(iq)


def interested(host, user: str) -> list:
    return [s for s in host.sessions_of(user).values() if s.interested]


# ---------------------------------------------------------------- the roster IQ
def _text_ok(text: str, what: str) -> None:
    if len(text.encode("utf-8")) > MAX_TEXT:
        raise StanzaError("not-acceptable", f"{what} longer than {MAX_TEXT} bytes")


def parse_set(payload: ET.Element, own_bare: str) -> tuple[str, dict | None, bool]:
    """Check a roster set (§2.3.3, §2.5); returns ``(contact, fields, remove)``."""
    items = list(payload)
    if len(items) != 1 or items[0].tag != ITEM:
        raise StanzaError("bad-request", "a roster set carries exactly one item")
    el = items[0]
    raw = el.get("jid")
    if not raw:
        raise StanzaError("bad-request", "the item has no jid")
    try:
        node, domain, resource = jid_split(raw)
    except InvalidJID:
        raise StanzaError("jid-malformed", "invalid jid") from None
    if resource:
        raise StanzaError("bad-request", "roster items are bare JIDs")
    contact = f"{node}@{domain}" if node else domain
    if contact == own_bare:
        raise StanzaError("not-allowed", "you cannot add yourself to your roster")
    if el.get("subscription") == "remove":
        return contact, None, True
    name = el.get("name") or None
    if name is not None:
        _text_ok(name, "name")
    groups: list[str] = []
    for child in el:
        if child.tag != GROUP:
            continue
        g = child.text or ""
        if not g:
            raise StanzaError("not-acceptable", "empty group name")
        _text_ok(g, "group name")
        if g in groups:
            raise StanzaError("bad-request", f"duplicate group {g!r}")
        groups.append(g)
    return contact, {"name": name, "groups": groups}, False


def setup(m) -> None:
    host = m.host
    m.add_feature(NS)
    m.add_stream_feature(lambda s: ET.Element(f"{{{NS_VER}}}ver"), stage="bound")
    m.add_stream_feature(lambda s: ET.Element(f"{{{NS_PREAPPROVAL}}}sub"), stage="bound")

    def own_user(event) -> str:
        user = event.to_node
        if event.from_bare != f"{user}@{host.name}" or getattr(event.origin, "kind", None) != "c2s":
            raise StanzaError("forbidden", "only the account itself may use its roster")
        return user

    async def roster_get(event):
        user = own_user(event)
        event.origin.interested = True
        ver = await version(host, user)
        asked = event.payload.get("ver")
        if asked is not None and asked == str(ver):
            return None     # §2.6.3: unchanged, empty result; pushes follow
        return await result_query(host, user)

    async def roster_set(event):
        user = own_user(event)
        bare = f"{user}@{host.name}"
        contact, fields, remove = parse_set(event.payload, bare)
        if remove:
            old = await get_item(host, user, contact)
            if old is None:
                raise StanzaError("item-not-found")
            await remove_item(host, user, contact, session=event.origin)
            return None
        existing = await get_item(host, user, contact)
        if existing is None:
            limit = m.get_option("max_roster_items")
            if len(await get_roster(host, user)) >= limit:
                raise StanzaError("not-allowed", f"roster limit of {limit} items reached")

        def change(item):
            item = item or new_item()
            item["listed"] = True
            item["name"] = fields["name"]
            item["groups"] = fields["groups"]
            return item
        _old, new, ver = await update(host, user, contact, change)
        push(host, user, contact, new, ver)
        return None

    m.hook_iq("get", NS, "query", roster_get, to=("bare",))
    m.hook_iq("set", NS, "query", roster_set, to=("bare",))


async def remove_item(host, user: str, contact: str, *, session=None) -> None:
    """Remove ``contact`` from the roster (§2.5.3): push, then cancel both
    directions of the subscription and send unavailable presence as needed."""
    old, _new, ver = await update(host, user, contact, lambda item: None)
    if old is None:
        return
    push(host, user, contact, None, ver)
    from xmppd.modules import presence
    await presence.after_remove(host, user, contact, old, session)

"""Rosters (RFC 6121 §2) and the presence subscription state machine (§3, Appendix A):
a core service of every VirtualHost, ``host.roster``, as Prosody's rostermanager.

Every module reaches rosters the same way (``user`` a normalised localpart,
``contact`` a normalised bare JID)::

    await host.roster.get_roster(user)             -> dict[contact, item]
    await host.roster.get_item(user, contact)       -> item | None
    await host.roster.subscription(user, contact)   -> "none"|"to"|"from"|"both"
    await host.roster.pending_requests(user)        -> dict[contact, <presence/>]
    await host.roster.update(user, contact, change) -> (old, new, version)
    host.roster.push(user, contact, item, version)
    await host.roster.remove(user, contact)         # fires "roster-item-removed"

An item is a dict ``{"name": str|None, "subscription": "none"|"to"|"from"|"both",
"ask": "subscribe"|None, "groups": [str], "approved": bool}`` plus internal keys
(``pending_in``, ``request``, ``listed``). A stranger's pending subscription request
is a record that is not ``listed``: not a roster item. Never modify the store
directly: use ``update``/``push`` so versions and pushes stay right.

Storage: one ``map`` store ``roster`` per host; key = contact bare JID, value =
the item dict; the key ``""`` holds ``{"version": n}``.

The ``jabber:iq:roster`` protocol (get, set, versioning) is the roster module's;
the subscription stanzas are the presence module's. Both use this service.
"""
from __future__ import annotations

import asyncio
import collections
import copy
import secrets
import weakref
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Callable

from ..config.options import CORE_OPTIONS
from ..stream import SharedContent, copy_of, serialize
from ..xmpp import ns
from ..xmpp.errors import StanzaError

if TYPE_CHECKING:
    from .host import Host

STORE = "roster"
_MAX_ITEMS = next(o for o in CORE_OPTIONS if o.name == "max_roster_items")
META = ""            # the key holding {"version": n}; no JID is empty

Q = f"{{{ns.ROSTER}}}query"
ITEM = f"{{{ns.ROSTER}}}item"
GROUP = f"{{{ns.ROSTER}}}group"

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


def has_presence_of(sub: str) -> bool:
    """The user receives the contact's presence (subscription ``to`` or ``both``)."""
    return sub in ("to", "both")


def sends_presence_to(sub: str) -> bool:
    """The contact receives the user's presence (subscription ``from`` or ``both``)."""
    return sub in ("from", "both")


def new_item(listed: bool = True) -> dict:
    return {"name": None, "subscription": "none", "ask": None, "groups": [], "approved": False,
            "pending_in": False, "request": None, "listed": listed}


def visible(item: dict | None):
    """What a client sees of a record (None: not on the roster); pushes and version
    changes happen when this changes."""
    if item is None or not item.get("listed"):
        return None
    return (item.get("name"), item.get("subscription"), item.get("ask"),
            tuple(item.get("groups") or ()), bool(item.get("approved")))


def _normalise(value: dict) -> dict:
    item = new_item()
    item.update(value)
    item["groups"] = list(item.get("groups") or ())   # never share the cached list
    return item


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


def stanza_to_text(el: ET.Element) -> str:
    return serialize(el, default_ns="")


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


# Rosters read from storage are kept (most recently used first) so that a roster
# fetch, a presence broadcast or a subscription check costs no database round trip;
# every write goes through ``update``/``remove_all``, which keep the cached copy in
# step.
CACHE_SIZE = 10000
# The items of the last roster result per user, kept while the roster version is
# unchanged: a fetch at login then costs no item building and no serializing (the
# items are serialized once, see SharedContent). After a change, only the items
# that changed are built and serialized again. Bounded; rebuilt when evicted.
RESULTS_SIZE = 1000


class RosterService:
    """The rosters of one VirtualHost."""

    def __init__(self, host: "Host"):
        self.host = host
        self._cache: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._results: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self._locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()

    @property
    def store(self):
        return self.host.server.storage.map(self.host.name, STORE)

    def _lock(self, user: str) -> asyncio.Lock:
        lock = self._locks.get(user)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[user] = lock
        return lock

    # -- reading -------------------------------------------------------------------
    async def _raw(self, user: str) -> dict:
        cache = self._cache
        raw = cache.get(user)
        if raw is not None:
            cache.move_to_end(user)
            return raw
        raw = await self.store.items(user)
        cache[user] = raw
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
        return raw

    def _cache_update(self, user: str, values: dict) -> None:
        raw = self._cache.get(user)
        if raw is None:
            return
        for k, v in values.items():
            if v is None:
                raw.pop(k, None)
            else:
                raw[k] = copy.deepcopy(v)   # callers keep and may change their copy

    async def records(self, user: str) -> dict[str, dict]:
        """Every record: roster items and strangers' pending requests."""
        raw = await self._raw(user)
        return {k: _normalise(v) for k, v in raw.items() if k != META and isinstance(v, dict)}

    async def get_roster(self, user: str) -> dict[str, dict]:
        """The user's roster: contact bare JID -> item (items on the roster only)."""
        return {k: v for k, v in (await self.records(user)).items() if v.get("listed")}

    async def get_record(self, user: str, contact: str) -> dict | None:
        """The item for ``contact``, or a stranger's pending-request record (``listed`` False)."""
        v = (await self._raw(user)).get(contact)
        return _normalise(v) if isinstance(v, dict) else None

    async def get_item(self, user: str, contact: str) -> dict | None:
        item = await self.get_record(user, contact)
        return item if item is not None and item.get("listed") else None

    async def subscription(self, user: str, contact: str) -> str:
        """``none``/``to``/``from``/``both``; one's own account is ``both``."""
        if contact == f"{user}@{self.host.name}":
            return "both"
        item = await self.get_item(user, contact)
        return (item or {}).get("subscription") or "none"

    async def groups(self, user: str, contact: str) -> frozenset[str]:
        item = await self.get_item(user, contact)
        return frozenset((item or {}).get("groups") or ())

    async def version(self, user: str) -> int:
        meta = (await self._raw(user)).get(META)
        return int(meta.get("version", 0)) if isinstance(meta, dict) else 0

    async def pending_requests(self, user: str) -> dict[str, ET.Element]:
        """Inbound subscription requests not yet answered: contact -> the stored ``<presence/>``."""
        out = {}
        for contact, item in (await self.records(user)).items():
            if item.get("pending_in"):
                out[contact] = _request_element(item, contact, f"{user}@{self.host.name}")
        return out

    async def users(self) -> list[str]:
        """Every user with a stored roster."""
        return await self.store.users()

    # -- writing -------------------------------------------------------------------
    def max_items(self) -> int:
        return self.host.get_option("max_roster_items", _MAX_ITEMS.default, _MAX_ITEMS)

    async def update(self, user: str, contact: str,
                     change: Callable[[dict | None], dict | None]) -> tuple[dict | None, dict | None, int]:
        """Atomically change one record: ``change(copy of the record or None)`` returns
        the new record (or None to delete it). Returns ``(old, new, version)``; the
        roster version goes up when the roster proper changed. Pushes are the caller's.

        A change that would put one more contact on a roster already holding
        ``max_roster_items`` raises ``not-allowed`` (whatever the path: a roster set,
        a subscription request, an approval, a pre-approval) and changes nothing."""
        async with self._lock(user):
            records = await self._raw(user)
            raw = records.get(contact)
            old = _normalise(raw) if isinstance(raw, dict) else None
            new = change(dict(old, groups=list(old["groups"])) if old is not None else None)
            if new is not None and not new.get("listed") and state_of(new) == NONE:
                new = None   # a stranger's record with nothing pending is forgotten
            if visible(new) is not None and visible(old) is None:
                limit = self.max_items()
                listed = sum(1 for k, v in records.items()
                             if k != META and isinstance(v, dict) and v.get("listed"))
                if listed >= limit:
                    raise StanzaError("not-allowed", f"roster limit of {limit} items reached")
            ver = await self.version(user)
            if new == old:
                return old, new, ver
            values = {contact: new}
            if visible(old) != visible(new):
                ver += 1
                values[META] = {"version": ver}
            await self.store.set_many(user, values)
            self._cache_update(user, values)
            return old, new, ver

    async def remove(self, user: str, contact: str, *, session=None) -> dict | None:
        """Take ``contact`` off the roster (RFC 6121 §2.5.3): push, then fire
        ``roster-item-removed`` (the presence module cancels the subscriptions).
        Returns the removed item, None when there was none."""
        old, _new, ver = await self.update(user, contact, lambda item: None)
        if old is None:
            return None
        self.push(user, contact, None, ver)
        await self.host.events.notify("roster-item-removed",
                                      {"user": user, "contact": contact, "item": old,
                                       "session": session})
        return old

    async def remove_all(self, user: str) -> None:
        """Forget the user's whole roster (account deletion)."""
        await self.store.clear(user)
        self._cache.pop(user, None)
        self._results.pop(user, None)

    # -- to the clients ------------------------------------------------------------------
    def interested(self, user: str) -> list:
        """The user's resources that fetched the roster (they get pushes)."""
        return [s for s in self.host.sessions_of(user).values() if s.interested]

    def push(self, user: str, contact: str, item: dict | None, ver: int) -> None:
        """Roster push (§2.1.6) to every interested resource of the user."""
        bare = f"{user}@{self.host.name}"
        for sess in self.interested(user):
            iq = ET.Element("{jabber:client}iq", {"type": "set", "id": "push" + secrets.token_hex(6),
                                                   "to": sess.full_jid, "from": bare})
            q = ET.SubElement(iq, Q, {"ver": str(ver)})
            q.append(item_element(contact, item))
            sess.send(iq)

    async def result_query(self, user: str) -> ET.Element:
        """``<query ver=.../>`` with every item of the user's roster (for a roster get)."""
        raw = await self._raw(user)
        ver = await self.version(user)
        results = self._results
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
                    part = (seen, el, serialize(el, default_ns=ns.ROSTER))
                parts[k] = part
            tmpl = ET.Element(Q)
            tmpl.extend([part[1] for part in parts.values()])
            shared = SharedContent(tmpl)
            shared.preset(ns.ROSTER, "".join([part[2] for part in parts.values()]))
            results[user] = (raw, ver, shared, parts)
            if len(results) > RESULTS_SIZE:
                results.popitem(last=False)
        return copy_of(ET.Element(Q), shared, ver=str(ver))

"""Blocking Command (XEP-0191).

An account's blocklist is a set of JIDs (``domain``, ``domain/resource``,
``node@domain`` or ``node@domain/resource``) kept in the ``blocklist`` keyval
store. The client gets it (``<blocklist/>``; that session then receives
pushes), adds to it (``<block/>``) and removes from it (``<unblock/>``, with no
items: everything).

Effects (XEP-0191 §3.3–3.5), checked at ``EARLY`` so they come before
delivery, offline storage and archiving:

* inbound, from a blocked JID: presence dropped; chat/normal messages and IQ
  requests answered with ``service-unavailable``; other messages, IQ results
  and errors dropped;
* outbound, from the user to a blocked JID: messages and IQ requests answered
  with ``not-acceptable`` + ``<blocked xmlns='urn:xmpp:blocking:errors'/>``;
  presence dropped silently (it is mostly server-generated broadcast);
* on block: each available resource of the user sends ``unavailable`` to the
  newly blocked contact if that contact had the user's presence (subscription
  ``from``/``both``, or directed presence);
* on unblock: the current presence of each available resource goes to the
  contact again when it is subscribed to it, and the contact is probed when
  the user is subscribed to the contact's presence.

Each host keeps its accounts' lists (store and cache) in a :class:`Blocklists`,
which it provides: a host checking what a local sender on another host blocks
reads it through that host's provided object.
"""
from __future__ import annotations

import collections
import secrets
import weakref
import xml.etree.ElementTree as ET

from xmppd.moduleapi import EARLY, HANDLED, Option, roster as rs, stanza_event
from xmppd.xmpp import ns, stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split
from xmppd.xmpp.stanza import copy as copy_element
from xmppd.xmpp.stanzas import Block, BlockItem, BlockList, Unblock, view

PROTOCOLS = ["XEP-0191"]
OPTIONS = [
    Option("blocklist_cache_size", "integer", 4096, "global",
           "How many accounts' blocklists each host keeps in memory.", min=1),
]
STORE = "blocklist"
MODULE = "blocklist"     # the name other hosts find our provided object under


def matches(blocked: frozenset[str], jid: str) -> bool:
    """XEP-0191 §3.6 / XEP-0016 matching of ``jid`` against a blocklist."""
    if not blocked or not jid:
        return False
    try:
        node, domain, resource = jid_split(jid)
    except InvalidJID:
        return False
    bare = f"{node}@{domain}" if node else domain
    if bare in blocked or domain in blocked:
        return True
    if resource:
        return f"{bare}/{resource}" in blocked or f"{domain}/{resource}" in blocked
    return False


def prep(jid: str | None) -> str:
    """An item's JID, normalised; ``jid-malformed`` when it is missing or invalid."""
    if not jid:
        raise StanzaError("jid-malformed", "an item needs a jid")
    try:
        node, domain, resource = jid_split(jid)
    except InvalidJID:
        raise StanzaError("jid-malformed", f"invalid JID {jid!r}") from None
    out = f"{node}@{domain}" if node else domain
    return f"{out}/{resource}" if resource else out


def blocked_error(text: str = "You have blocked this JID") -> StanzaError:
    return StanzaError("not-acceptable", text, app=ET.Element(f"{{{ns.BLOCKING_ERRORS}}}blocked"))


def payload(cls, jids) -> ET.Element:
    """``<blocklist/>``, ``<block/>`` or ``<unblock/>`` with an item per JID."""
    out = cls()
    for jid in jids:
        item = BlockItem()
        item["jid"] = jid
        out.append(item)
    return out.xml


class LRU:
    """Blocklists by user, least recently used dropped first."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._d: collections.OrderedDict[str, frozenset[str]] = collections.OrderedDict()

    def get(self, key):
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key, value: frozenset[str]) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


class Blocklists:
    """One host's blocklists (what the module provides), its IQ handlers and the
    effects on stanzas."""

    def __init__(self, host, store, cache_size: int = 4096):
        self.host = host
        self.store = store
        self.cache = LRU(cache_size)
        self.interested: weakref.WeakSet = weakref.WeakSet()   # sessions that fetched the list

    async def of(self, user: str) -> frozenset[str]:
        """The JIDs ``user`` blocks (empty for unknown users)."""
        v = self.cache.get(user)
        if v is None:
            stored = await self.store.get(user)
            v = frozenset(stored or ())
            self.cache.put(user, v)
        return v

    def forget(self, user: str) -> None:
        """``user-deleted``: the store is deleted right after this event: remember
        "nothing blocked" rather than let a read in between cache the old list."""
        self.cache.put(user, frozenset())

    async def _send(self, stanza: ET.Element) -> None:
        await self.host.server.router.route(stanza, self.host)

    # -- the IQs (the own-account check is declared) ------------------------------------
    async def get_list(self, event):
        blocked = await self.of(event.user)
        if event.session is not None:
            self.interested.add(event.session)
        return payload(BlockList, sorted(blocked))

    async def edit(self, event):
        user = event.user
        request = view(event.payload)
        action = request.name
        jids = [prep(item["jid"]) for item in request["items"]]
        if action == "block" and not jids:
            raise StanzaError("bad-request", "<block/> needs at least one item")
        old = await self.of(user)
        if action == "block":
            new = old | frozenset(jids)
        elif jids:
            new = old - frozenset(jids)
        else:
            new = frozenset()
        if new != old:
            await self.store.set(user, sorted(new) if new else None)
            self.cache.put(user, new)
        # the reply first, then pushes and presence effects
        await self._send(st.iq_result(event.stanza))
        push_payload = payload(Block if action == "block" else Unblock, jids)
        for sess in list(self.host.sessions_of(user).values()):
            if sess in self.interested:
                push = st.make("iq", {"type": "set", "id": "push-" + secrets.token_hex(4),
                                      "to": sess.full_jid})
                push.append(push_payload)
                sess.send(push)
        if action == "block":
            await self.after_block(user, [j for j in jids if j not in old])
        else:
            await self.after_unblock(user, sorted(old - new))
        return HANDLED

    async def after_block(self, user: str, jids: list[str]) -> None:
        """Unavailable from each available resource to a newly blocked contact that
        had its presence."""
        host = self.host
        sessions = [s for s in host.sessions_of(user).values() if s.available]
        if not sessions:
            return
        for jid in jids:
            sub = await host.roster.subscription(user, jid)
            for sess in sessions:
                if rs.sends_presence_to(sub) or jid in sess.directed:
                    await self._send(st.make("presence", {"type": "unavailable",
                                                          "from": sess.full_jid, "to": jid}))
                    sess.directed.discard(jid)

    async def after_unblock(self, user: str, jids: list[str]) -> None:
        """Presence again to an unblocked subscriber; a probe when the user is
        subscribed to the contact."""
        host = self.host
        sessions = [s for s in host.sessions_of(user).values() if s.available]
        if not sessions:
            return
        for jid in jids:
            sub = await host.roster.subscription(user, jid)
            if rs.sends_presence_to(sub):
                for sess in sessions:
                    if sess.presence is not None:
                        out = copy_element(sess.presence)
                        out.set("from", sess.full_jid)
                        out.set("to", jid)
                        await self._send(out)
            if rs.has_presence_of(sub):
                await self._send(st.make("presence", {"type": "probe", "from": f"{user}@{host.name}",
                                                      "to": jid}))

    # -- inbound: the recipient (an account here) blocks the sender ------------------------
    async def recipient_blocks(self, sev) -> bool:
        if not sev.to_node or not sev.from_jid:
            return False
        if sev.origin is None and sev.stanza.get("type") == "error":
            return False  # the router's bounce of the user's own stanza (e.g. ours above)
        return matches(await self.of(sev.to_node), sev.from_jid)

    async def sender_blocks(self, sev) -> bool:
        """A local account (of any host here) sent this through the server (not
        from its own client, whose stanzas are checked on ``pre-*``): does it
        block the recipient?"""
        if getattr(sev.origin, "kind", None) == "c2s" or not sev.from_jid:
            return False
        try:
            node, domain, _ = jid_split(sev.from_jid)
        except InvalidJID:
            return False
        if not node:
            return False
        if domain == self.host.name:
            lists = self
        else:
            other = self.host.server.hosts.get(domain)
            lists = other.provided(MODULE) if other is not None else None
            if lists is None:
                return False
        to = sev.stanza.get("to")
        return bool(to) and matches(await lists.of(node), to)

    async def in_presence(self, sev):
        if await self.recipient_blocks(sev):
            return HANDLED
        if sev.stanza.get("type") != "unavailable" and await self.sender_blocks(sev):
            return HANDLED
        return None

    async def in_message(self, sev):
        if not await self.recipient_blocks(sev):
            return None
        if (sev.stanza.get("type") or "normal") in ("chat", "normal"):
            raise StanzaError("service-unavailable")
        return HANDLED

    async def in_iq(self, sev):
        if not await self.recipient_blocks(sev):
            return None
        if sev.stanza.get("type") in ("get", "set"):
            raise StanzaError("service-unavailable")
        return HANDLED

    # -- outbound: the user's client sends to a JID the user blocks --------------------------
    async def user_blocks(self, sev) -> bool:
        origin = sev.origin
        to = sev.stanza.get("to")
        if not to or getattr(origin, "username", None) is None:
            return False
        return matches(await self.of(origin.username), to)

    async def out_bounce(self, sev):
        if not await self.user_blocks(sev):
            return None
        t = sev.stanza.get("type")
        if t == "error" or (t == "result" and sev.kind == "iq"):
            return HANDLED
        raise blocked_error()

    async def out_presence(self, sev):
        if await self.user_blocks(sev):
            return HANDLED
        return None

    async def remote(self, sev):
        """``route/remote``: presence the server generated for one of this host's
        accounts, going to another server."""
        if sev.kind == "presence" and sev.stanza.get("type") != "unavailable":
            try:
                if jid_split(sev.from_jid)[1] != self.host.name:
                    return None
            except InvalidJID:
                return None
            if await self.sender_blocks(sev):
                return HANDLED
        return None


def setup(m) -> None:
    lists = Blocklists(m.host, m.open_store(STORE, "keyval"), m.get_option("blocklist_cache_size"))
    m.provide(lists)
    m.add_feature(ns.BLOCKING)
    m.add_feature(ns.BLOCKING, to="account")
    m.hook_iq("get", ns.BLOCKING, "blocklist", lists.get_list, to=("bare",),
              own_account="service-unavailable")
    for name in ("block", "unblock"):
        m.hook_iq("set", ns.BLOCKING, name, lists.edit, to=("bare",), own_account="service-unavailable")
    for to_type in ("bare", "full"):
        m.hook(stanza_event("presence", to_type), lists.in_presence, EARLY)
        m.hook(stanza_event("message", to_type), lists.in_message, EARLY)
        m.hook(stanza_event("iq", to_type), lists.in_iq, EARLY)
    for to_type in ("bare", "full", "host"):
        m.hook(stanza_event("message", to_type, pre=True), lists.out_bounce, EARLY)
        m.hook(stanza_event("iq", to_type, pre=True), lists.out_bounce, EARLY)
        m.hook(stanza_event("presence", to_type, pre=True), lists.out_presence, EARLY)
    m.hook_global("route/remote", lists.remote, EARLY)
    m.hook("user-deleted", lists.forget)

"""Blocking Command (XEP-0191).

An account's blocklist is a set of JIDs (``domain``, ``domain/resource``,
``node@domain`` or ``node@domain/resource``) kept in the ``blocklist`` keyval
store. The client gets it (``<blocklist/>``; that session then receives
pushes), adds to it (``<block/>``) and removes from it (``<unblock/>``, with no
items: everything).

Effects (XEP-0191 §3.3–3.5), checked at ``ev.EARLY`` so they come before
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
"""
from __future__ import annotations

import collections
import secrets
import weakref
import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.core import events as ev
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split

from xmppd.moduleapi import roster as rs
from xmppd.xmpp.stanza import copy as copy_element

PROTOCOLS = ["XEP-0191"]
OPTIONS = [
    Option("blocklist_cache_size", "integer", 4096, "global",
           "How many accounts' blocklists are kept in memory.", min=1),
]
NS = "urn:xmpp:blocking"
NS_ERRORS = "urn:xmpp:blocking:errors"
STORE = "blocklist"


class _Cache:
    """Blocklists by (host, user), least recently used dropped first. One per
    server, shared by its hosts' instances so that a host can see a local
    sender's blocklist."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._d: collections.OrderedDict[tuple[str, str], frozenset[str]] = collections.OrderedDict()

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

    def drop(self, key) -> None:
        self._d.pop(key, None)


_caches: "weakref.WeakKeyDictionary[object, _Cache]" = weakref.WeakKeyDictionary()


def _cache_of(server) -> _Cache:
    c = _caches.get(server)
    if c is None:
        c = _caches[server] = _Cache()
    return c


async def blocklist_of(server, hostname: str, user: str) -> frozenset[str]:
    """The JIDs ``user@hostname`` blocks (empty for unknown users)."""
    cache = _cache_of(server)
    key = (hostname, user)
    v = cache.get(key)
    if v is None:
        stored = await server.storage.keyval(hostname, STORE).get(user)
        v = frozenset(stored or ())
        cache.put(key, v)
    return v


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


def _prep(jid: str | None) -> str:
    if not jid:
        raise StanzaError("jid-malformed", "an item needs a jid")
    try:
        node, domain, resource = jid_split(jid)
    except InvalidJID:
        raise StanzaError("jid-malformed", f"invalid JID {jid!r}") from None
    out = f"{node}@{domain}" if node else domain
    return f"{out}/{resource}" if resource else out


def _blocked_error(text: str = "You have blocked this JID") -> StanzaError:
    return StanzaError("not-acceptable", text, app=ET.Element(f"{{{NS_ERRORS}}}blocked"))


def setup(m) -> None:
    host = m.host
    server = m.server
    store = m.open_store(STORE, "keyval")
    _cache = _cache_of(server)
    _cache.size = m.get_option("blocklist_cache_size")
    interested: weakref.WeakSet = weakref.WeakSet()
    m.add_feature(NS)
    m.add_feature(NS, to="account")

    def own(event) -> None:
        if event.from_bare != f"{event.to_node}@{host.name}":
            raise StanzaError("service-unavailable")

    async def get_list(event):
        own(event)
        blocked = await blocklist_of(server, host.name, event.to_node)
        q = ET.Element(f"{{{NS}}}blocklist")
        for jid in sorted(blocked):
            ET.SubElement(q, f"{{{NS}}}item", {"jid": jid})
        if getattr(event.origin, "kind", None) == "c2s":
            interested.add(event.origin)
        return q

    async def edit(event):
        own(event)
        user = event.to_node
        action = st.split_tag(event.payload.tag)[1]
        jids = [_prep(item.get("jid")) for item in event.payload.iter(f"{{{NS}}}item")]
        if action == "block" and not jids:
            raise StanzaError("bad-request", "<block/> needs at least one item")
        old = await blocklist_of(server, host.name, user)
        if action == "block":
            new = old | frozenset(jids)
        elif jids:
            new = old - frozenset(jids)
        else:
            new = frozenset()
        if new != old:
            await store.set(user, sorted(new) if new else None)
            _cache.put((host.name, user), new)
        # the reply first, then pushes and presence effects
        await m.send(st.iq_result(event.stanza))
        push_payload = ET.Element(f"{{{NS}}}{action}")
        for jid in jids:
            ET.SubElement(push_payload, f"{{{NS}}}item", {"jid": jid})
        for sess in list(host.sessions_of(user).values()):
            if sess in interested:
                push = st.make("iq", {"type": "set", "id": "push-" + secrets.token_hex(4),
                                      "to": sess.full_jid})
                push.append(push_payload)
                sess.send(push)
        if action == "block":
            await _after_block(user, [j for j in jids if j not in old])
        else:
            await _after_unblock(user, sorted(old - new))
        return ev.HANDLED

    async def _after_block(user: str, jids: list[str]) -> None:
        sessions = [s for s in host.sessions_of(user).values() if s.available]
        if not sessions:
            return
        for jid in jids:
            sub = await host.roster.subscription(user, jid)
            for sess in sessions:
                if rs.sends_presence_to(sub) or jid in sess.directed:
                    await m.send(st.make("presence", {"type": "unavailable",
                                                      "from": sess.full_jid, "to": jid}))
                    sess.directed.discard(jid)

    async def _after_unblock(user: str, jids: list[str]) -> None:
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
                        await m.send(out)
            if rs.has_presence_of(sub):
                await m.send(st.make("presence", {"type": "probe", "from": f"{user}@{host.name}",
                                                  "to": jid}))

    # -- inbound: the recipient (an account here) blocks the sender ----------
    async def recipient_blocks(sev) -> bool:
        if not sev.to_node or not sev.from_jid:
            return False
        if sev.origin is None and sev.stanza.get("type") == "error":
            return False  # the router's bounce of the user's own stanza (e.g. ours above)
        return matches(await blocklist_of(server, host.name, sev.to_node), sev.from_jid)

    async def sender_blocks(sev) -> bool:
        """A local account sent this through the server (not from its own
        client, whose stanzas are checked on ``pre-*``): does it block the
        recipient?"""
        if getattr(sev.origin, "kind", None) == "c2s" or not sev.from_jid:
            return False
        try:
            node, domain, _ = jid_split(sev.from_jid)
        except InvalidJID:
            return False
        other = server.hosts.get(domain)
        if not node or other is None or "blocklist" not in other.modules:
            return False
        to = sev.stanza.get("to")
        return bool(to) and matches(await blocklist_of(server, domain, node), to)

    async def in_presence(sev):
        if await recipient_blocks(sev):
            return ev.HANDLED
        if sev.stanza.get("type") != "unavailable" and await sender_blocks(sev):
            return ev.HANDLED
        return None

    async def in_message(sev):
        if not await recipient_blocks(sev):
            return None
        if (sev.stanza.get("type") or "normal") in ("chat", "normal"):
            raise StanzaError("service-unavailable")
        return ev.HANDLED

    async def in_iq(sev):
        if not await recipient_blocks(sev):
            return None
        if sev.stanza.get("type") in ("get", "set"):
            raise StanzaError("service-unavailable")
        return ev.HANDLED

    # -- outbound: the user's client sends to a JID the user blocks ----------
    async def user_blocks(sev) -> bool:
        origin = sev.origin
        to = sev.stanza.get("to")
        if not to or getattr(origin, "username", None) is None:
            return False
        return matches(await blocklist_of(server, host.name, origin.username), to)

    async def out_bounce(sev):
        if not await user_blocks(sev):
            return None
        t = sev.stanza.get("type")
        if t == "error" or (t == "result" and sev.kind == "iq"):
            return ev.HANDLED
        raise _blocked_error()

    async def out_presence(sev):
        if await user_blocks(sev):
            return ev.HANDLED
        return None

    async def remote(sev):
        # presence generated by the server for a local account, going to s2s
        if sev.kind == "presence" and sev.stanza.get("type") != "unavailable":
            try:
                if jid_split(sev.from_jid)[1] != host.name:
                    return None
            except InvalidJID:
                return None
            if await sender_blocks(sev):
                return ev.HANDLED
        return None

    def forget(user) -> None:
        # the store is deleted right after this event: remember "nothing blocked"
        # rather than let a read in between cache the old list
        _cache.put((host.name, user), frozenset())

    m.hook_iq("get", NS, "blocklist", get_list, to=("bare",))
    m.hook_iq("set", NS, "block", edit, to=("bare",))
    m.hook_iq("set", NS, "unblock", edit, to=("bare",))
    for to_type in ("bare", "full"):
        m.hook(ev.stanza_event("presence", to_type), in_presence, ev.EARLY)
        m.hook(ev.stanza_event("message", to_type), in_message, ev.EARLY)
        m.hook(ev.stanza_event("iq", to_type), in_iq, ev.EARLY)
    for to_type in ("bare", "full", "host"):
        m.hook(ev.stanza_event("message", to_type, pre=True), out_bounce, ev.EARLY)
        m.hook(ev.stanza_event("iq", to_type, pre=True), out_bounce, ev.EARLY)
        m.hook(ev.stanza_event("presence", to_type, pre=True), out_presence, ev.EARLY)
    m.hook_global("route/remote", remote, ev.EARLY)
    m.hook("user-deleted", forget)

"""Who hears of what: PEP notifications and the presence and caps bookkeeping
behind them.

* A notification is a ``headline`` message from the account's bare JID with a
  ``pubsub#event`` payload. It goes to the owner's available resources (those
  whose caps are known: only for the nodes they want), to every entity whose
  presence the account received and whose entity capabilities (XEP-0115)
  include ``NODE+notify`` if the node's access model lets it see the node, and
  to explicit subscribers.
* The caps of each such entity are fetched once per (hash, ver) with a
  disco#info request (:mod:`.caps`), answered here; meanwhile the entity is
  waiting for them.
* When an entity becomes available (or changes its caps), it gets the last
  item of each node it wants and may see, delayed (XEP-0203).

Store: ``pep_caps`` (map: caps key → the nodes it wants notifications of).
"""
from __future__ import annotations

import asyncio
import secrets
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.jid import bare as jid_bare

from . import caps as capsmod
from xmppd.xmpp.pubsub import Node, items_event

if TYPE_CHECKING:
    from .service import PEP

CAPS_TIMEOUT = 30      # seconds to wait for an entity's disco#info answer


class Notifier:
    """The notifications of one host's PEP service."""

    def __init__(self, pep: "PEP"):
        self.pep = pep
        self.m = pep.m
        self.host = pep.host
        self.caps_store = self.m.open_store("pep_caps", "map")
        self.caps = capsmod.CapsCache()
        # user -> full JID of an entity whose presence the account received -> caps key
        self.recipients: dict[str, dict[str, str | None]] = {}
        # caps key -> {(user, full)} waiting for that key's features
        self.waiting: dict[str, set[tuple[str, str]]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}

    # -- sending -------------------------------------------------------------------
    async def send_event(self, user: str, to: str, ev_el: ET.Element,
                         stamp: float | None = None) -> None:
        """A headline from the account; ``stamp``: a delayed (last published) item."""
        owner = self.pep.jid(user)
        msg = st.make("message", {"type": "headline", "from": owner, "to": to,
                                  "id": "pep-" + secrets.token_hex(6)})
        msg.append(ev_el)
        if stamp is not None:
            st.add_delay(msg, owner, stamp)
        await self.m.send(msg)

    async def targets(self, user: str, node: Node) -> list[str]:
        """Who gets a notification of ``node`` now."""
        owner = self.pep.jid(user)
        svc = await self.pep.service(user)
        rec = self.recipients.get(user, {})
        out: list[str] = []
        own_sessions = self.host.sessions_of(user).values()
        for s in own_sessions:
            # the owner's resources: filtered by +notify when their caps are
            # known; a resource without (known) caps gets every notification
            if s.available:
                key = rec.get(s.full_jid)
                wanted = self.caps.get(key) if key else None
                if wanted is None or node.name in wanted:
                    out.append(s.full_jid)
        seen = {s.full_jid for s in own_sessions}
        verdict: dict[str, bool] = {}

        async def allowed(bare: str) -> bool:
            if bare not in verdict:
                verdict[bare] = svc.may_access(node, await self.pep.requester(user, bare))
            return verdict[bare]

        for full, key in list(rec.items()):
            if full in seen or key is None:
                continue
            wanted = self.caps.get(key)
            if not wanted or node.name not in wanted:
                continue
            bare = jid_bare(full)
            if bare == owner or await allowed(bare):
                out.append(full)
                seen.add(full)
        for jid in list(node.subscriptions):
            if jid not in seen and node.deliver_to(jid) and await allowed(jid_bare(jid)):
                out.append(jid)
                seen.add(jid)
        return out

    async def broadcast(self, user: str, node: Node, ev_el: ET.Element,
                        targets: list[str] | None = None) -> None:
        if targets is None:
            targets = await self.targets(user, node)
        for to in targets:
            await self.send_event(user, to, ev_el)

    async def send_last_items(self, user: str, full: str, wanted: frozenset[str]) -> None:
        """The last item of each of ``user``'s nodes ``full`` wants and may see."""
        if not wanted:
            return
        svc = await self.pep.service(user)
        req = None
        for node in list(svc.nodes.values()):
            if node.name not in wanted:
                continue
            if node.config["pubsub#send_last_published_item"] != "on_sub_and_presence":
                continue
            last = node.last_item()
            if last is None:
                continue
            if req is None:
                req = await self.pep.requester(user, full)
            if not svc.may_access(node, req):
                continue
            await self.send_event(user, full, items_event(node, [last]), last.when)

    # -- presence and caps ---------------------------------------------------------
    async def saw_presence(self, user: str, full: str, caps: capsmod.Caps | None) -> None:
        """``full`` is available to ``user`` (with ``caps``): remember it, fetch
        unknown caps, send the last items it wants."""
        rec = self.recipients.setdefault(user, {})
        new = full not in rec
        old = rec.get(full)
        key = caps.key if caps else None
        rec[full] = key
        if key is None:
            return
        wanted = self.caps.get(key)
        if wanted is None:
            stored = await self.caps_store.get("", key)
            if stored is not None:
                wanted = frozenset(stored)
                self.caps.put(key, wanted)
        if wanted is None:
            if self.caps.failed(key):
                return        # asked already, and got no usable answer: not again for a while
            self.waiting.setdefault(key, set()).add((user, full))
            iq = self.caps.request(caps, full, self.host.name)
            if iq is not None:
                self.timers[iq.get("id")] = asyncio.get_running_loop().call_later(
                    CAPS_TIMEOUT, self._caps_timeout, iq.get("id"))
                await self.m.send(iq)
            return
        if new or old != key:
            await self.send_last_items(user, full, wanted)

    def _caps_timeout(self, iq_id: str) -> None:
        self.timers.pop(iq_id, None)
        got = self.caps.take(iq_id)
        if got is not None:
            self.waiting.pop(got[0].key, None)
            self.caps.fail(got[0].key)

    def lost_presence(self, user: str, full: str) -> None:
        rec = self.recipients.get(user)
        if rec is not None:
            rec.pop(full, None)
            if not rec:
                del self.recipients[user]

    def forget_user(self, user: str) -> None:
        self.recipients.pop(user, None)

    def cancel_timers(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()

    async def caps_reply(self, sev) -> bool:
        """The answer to one of our caps disco#info requests (True: it was one)."""
        stanza = sev.stanza
        iq_id = stanza.get("id") or ""
        if not iq_id.startswith("caps-") or stanza.get("type") not in ("result", "error"):
            return False
        got = self.caps.take(iq_id)
        if got is None:
            return False
        handle = self.timers.pop(iq_id, None)
        if handle is not None:
            handle.cancel()
        caps, full = got
        waiting = self.waiting.pop(caps.key, set())
        query = stanza.find(ns.q(ns.DISCO_INFO, "query"))
        if stanza.get("type") != "result" or query is None or sev.from_jid != full:
            self.caps.fail(caps.key)
            return True
        wanted = capsmod.notify_nodes(capsmod.features_of(query))
        if not capsmod.verify(caps, query):
            self.m.log.info("caps of %s do not verify (%s); using them for it alone", full, caps.ver)
            key = f"jid:{full}:{caps.ver}"
            self.caps.put(key, wanted)
            for user, f in waiting:
                rec = self.recipients.get(user)
                if f == full and rec is not None and rec.get(f) == caps.key:
                    rec[f] = key
                    await self.send_last_items(user, f, wanted)
            return True
        self.caps.put(caps.key, wanted)
        await self.caps_store.set("", caps.key, sorted(wanted))
        for user, f in waiting:
            rec = self.recipients.get(user)
            if rec is not None and rec.get(f) == caps.key:
                await self.send_last_items(user, f, wanted)
        return True

    # -- event handlers ------------------------------------------------------------
    async def on_own_presence(self, sev):
        """A presence broadcast by one of the host's clients: its own caps."""
        origin = sev.origin
        if getattr(origin, "kind", None) != "c2s" or origin.full_jid is None:
            return None
        t = sev.stanza.get("type")
        if t is None:
            await self.saw_presence(origin.username, origin.full_jid, capsmod.parse_caps(sev.stanza))
        elif t == "unavailable":
            self.lost_presence(origin.username, origin.full_jid)
        return None

    async def on_inbound_presence(self, sev):
        """A presence to one of the host's accounts from another entity. Only a
        contact's broadcast presence (to the bare JID, from someone whose presence
        the account shares its presence with: subscription from or both) counts, as
        in Prosody: a directed presence, and anyone else's, makes no disco#info query
        to its sender."""
        if sev.host is not self.host or not sev.to_node:
            return None
        full = sev.from_jid
        if "/" not in full or sev.from_bare == sev.to_bare:
            return None
        t = sev.stanza.get("type")
        if t is None:
            if sev.to_type != "bare":
                return None
            if not self.host.sessions_of(sev.to_node) and sev.to_node not in self.recipients \
                    and not await self.pep.account_exists(sev.to_node):
                return None
            sub = await self.host.roster.subscription(sev.to_node, sev.from_bare)
            if sub not in ("from", "both"):
                return None
            await self.saw_presence(sev.to_node, full, capsmod.parse_caps(sev.stanza))
        elif t == "unavailable":
            self.lost_presence(sev.to_node, full)
        return None

    def on_unbound(self, arg) -> None:
        sess, _exc = arg
        if sess.username and sess.full_jid:
            self.lost_presence(sess.username, sess.full_jid)

    async def on_iq_reply(self, sev):
        if await self.caps_reply(sev):
            return HANDLED
        return None

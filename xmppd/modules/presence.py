"""Presence (RFC 6121 §4) and presence subscriptions (§3), always loaded.

* A client's presence without 'to' is its availability: reflected to the
  account's own available resources and broadcast to every contact with a
  subscription of ``from``/``both``; the initial one also probes the contacts the
  user is subscribed to (``to``/``both``), brings the new resource the presence of
  the account's other resources and the subscription requests still waiting for an
  answer, re-sends unanswered outgoing requests (as Prosody does), and fires
  ``resource-available`` (``session.priority`` already set).
* Unavailable (sent, or on connection loss via ``resource-unbind``) is broadcast the
  same way and undoes directed presence.
* Subscription stanzas drive the Appendix A state machine of the core roster
  service (``moduleapi.roster``, ``host.roster``):
  outbound on the sender's host (``pre-presence/*``), inbound on the contact's host
  (``presence/*``), with the roster pushes and presence the RFC requires.
* Probes are answered with the presence of every available resource when the
  prober is subscribed, ``unavailable`` when none is, ``unsubscribed`` otherwise.

Every stanza meant for another account goes through the router (with the user's
session as origin for the user's own presence), so the blocking module's
``pre-presence/*``/``presence/*`` hooks at ``EARLY`` can drop it. Handlers here run
at ``NORMAL`` (subscriptions, probes, broadcast) and ``LATE`` (delivery,
directed-presence tracking).
"""
from __future__ import annotations

import contextvars
import logging
import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED, LATE, NORMAL, Option, roster as rs, stanza_event
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare as bare_of
from xmppd.xmpp.stanza import parse_priority

log = logging.getLogger("xmppd.mod.presence")

PROTOCOLS = ["RFC 6121 §3", "RFC 6121 §4"]
OPTIONS = [
    Option("max_subscription_requests", "integer", 100, "both",
           "Subscription requests from people not on a user's roster kept waiting for an "
           "answer; more are dropped (the sender is not told).", min=1, limit=True),
    Option("subscription_request_max_size", "integer", 1024, "both",
           "Bytes of a waiting subscription request's status and nickname that are kept "
           "(the rest is cut).", min=64, limit=True),
]
NICK = f"{{{ns.NICK}}}nick"
STATUS = "{jabber:client}status"


# Set while this module routes presence it generated on a user's behalf (broadcasts,
# probe answers): the outbound hooks must not take those for client-sent directed
# presence or subscription stanzas.
_generated: contextvars.ContextVar[bool] = contextvars.ContextVar("xmppd_presence_generated", default=False)


def copy_to(stanza: ET.Element, to: str | None, **attrs: str) -> ET.Element:
    """A copy sharing the children, to ``to`` (None: no 'to'), with ``attrs`` set."""
    out = ET.Element(stanza.tag, dict(stanza.attrib))
    out.text = stanza.text
    out.extend(list(stanza))
    if to is None:
        out.attrib.pop("to", None)
    else:
        out.set("to", to)
    for k, v in attrs.items():
        out.set(k, v)
    return out


def available_sessions(host, user: str) -> list:
    return host.available_sessions(user)


async def route_as(server, stanza: ET.Element, origin) -> None:
    """Route a stanza this module generated (not a client's own directed presence)."""
    tok = _generated.set(True)
    try:
        await server.router.route(stanza, origin)
    finally:
        _generated.reset(tok)


async def send_presence_of_available(host, user: str, to: str, template: ET.Element | None = None) -> int:
    """Send each available resource's presence (or ``template``) from it to ``to``."""
    count = 0
    for sess in available_sessions(host, user):
        base = template if template is not None else sess.presence
        if base is None:
            continue
        await route_as(host.server, copy_to(base, to, **{"from": sess.full_jid}), sess)
        count += 1
    return count


def _presence(attrs: dict) -> ET.Element:
    return st.make("presence", attrs)


# ---------------------------------------------------------------- outbound subscriptions
async def process_outbound(host, user: str, contact: str, ptype: str, stanza: ET.Element) -> None:
    """The user's server on an outbound subscription stanza (§3.1.2, §3.1.5, §3.2.2,
    §3.3.2, §3.4): update the roster, push, route (or not), send presence."""
    server = host.server
    bare = f"{user}@{host.name}"
    info: dict = {}

    def change(item):
        before = rs.state_of(item)
        new_state, passes = rs.transition("outbound", ptype, before)
        info.update(before=before, passes=passes, preapprove=False, unapprove=False)
        if ptype == "subscribe":
            item = item or rs.new_item()
            item["listed"] = True     # §3.1.2: the contact goes on the roster
        elif item is None:
            if ptype == "subscribed":
                item = rs.new_item()  # §3.4: pre-approval of someone not on the roster
            else:
                return None
        if ptype == "subscribed" and not passes and before in (rs.NONE, rs.NONE_OUT, rs.TO):
            item["listed"] = True
            item["approved"] = True
            info["preapprove"] = True
            return item
        if ptype == "unsubscribed" and not passes and item.get("approved"):
            item["approved"] = False  # §3.4: a pre-approval is cancelled, nothing is routed
            info["unapprove"] = True
            return item
        if ptype == "subscribed" and passes:
            item["listed"] = True     # approving a stranger puts them on the roster
        return rs.set_state(item, new_state)

    # an error here (the roster is full) goes back to the sending resource
    old, new, ver = await host.roster.update(user, contact, change)
    stanza.set("from", bare)       # §3.1.2: stamped with the bare JID
    stanza.set("to", contact)
    pushed = rs.visible(old) != rs.visible(new)
    if ptype == "unsubscribed" and info["passes"] and rs.is_subscribed(old, "from"):
        # §3.2.2: unavailable from every resource while the contact is still subscribed
        await send_presence_of_available(host, user, contact, _presence({"type": "unavailable"}))
    if info["passes"]:
        await server.router.route(stanza, host)
    if pushed:
        host.roster.push(user, contact, new, ver)
    if ptype == "subscribed" and info["passes"]:
        # §3.1.5: the new subscriber gets the current presence of every resource
        await send_presence_of_available(host, user, contact)


# ---------------------------------------------------------------- inbound subscriptions and probes
def stored_request(stanza: ET.Element, max_size: int) -> str:
    """What is kept of a subscription request until it is answered: its status and
    nickname (XEP-0172), each cut to ``max_size`` bytes between them; nothing else
    (a stranger cannot store 200 kB in a roster)."""
    out = ET.Element("{jabber:client}presence", {"type": "subscribe"})
    budget = max_size
    for tag in (NICK, STATUS):
        el = stanza.find(tag)
        if el is None or not el.text:
            continue
        data = el.text.encode()[:max(0, budget)]
        text = data.decode("utf-8", "ignore")
        budget -= len(text.encode())
        ET.SubElement(out, tag).text = text
    return rs.stanza_to_text(out)


async def waiting_requests(host, user: str) -> int:
    """Strangers' subscription requests the user has not answered."""
    return sum(1 for r in (await host.roster.records(user)).values()
               if r.get("pending_in") and not r.get("listed"))


async def process_inbound(host, user: str, sender: str, sender_full: str, ptype: str,
                          stanza: ET.Element, *, max_requests: int = 100,
                          max_request_size: int = 1024) -> None:
    """The contact's server on an inbound subscription stanza or probe (§3.1.3,
    §3.1.6, §3.2.3, §3.3.3, §4.3.2). ``user`` is local, ``sender`` a bare JID."""
    server = host.server
    bare = f"{user}@{host.name}"

    if ptype in ("subscribe", "probe") and not await server.accounts.exists(host.name, user):
        # §8.5.1: no such user
        await server.router.route(_presence({"type": "unsubscribed", "from": bare, "to": sender}), host)
        return

    if ptype == "probe":
        item = await host.roster.get_item(user, sender)
        if sender == bare or rs.is_subscribed(item, "from"):
            if await send_presence_of_available(host, user, sender_full) == 0:
                await server.router.route(_presence({"type": "unavailable", "from": bare, "to": sender_full}), host)
        else:
            await server.router.route(_presence({"type": "unsubscribed", "from": bare, "to": sender}), host)
        return

    if sender == bare:
        return   # one's own subscription is implicit

    if (ptype == "subscribe" and await host.roster.get_record(user, sender) is None
            and await waiting_requests(host, user) >= max_requests):
        log.info("%s: %d subscription requests waiting; dropping the one from %s",
                 bare, max_requests, sender)
        return

    stanza = copy_to(stanza, bare, **{"from": sender})
    info: dict = {}

    def change(item):
        before = rs.state_of(item)
        info.update(before=before, auto=None)
        if ptype == "subscribe":
            if rs.is_subscribed(item, "from"):
                info["auto"] = "already"          # §3.1.3: already subscribed
                return item
            if item is not None and item.get("approved"):
                info["auto"] = "preapproved"      # §3.4
                return rs.set_state(item, {rs.NONE: rs.FROM, rs.NONE_OUT: rs.FROM_OUT,
                                           rs.TO: rs.BOTH}.get(before, before))
        new_state, deliver = rs.transition("inbound", ptype, before)
        info["deliver"] = deliver
        if item is None:
            if new_state == rs.NONE:
                return None
            item = rs.new_item(listed=False)      # a stranger's request: not a roster item
        item = rs.set_state(item, new_state)
        if ptype == "subscribe" and deliver:
            item["request"] = stored_request(stanza, max_request_size)
        return item

    old, new, ver = await host.roster.update(user, sender, change)
    auto = info.get("auto")
    if auto:
        if rs.visible(old) != rs.visible(new):
            host.roster.push(user, sender, new, ver)
        await server.router.route(_presence({"type": "subscribed", "from": bare, "to": sender}), host)
        if await send_presence_of_available(host, user, sender) == 0 and auto == "already":
            await server.router.route(_presence({"type": "unavailable", "from": bare, "to": sender}), host)
        return
    if not info.get("deliver"):
        return
    if ptype == "subscribe":
        targets = available_sessions(host, user)      # others get it at their next login
    else:
        targets = host.roster.interested(user)
    for sess in targets:
        sess.send(copy_to(stanza, sess.full_jid))
    if rs.visible(old) != rs.visible(new):
        host.roster.push(user, sender, new, ver)
    if ptype == "unsubscribe" and rs.is_subscribed(old, "from"):
        # §3.3.3: the former subscriber sees the user go offline
        await send_presence_of_available(host, user, sender, _presence({"type": "unavailable"}))


# ---------------------------------------------------------------- roster removal and account deletion
async def after_remove(host, user: str, contact: str, old: dict, session=None) -> None:
    """§2.5.3: after ``contact`` left the roster, cancel what there was."""
    server = host.server
    bare = f"{user}@{host.name}"
    sub = old.get("subscription") or "none"
    if sub in ("from", "both"):
        await send_presence_of_available(host, user, contact, _presence({"type": "unavailable"}))
    if sub in ("from", "both") or old.get("pending_in"):
        await server.router.route(_presence({"type": "unsubscribed", "from": bare, "to": contact}), host)
    if sub in ("to", "both") or old.get("ask"):
        await server.router.route(_presence({"type": "unsubscribe", "from": bare, "to": contact}), host)


async def user_deleted(host, user: str) -> None:
    """Account deletion: contacts see the user go, local rosters forget the user,
    remote contacts are told the subscriptions are over."""
    server = host.server
    bare = f"{user}@{host.name}"
    sessions = available_sessions(host, user)
    for s in sessions:
        s.available = False   # their resource-unbind must not broadcast again
    records = await host.roster.records(user)
    for contact, item in records.items():
        if rs.is_subscribed(item, "from"):
            for s in sessions:
                await route_as(server, _presence({"type": "unavailable", "from": s.full_jid, "to": contact}), s)
        chost = server.hosts.get(contact.rpartition("@")[2])
        if chost is not None and chost.is_virtualhost:
            continue   # handled below, with every local roster that holds the user
        if item.get("subscription") in ("from", "both") or item.get("pending_in"):
            await server.router.route(_presence({"type": "unsubscribed", "from": bare, "to": contact}), host)
        if item.get("subscription") in ("to", "both") or item.get("ask"):
            await server.router.route(_presence({"type": "unsubscribe", "from": bare, "to": contact}), host)
    for other in list(server.hosts.values()):
        if not other.is_virtualhost:
            continue
        for u in await other.roster.users():
            if other is host and u == user:
                continue
            old, _new, ver = await other.roster.update(u, bare, lambda item: None)
            if old is not None and old.get("listed"):
                other.roster.push(u, bare, None, ver)
    await host.roster.remove_all(user)


# ---------------------------------------------------------------- a resource's own presence
async def own_presence(host, sess, stanza: ET.Element) -> None:
    """Availability of one of our resources, from the client or on connection loss."""
    server = host.server
    t = stanza.get("type")
    user = sess.username
    stanza.attrib.pop("to", None)
    stanza.set("from", sess.full_jid)
    initial = False
    if t is None:
        initial = not sess.available
        sess.priority = parse_priority(stanza)
        sess.available = True
        stored = copy_to(stanza, None)
        st.add_delay(stored, host.name)
        sess.presence = stored
    else:
        sess.available = False
        sess.presence = None
    # the account's own resources, the sender included (§4.2.2, §4.5.2)
    own = available_sessions(host, user)
    if t == "unavailable" and sess not in own:
        own.append(sess)
    for s in own:
        s.send(copy_to(stanza, s.full_jid))
    roster = await host.roster.get_roster(user)
    subscribers = {c for c, item in roster.items() if rs.is_subscribed(item, "from")}
    for contact in sorted(subscribers):
        await route_as(server, copy_to(stanza, contact), sess)
    if initial:
        for contact, item in sorted(roster.items()):
            if rs.is_subscribed(item, "to"):
                await route_as(server, _presence({"type": "probe", "from": sess.full_jid, "to": contact}), sess)
        for s in available_sessions(host, user):
            if s is not sess and s.presence is not None:
                sess.send(copy_to(s.presence, sess.full_jid))
        for request in (await host.roster.pending_requests(user)).values():
            request.set("to", sess.full_jid)
            sess.send(request)
        for contact, item in sorted(roster.items()):
            if item.get("ask"):
                # §3.1.2: unanswered requests are sent again (Prosody does it at login)
                await server.router.route(_presence({"type": "subscribe", "from": sess.bare_jid,
                                                     "to": contact}), host)
        await host.events.notify("resource-available", sess)
    if t == "unavailable":
        await undo_directed(server, sess, skip=subscribers, template=stanza)


async def undo_directed(server, sess, skip=(), template=None) -> None:
    """Unavailable to every JID the resource sent directed presence to (§4.6.3)."""
    directed, sess.directed = set(sess.directed), set()
    for jid in sorted(directed):
        if bare_of(jid) in skip:
            continue
        base = template if template is not None else _presence({"type": "unavailable"})
        await route_as(server, copy_to(base, jid, **{"from": sess.full_jid}), sess)


# ---------------------------------------------------------------- from our clients
async def on_broadcast(sev):
    """``presence/broadcast``: a client's presence without 'to'."""
    origin = sev.origin
    if getattr(origin, "kind", None) != "c2s":
        return HANDLED
    t = sev.stanza.get("type")
    if t == "error":
        return HANDLED
    if t not in (None, "unavailable"):
        raise StanzaError("bad-request", f"presence of type {t} needs a 'to'")
    await own_presence(origin.host, origin, sev.stanza)
    return HANDLED


async def outbound(sev):
    """``pre-presence/*``: a client's subscription stanza (not our own traffic)."""
    if _generated.get() or getattr(sev.origin, "kind", None) != "c2s":
        return None
    t = sev.stanza.get("type")
    if t not in rs.SUBSCRIPTION_TYPES:
        return None
    sess = sev.origin
    contact = sev.to_bare
    if contact == sess.bare_jid:
        return HANDLED     # no subscription to oneself
    await process_outbound(sess.host, sess.username, contact, t, sev.stanza)
    return HANDLED


def track_directed(sev):
    """``pre-presence/*``, after blocking: remember directed presence (§4.6)."""
    if _generated.get() or getattr(sev.origin, "kind", None) != "c2s":
        return None
    sess = sev.origin
    t = sev.stanza.get("type")
    to = f"{sev.to_bare}/{sev.to_resource}" if sev.to_resource else sev.to_bare
    if sev.to_bare == sess.bare_jid:
        return None
    if t is None:
        sess.directed.add(to)     # even before initial presence, as Prosody
    elif t == "unavailable":
        sess.directed.discard(to)
    return None


# ---------------------------------------------------------------- to our accounts and to the host
async def inbound(sev):
    """``presence/bare``, ``presence/full``: subscription stanzas and probes."""
    t = sev.stanza.get("type")
    if t not in rs.SUBSCRIPTION_TYPES and t != "probe":
        return None
    sender = sev.from_bare
    if not sender:
        return HANDLED
    host = sev.host
    await process_inbound(host, sev.to_node, sender, sev.from_jid, t, sev.stanza,
                          max_requests=host.provided("presence").max_requests(),
                          max_request_size=host.provided("presence").max_request_size())
    return HANDLED


async def to_host(sev):
    """``presence/host``: the server answers probes and accepts subscriptions."""
    host = sev.host
    t = sev.stanza.get("type")
    sender = sev.from_bare
    route = host.server.router.route
    if sender and t == "probe":
        await route(_presence({"from": host.name, "to": sev.from_jid}), host)
    elif sender and t == "subscribe":
        await route(_presence({"type": "subscribed", "from": host.name, "to": sender}), host)
        await route(_presence({"from": host.name, "to": sender}), host)
    return HANDLED


async def to_bare(sev):
    """``presence/bare`` (late): availability to every available resource."""
    t = sev.stanza.get("type")
    if t in (None, "unavailable"):
        for s in available_sessions(sev.host, sev.to_node):
            s.send(sev.stanza)
    return HANDLED     # errors to a bare JID are dropped


async def to_full(sev):
    """``presence/full`` (late): to that resource, if it is here."""
    t = sev.stanza.get("type")
    if t in (None, "unavailable", "error"):
        sess = sev.host.get_session(sev.to_node, sev.to_resource)
        if sess is not None:
            sess.send(sev.stanza)
    return HANDLED


async def unbound(arg) -> None:
    """``resource-unbind``: a resource that goes away is unavailable."""
    sess, _exc = arg
    if sess.available:
        await own_presence(sess.host, sess, _presence({"type": "unavailable"}))
    elif sess.directed:
        await undo_directed(sess.host.server, sess)


# ---------------------------------------------------------------- the module
class Settings:
    """This host's presence options (what the module provides)."""

    def __init__(self, m):
        self.m = m

    def max_requests(self) -> int:
        return self.m.get_option("max_subscription_requests")

    def max_request_size(self) -> int:
        return self.m.get_option("subscription_request_max_size")


def setup(m) -> None:
    host = m.host
    m.provide(Settings(m))
    for to_type in ("bare", "full", "host"):
        m.hook(stanza_event("presence", to_type, pre=True), outbound, NORMAL)
        m.hook(stanza_event("presence", to_type, pre=True), track_directed, LATE)
    m.hook(stanza_event("presence", "broadcast"), on_broadcast, NORMAL)
    m.hook(stanza_event("presence", "bare"), inbound, NORMAL)
    m.hook(stanza_event("presence", "full"), inbound, NORMAL)
    m.hook(stanza_event("presence", "host"), to_host, NORMAL)
    m.hook(stanza_event("presence", "bare"), to_bare, LATE)
    m.hook(stanza_event("presence", "full"), to_full, LATE)
    m.hook("resource-unbind", unbound)
    m.hook("user-deleted", lambda user: user_deleted(host, user))
    m.hook("roster-item-removed",
           lambda e: after_remove(host, e["user"], e["contact"], e["item"], e["session"]))

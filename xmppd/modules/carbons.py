"""Message Carbons (XEP-0280): every device of a user sees both sides of its chats.

A resource turns carbons on or off with ``<enable/>``/``<disable/>``
(``urn:xmpp:carbons:2``); the flag is this module's session slot and dies with
the session (a resumed stream keeps it, as it adopts the old state).

* **received**: a message delivered to one resource (or, sent to the bare JID,
  to the highest-priority ones) is copied, wrapped in
  ``<received><forwarded>``, to the user's *other* carbons-enabled
  resources (with or without presence). Hooked on ``message/bare`` and
  ``message/full`` at ``LATE``: after the archive (which adds the
  ``<stanza-id/>`` clients dedupe on), before delivery at ``LAST``.
* **sent**: a message sent by one resource is copied as ``<sent>`` to the
  sender's other carbons-enabled resources (``pre-message/*``).

Eligible (XEP-0280 §6, the rules Prosody and ejabberd apply): type ``chat``;
type ``normal`` with a ``<body/>``; payloads of instant messaging without a
body (chat states, receipts, chat markers, jingle message initiation); an
incoming error bounced by a bare JID; anything the archive stamped with a
``<stanza-id by=user/>``. Never: ``groupchat``, ``headline``, messages with
``<private xmlns='urn:xmpp:carbons:2'/>`` (removed from the delivered copy, as
§8 says) or the ``<no-copy xmlns='urn:xmpp:hints'/>`` hint, and private messages
coming from a MUC occupant (``<x xmlns='http://jabber.org/protocol/muc#user'/>``
on a message addressed to a full JID: other resources are not in the room).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import LATE, InlineFeature, SessionSlot, stanza_event
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.stanza import has_body, namespace_of

PROTOCOLS = ["XEP-0280", "XEP-0297"]
OPTIONS: list = []

PRIVATE = f"{{{ns.CARBONS}}}private"
NO_COPY = f"{{{ns.HINTS}}}no-copy"
MUC_X = f"{{{ns.MUC_USER}}}x"
STANZA_ID = f"{{{ns.SID}}}stanza-id"
ENABLE = f"{{{ns.CARBONS}}}enable"

# Payload namespaces of instant messaging that make a body-less message worth a
# copy (XEP-0085 chat states, XEP-0184 receipts, XEP-0333 markers, XEP-0353).
IM_PAYLOADS = frozenset({
    ns.CHATSTATES,
    ns.RECEIPTS,
    ns.MARKERS,
    ns.JINGLE_MESSAGE_0,
    ns.JINGLE_MESSAGE,
})


def eligible(stanza: ET.Element, *, inbound: bool, user_bare: str, to_full: bool) -> bool:
    """Whether ``stanza`` is copied (XEP-0280 §6). ``inbound``: about to be delivered
    to ``user_bare``; otherwise sent by one of its resources."""
    if stanza.find(PRIVATE) is not None or stanza.find(NO_COPY) is not None:
        return False
    t = stanza.get("type") or "normal"
    if t in ("groupchat", "headline"):
        return False
    if inbound and to_full and stanza.find(MUC_X) is not None:
        return False  # a private message from a MUC occupant
    if t == "chat":
        return True
    if t == "normal" and has_body(stanza):
        return True
    if t == "error":
        if not inbound:
            return False
        frm = stanza.get("from") or ""
        return "/" not in frm  # bounced by a bare JID, i.e. by a server for an account
    for child in stanza:
        if namespace_of(child.tag) in IM_PAYLOADS:
            return True
        if child.tag == STANZA_ID and child.get("by") == user_bare:
            return True  # the archive kept it: it is part of the conversation
    return False


def wrap(direction: str, stanza: ET.Element, user_bare: str) -> ET.Element:
    """``<message from=bare type=..><sent|received><forwarded>copy</forwarded>...``"""
    copy = ET.Element("{jabber:client}message", dict(stanza.attrib))
    copy.text = stanza.text
    copy.extend(list(stanza))
    out = ET.Element("{jabber:client}message", {"from": user_bare})
    t = stanza.get("type")
    if t:
        out.set("type", t)
    wrapper = ET.SubElement(out, f"{{{ns.CARBONS}}}{direction}")
    fwd = ET.SubElement(wrapper, f"{{{ns.FORWARD}}}forwarded")
    fwd.append(copy)
    return out


def send_copies(carbon: ET.Element, sessions) -> None:
    for s in sessions:
        out = ET.Element(carbon.tag, dict(carbon.attrib))
        out.extend(list(carbon))
        out.set("to", s.full_jid)
        s.send(out)


def without_private(stanza: ET.Element) -> ET.Element:
    """§8: the recipient gets a ``<private/>`` message without the element."""
    out = ET.Element(stanza.tag, dict(stanza.attrib))
    out.text = stanza.text
    out.extend(c for c in stanza if c.tag != PRIVATE)
    return out


class Carbons:
    """Which sessions of a host want carbons (the slot), and the copies they get.

    Enabling is an explicit request: like Prosody, a resource that enabled carbons
    gets them with or without presence (e.g. a bot that never sends any). A
    hibernated session (stream management) is still bound and queues what it is
    sent until it resumes, so it gets its carbons too."""

    def __init__(self, host, slot: SessionSlot, log):
        self.host = host
        self.slot = slot
        self.log = log

    # -- <enable/> and <disable/> ---------------------------------------------------
    def toggle(self, event):
        """To the account's bare JID (or none): the own-account check is declared."""
        session = event.session
        if event.payload.tag == ENABLE:
            self.slot.set(session, True)
        else:
            self.slot.pop(session)
        self.log.debug("%s %s carbons", session.full_jid,
                       "enabled" if event.payload.tag == ENABLE else "disabled")
        return None

    def enable_inline(self, session, el):
        if el.tag == ENABLE:
            self.slot.set(session, True)
            self.log.debug("%s enabled carbons at binding", session.full_jid)
        return None

    def toggle_at_host(self, event):
        """To the server's JID: from one of this host's clients only."""
        session = event.session
        if session is None or session.host is not self.host:
            raise StanzaError("not-allowed", "carbons are for this server's own clients")
        return self.toggle(event)

    # -- received: messages about to be delivered to a local account ----------------
    def inbound(self, sev):
        user = sev.to_node
        if not user:
            return None
        stanza = sev.stanza
        if stanza.find(PRIVATE) is not None:
            sev.stanza = without_private(stanza)   # never copied
            return None
        host = self.host
        all_sessions = host.sessions_of(user)
        if not all_sessions:
            return None
        wants = self.slot.get
        candidates = [s for s in all_sessions.values() if wants(s)]
        if not candidates:
            return None
        user_bare = f"{user}@{host.name}"
        to_full = sev.to_type == "full"
        if not eligible(stanza, inbound=True, user_bare=user_bare, to_full=to_full):
            return None
        # Who gets the original under RFC 6121 (the message module's rules)?
        t = stanza.get("type") or "normal"
        target = host.get_session(user, sev.to_resource) if to_full else None
        if target is not None:
            receivers = (target,)
        elif to_full and t != "chat":
            return None  # bounced or dropped: nothing was delivered
        else:
            receivers = host.deliverable_sessions(user)
        others = [s for s in candidates if s not in receivers]
        if others:
            send_copies(wrap("received", stanza, user_bare), others)
        return None

    # -- sent: messages from one of this host's clients ------------------------------
    def outbound(self, sev):
        origin = sev.origin
        user = origin.username
        stanza = sev.stanza
        host = self.host
        sessions = host.sessions_of(user)
        if len(sessions) < 2:
            return None
        own_target = sev.to_resource if sev.to_node == user and sev.to_domain == host.name else None
        wants = self.slot.get
        others = [s for s in sessions.values()
                  if s is not origin and wants(s) and s.resource != own_target]
        if not others:
            return None
        user_bare = origin.bare_jid or f"{user}@{host.name}"
        if not eligible(stanza, inbound=False, user_bare=user_bare, to_full=sev.to_type == "full"):
            return None
        carbon = wrap("sent", stanza, user_bare)
        inner = carbon[0][0][0]
        if not inner.get("to"):
            inner.set("to", user_bare)
        if not inner.get("from") and origin.full_jid:
            inner.set("from", origin.full_jid)
        send_copies(carbon, others)
        return None


def setup(m) -> None:
    carbons = Carbons(m.host, m.session_slot(), m.log)
    m.add_feature(ns.CARBONS)
    m.add_feature(ns.CARBONS_RULES)
    for name in ("enable", "disable"):
        m.hook_iq("set", ns.CARBONS, name, carbons.toggle, to=("bare",), own_account="not-allowed")
        m.hook_iq("set", ns.CARBONS, name, carbons.toggle_at_host, to=("host",))
    for to_type in ("bare", "full"):
        m.hook(stanza_event("message", to_type), carbons.inbound, LATE)
    for to_type in ("bare", "full", "host"):
        m.hook(stanza_event("message", to_type, pre=True), carbons.outbound, LATE)
    # <enable/> inside a binding request (XEP-0386): nothing to answer
    m.add_item("inline-feature", InlineFeature(ns.CARBONS, "bind", carbons.enable_inline))

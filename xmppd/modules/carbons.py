"""Message Carbons (XEP-0280): every device of a user sees both sides of its chats.

A resource turns carbons on or off with ``<enable/>``/``<disable/>``
(``urn:xmpp:carbons:2``); the flag lives in ``session.state["carbons"]`` and dies
with the session (a resumed stream keeps it, as it adopts the old state).

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

from xmppd.core import events as ev
from xmppd.xmpp.errors import StanzaError


PROTOCOLS = ["XEP-0280", "XEP-0297"]
OPTIONS: list = []

NS = "urn:xmpp:carbons:2"
NS_RULES = "urn:xmpp:carbons:rules:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_SID = "urn:xmpp:sid:0"
STATE = "carbons"

PRIVATE = f"{{{NS}}}private"
NO_COPY = f"{{{NS_HINTS}}}no-copy"
MUC_X = f"{{{NS_MUC_USER}}}x"
BODY = "{jabber:client}body"
STANZA_ID = f"{{{NS_SID}}}stanza-id"

# Payload namespaces of instant messaging that make a body-less message worth a
# copy (XEP-0085 chat states, XEP-0184 receipts, XEP-0333 markers, XEP-0353).
IM_PAYLOADS = frozenset({
    "http://jabber.org/protocol/chatstates",
    "urn:xmpp:receipts",
    "urn:xmpp:chat-markers:0",
    "urn:xmpp:jingle-message:0",
    "urn:xmpp:jingle-message:1",
})


def _ns(tag: str) -> str:
    return tag[1:tag.index("}")] if tag[:1] == "{" else ""


def _has_body(stanza: ET.Element) -> bool:
    return stanza.find(BODY) is not None or stanza.find("body") is not None


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
    if t == "normal" and _has_body(stanza):
        return True
    if t == "error":
        if not inbound:
            return False
        frm = stanza.get("from") or ""
        return "/" not in frm  # bounced by a bare JID, i.e. by a server for an account
    for child in stanza:
        ns = _ns(child.tag)
        if ns in IM_PAYLOADS:
            return True
        if child.tag == STANZA_ID and child.get("by") == user_bare:
            return True  # the archive kept it: it is part of the conversation
    return False


def _wrap(direction: str, stanza: ET.Element, user_bare: str) -> ET.Element:
    """``<message from=bare type=..><sent|received><forwarded>copy</forwarded>...``"""
    copy = ET.Element("{jabber:client}message", dict(stanza.attrib))
    copy.text = stanza.text
    copy.extend(list(stanza))
    out = ET.Element("{jabber:client}message", {"from": user_bare})
    t = stanza.get("type")
    if t:
        out.set("type", t)
    wrapper = ET.SubElement(out, f"{{{NS}}}{direction}")
    fwd = ET.SubElement(wrapper, f"{{{NS_FORWARD}}}forwarded")
    fwd.append(copy)
    return out


def _send_copies(carbon: ET.Element, sessions) -> None:
    for s in sessions:
        out = ET.Element(carbon.tag, dict(carbon.attrib))
        out.extend(list(carbon))
        out.set("to", s.full_jid)
        s.send(out)


def _wants(sess) -> bool:
    # Enabling is an explicit request: like Prosody, a resource that enabled carbons
    # gets them with or without presence (e.g. a bot that never sends any).
    # A hibernated session (stream management) is still bound and queues what it
    # is sent until it resumes, so it gets its carbons too.
    return bool(sess.state.get(STATE))


def setup(m) -> None:
    host = m.host
    m.add_feature(NS)
    m.add_feature(NS_RULES)

    def toggle(event):
        origin = event.origin
        if getattr(origin, "kind", None) != "c2s" or origin.host is not host:
            raise StanzaError("not-allowed", "carbons are for this server's own clients")
        if event.to_node and event.from_bare != f"{event.to_node}@{host.name}":
            raise StanzaError("not-allowed", "carbons of another account")
        enable = event.payload.tag == f"{{{NS}}}enable"
        if enable:
            origin.state[STATE] = True
        else:
            origin.state.pop(STATE, None)
        m.log.debug("%s %s carbons", origin.full_jid, "enabled" if enable else "disabled")
        return None

    for name in ("enable", "disable"):
        m.hook_iq("set", NS, name, toggle, to=("host", "bare"))

    # -- received: messages about to be delivered to a local account ----------
    def inbound(sev):
        user = sev.to_node
        if not user:
            return None
        stanza = sev.stanza
        if stanza.find(PRIVATE) is not None:
            # §8: never copied; the recipient gets it without the element
            out = ET.Element(stanza.tag, dict(stanza.attrib))
            out.text = stanza.text
            out.extend(c for c in stanza if c.tag != PRIVATE)
            sev.stanza = out
            return None
        all_sessions = host.sessions_of(user)
        if not all_sessions:
            return None
        candidates = [s for s in all_sessions.values() if _wants(s)]
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
            _send_copies(_wrap("received", stanza, user_bare), others)
        return None

    # -- sent: messages from one of this host's clients ------------------------
    def outbound(sev):
        origin = sev.origin
        user = origin.username
        stanza = sev.stanza
        sessions = host.sessions_of(user)
        if len(sessions) < 2:
            return None
        own_target = sev.to_resource if sev.to_node == user and sev.to_domain == host.name else None
        others = [s for s in sessions.values()
                  if s is not origin and _wants(s) and s.resource != own_target]
        if not others:
            return None
        user_bare = origin.bare_jid or f"{user}@{host.name}"
        if not eligible(stanza, inbound=False, user_bare=user_bare, to_full=sev.to_type == "full"):
            return None
        carbon = _wrap("sent", stanza, user_bare)
        inner = carbon[0][0][0]
        if not inner.get("to"):
            inner.set("to", user_bare)
        if not inner.get("from") and origin.full_jid:
            inner.set("from", origin.full_jid)
        _send_copies(carbon, others)
        return None

    for to_type in ("bare", "full"):
        m.hook(ev.stanza_event("message", to_type), inbound, ev.LATE)
    for to_type in ("bare", "full", "host"):
        m.hook(ev.stanza_event("message", to_type, pre=True), outbound, ev.LATE)


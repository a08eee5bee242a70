"""Push notifications (XEP-0357) to an app server, for phones whose app is asleep.

A client registers a push service (``<enable jid='push.example' node='…'/>``).
When a message with a body arrives for the account while none of its sessions
can take it live — all offline or hibernating (stream management) — the server
publishes a summary to the push service: the message count and the last sender
(the body only if ``push_notification_with_body`` is on). Prosody's module name.
"""
from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.core import events as ev
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0357"]
NS = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"
OPTIONS = [
    Option("push_notification_with_body", "boolean", False, "both",
           "Include the message body in notifications (it then passes through the app vendor)."),
    Option("push_notification_with_sender", "boolean", True, "both",
           "Include the sender's JID in notifications."),
    Option("push_max_registrations", "integer", 20, "both",
           "Push services one account may register.", min=1),
]


def _field(form: ET.Element, var: str, value: str) -> None:
    f = ET.SubElement(form, f"{{{DATA}}}field", {"var": var})
    ET.SubElement(f, f"{{{DATA}}}value").text = value


def setup(m) -> None:
    host = m.host
    store = m.open_store("push", "map")      # user -> {jid\0node: {jid, node, options}}
    pending: dict[str, int] = {}              # user -> messages since they were last online

    m.add_feature(NS, to="account")

    def own(event):
        if event.from_bare != f"{event.to_node}@{host.name}":
            raise StanzaError("forbidden", "push settings are your own account's")

    async def enable(event):
        own(event)
        q = event.payload
        jid, node = q.get("jid"), q.get("node")
        if not jid or not node:
            raise StanzaError("bad-request", "enable needs 'jid' and 'node'")
        regs = await store.items(event.to_node)
        key = f"{jid}\0{node}"
        if key not in regs and len(regs) >= m.get_option("push_max_registrations"):
            raise StanzaError("policy-violation", "too many push registrations")
        form = q.find(f"{{{DATA}}}x")
        await store.set(event.to_node, key, {
            "jid": jid, "node": node,
            "options": ET.tostring(form, encoding="unicode") if form is not None else None})
        return None

    async def disable(event):
        own(event)
        q = event.payload
        jid, node = q.get("jid"), q.get("node")
        if not jid:
            raise StanzaError("bad-request", "disable needs 'jid'")
        regs = await store.items(event.to_node)
        for key, reg in regs.items():
            if reg["jid"] == jid and (node is None or reg["node"] == node):
                await store.delete(event.to_node, key)
        return None

    m.hook_iq("set", NS, "enable", enable, to=("bare",))
    m.hook_iq("set", NS, "disable", disable, to=("bare",))

    def reachable_live(user: str) -> bool:
        return any(s.available and s.priority >= 0 and not s.hibernating
                   for s in host.sessions_of(user).values())

    def has_body(stanza) -> bool:
        return stanza.find("{jabber:client}body") is not None or stanza.find("body") is not None

    async def notify(user: str, stanza) -> None:
        regs = await store.items(user)
        if not regs:
            return
        count = pending[user] = pending.get(user, 0) + 1
        for key, reg in regs.items():
            iq = st.make("iq", {"type": "set", "id": "push-" + secrets.token_hex(6),
                                "from": f"{user}@{host.name}", "to": reg["jid"]})
            pubsub = ET.SubElement(iq, f"{{{PUBSUB}}}pubsub")
            publish = ET.SubElement(pubsub, f"{{{PUBSUB}}}publish", {"node": reg["node"]})
            item = ET.SubElement(publish, f"{{{PUBSUB}}}item")
            notification = ET.SubElement(item, f"{{{NS}}}notification")
            form = ET.SubElement(notification, f"{{{DATA}}}x", {"type": "submit"})
            _field(form, "FORM_TYPE", "urn:xmpp:push:summary")
            _field(form, "message-count", str(count))
            if m.get_option("push_notification_with_sender") and stanza.get("from"):
                _field(form, "last-message-sender", stanza.get("from"))
            if m.get_option("push_notification_with_body"):
                body = stanza.find("{jabber:client}body")
                if body is not None and body.text:
                    _field(form, "last-message-body", body.text)
            if reg.get("options"):
                opts = ET.SubElement(pubsub, f"{{{PUBSUB}}}publish-options")
                opts.append(ET.fromstring(reg["options"]))
            m.log.debug("push notification for %s@%s to %s", user, host.name, reg["jid"])
            await m.send(iq)

    async def on_message(sev):
        stanza = sev.stanza
        if stanza.get("type") in ("error", "groupchat", "headline") or not has_body(stanza):
            return None
        user = sev.to_node
        if user and not reachable_live(user):
            await notify(user, stanza)
        return None

    def back_online(session):
        pending.pop(session.username, None)

    async def push_error(sev):
        # the app server refused: forget that registration (XEP-0357 §7)
        stanza = sev.stanza
        if stanza.get("type") != "error" or not (stanza.get("id") or "").startswith("push-"):
            return None
        user = sev.to_node
        for key, reg in (await store.items(user)).items():
            if reg["jid"] == stanza.get("from"):
                m.log.info("push service %s refused a notification; disabling it for %s", reg["jid"], user)
                await store.delete(user, key)
        return ev.HANDLED

    m.hook(ev.stanza_event("message", "bare"), on_message, ev.EARLY)
    m.hook(ev.stanza_event("message", "full"), on_message, ev.EARLY)
    m.hook(ev.stanza_event("iq", "bare"), push_error, ev.EARLY)
    m.hook("resource-available", back_online)

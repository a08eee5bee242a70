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

from xmppd.moduleapi import EARLY, HANDLED, Option, stanza_event
from xmppd.xmpp import forms, ns, stanza as st
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0357"]
OPTIONS = [
    Option("push_notification_with_body", "boolean", False, "both",
           "Include the message body in notifications (it then passes through the app vendor)."),
    Option("push_notification_with_sender", "boolean", True, "both",
           "Include the sender's JID in notifications."),
    Option("push_max_registrations", "integer", 20, "both",
           "Push services one account may register.", min=1, limit=True),
]
STORE = "push"          # user -> {jid\0node: {jid, node, options}}
OPTION_FORM_TYPES = ("submit", "form", "result")


def summary_form(count: int, sender: str | None = None, body: str | None = None) -> ET.Element:
    """The ``urn:xmpp:push:summary`` form of a notification (XEP-0357 §7)."""
    fields = [forms.Field("message-count", value=str(count))]
    if sender:
        fields.append(forms.Field("last-message-sender", value=sender))
    if body:
        fields.append(forms.Field("last-message-body", value=body))
    return forms.build(ns.PUSH_SUMMARY, fields, type="submit")


def read_publish_options(form: ET.Element | None) -> dict | None:
    """The publish options a client gave with ``<enable/>``, as stored."""
    if form is None:
        return None
    sub = forms.read(form, types=OPTION_FORM_TYPES)
    return {"form_type": sub.form_type, "fields": sub.fields}


def publish_options(stored) -> ET.Element | None:
    """The ``<x/>`` of ``<publish-options/>`` for stored options (a dict, or the
    XML text of the form that earlier versions stored)."""
    if not stored:
        return None
    if isinstance(stored, str):
        stored = read_publish_options(st.from_xml(stored))
    fields = [forms.Field(var, value=values) for var, values in stored["fields"].items()]
    return forms.build(stored.get("form_type") or ns.PUBSUB_PUBLISH_OPTIONS, fields, type="submit")


def notification(user_bare: str, reg: dict, summary: ET.Element) -> ET.Element:
    """The publish IQ to the app server of one registration."""
    iq = st.make("iq", {"type": "set", "id": "push-" + secrets.token_hex(6),
                        "from": user_bare, "to": reg["jid"]})
    pubsub = ET.SubElement(iq, f"{{{ns.PUBSUB}}}pubsub")
    publish = ET.SubElement(pubsub, f"{{{ns.PUBSUB}}}publish", {"node": reg["node"]})
    item = ET.SubElement(publish, f"{{{ns.PUBSUB}}}item")
    ET.SubElement(item, f"{{{ns.PUSH}}}notification").append(summary)
    options = publish_options(reg.get("options"))
    if options is not None:
        ET.SubElement(pubsub, f"{{{ns.PUBSUB}}}publish-options").append(options)
    return iq


def reachable_live(host, user: str) -> bool:
    """Some session takes messages now (available, not hibernating)."""
    return any(s.available and s.priority >= 0 and not s.hibernating
               for s in host.sessions_of(user).values())


class CloudNotify:
    """One host's push registrations and the message counts since last online."""

    def __init__(self, host, store, option, log):
        self.host = host
        self.store = store
        self.option = option      # option(name) -> its value on this host
        self.log = log
        self.pending: dict[str, int] = {}     # user -> messages since they were last online

    # -- the IQs (the own-account check is declared) -----------------------------------
    async def enable(self, event):
        q = event.payload
        jid, node = q.get("jid"), q.get("node")
        if not jid or not node:
            raise StanzaError("bad-request", "enable needs 'jid' and 'node'")
        user = event.user
        regs = await self.store.items(user)
        key = f"{jid}\0{node}"
        if key not in regs and len(regs) >= self.option("push_max_registrations"):
            raise StanzaError("policy-violation", "too many push registrations")
        options = read_publish_options(q.find(forms.X))
        await self.store.set(user, key, {"jid": jid, "node": node, "options": options})
        return None

    async def disable(self, event):
        q = event.payload
        jid, node = q.get("jid"), q.get("node")
        if not jid:
            raise StanzaError("bad-request", "disable needs 'jid'")
        user = event.user
        for key, reg in (await self.store.items(user)).items():
            if reg["jid"] == jid and (node is None or reg["node"] == node):
                await self.store.delete(user, key)
        return None

    # -- notifications ----------------------------------------------------------------------
    async def notify(self, user: str, stanza: ET.Element) -> None:
        regs = await self.store.items(user)
        if not regs:
            return
        count = self.pending[user] = self.pending.get(user, 0) + 1
        sender = stanza.get("from") if self.option("push_notification_with_sender") else None
        body = None
        if self.option("push_notification_with_body"):
            body_el = stanza.find("{jabber:client}body")
            body = body_el.text if body_el is not None else None
        user_bare = f"{user}@{self.host.name}"
        for reg in regs.values():
            iq = notification(user_bare, reg, summary_form(count, sender, body))
            self.log.debug("push notification for %s to %s", user_bare, reg["jid"])
            await self.host.server.router.route(iq, self.host)

    async def on_message(self, sev):
        """``message/bare``, ``message/full`` (early): a message with a body for an
        account nobody can take it for now."""
        stanza = sev.stanza
        if stanza.get("type") in ("error", "groupchat", "headline") or not st.has_body(stanza):
            return None
        user = sev.to_node
        if user and not reachable_live(self.host, user):
            await self.notify(user, stanza)
        return None

    def back_online(self, session) -> None:
        self.pending.pop(session.username, None)

    async def push_error(self, sev):
        """The app server refused: forget that registration (XEP-0357 §7)."""
        stanza = sev.stanza
        if stanza.get("type") != "error" or not (stanza.get("id") or "").startswith("push-"):
            return None
        user = sev.to_node
        for key, reg in (await self.store.items(user)).items():
            if reg["jid"] == stanza.get("from"):
                self.log.info("push service %s refused a notification; disabling it for %s",
                              reg["jid"], user)
                await self.store.delete(user, key)
        return HANDLED


def setup(m) -> None:
    push = CloudNotify(m.host, m.open_store(STORE, "map"), m.get_option, m.log)
    m.add_feature(ns.PUSH, to="account")
    m.hook_iq("set", ns.PUSH, "enable", push.enable, to=("bare",), own_account=True)
    m.hook_iq("set", ns.PUSH, "disable", push.disable, to=("bare",), own_account=True)
    m.hook(stanza_event("message", "bare"), push.on_message, EARLY)
    m.hook(stanza_event("message", "full"), push.on_message, EARLY)
    m.hook(stanza_event("iq", "bare"), push.push_error, EARLY)
    m.hook("resource-available", push.back_online)

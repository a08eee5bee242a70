"""In-Band Registration (XEP-0077).

* Account creation on a not-yet-authenticated stream, only when
  ``allow_registration = true`` (global or for the host); then the
  ``<register xmlns='http://jabber.org/features/iq-register'/>`` stream feature
  is offered before authentication. While ``c2s_require_encryption`` is on
  (the default) it needs TLS (``policy-violation`` otherwise). Disabled:
  ``service-unavailable``. Existing user → ``conflict``; missing or invalid
  username/password → ``not-acceptable``; a second registration from the same
  IP address within ``min_seconds_between_registrations`` → ``resource-constraint``.
* Logged-in accounts can always change their password
  (``<username/><password/>``) and remove their account (``<remove/>``): the
  removal is acknowledged, then the account and every stored item of it are
  deleted and its sessions closed.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from xmppd.config.options import CORE_OPTIONS, Option
from xmppd.core import events as ev
from xmppd.xmpp import stanza as st
from xmppd.core.accounts import AccountExists, NoSuchAccount
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, nodeprep

PROTOCOLS = ["XEP-0077"]
OPTIONS = [
    Option("min_seconds_between_registrations", "integer", 0, "both",
           "Seconds an IP address must wait between two in-band registrations (0: no limit).",
           min=0),
    Option("registration_instructions", "string",
           "Choose a username and password for use with this service.", "both",
           "Instructions sent with the registration form."),
]
NS = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
QUERY = f"{{{NS}}}query"
_ALLOW = next(o for o in CORE_OPTIONS if o.name == "allow_registration")


def _text(query: ET.Element, name: str) -> str:
    el = query.find(f"{{{NS}}}{name}")
    return (el.text or "") if el is not None else ""


def setup(m) -> None:
    host = m.host
    accounts = m.server.accounts
    last_by_ip: dict[str, float] = {}
    m.add_feature(NS)

    def allowed() -> bool:
        return bool(host.get_option("allow_registration", False, _ALLOW))

    def secure_enough(session) -> bool:
        return session.tls or not m.server.c2s_require_encryption(host)

    def stream_feature(session):
        if session.authenticated or not allowed() or not secure_enough(session):
            return None
        return ET.Element(f"{{{NS_FEATURE}}}register")

    def reply_error(session, iq, err: StanzaError) -> None:
        session.send(st.error_reply(iq, err, from_=host.name))

    async def unauthenticated(arg):
        session, iq = arg
        if session.authenticated:
            return None  # authenticated but unbound: not ours
        query = st.first_child(iq)
        t = iq.get("type")
        if query is None or query.tag != QUERY or len(iq) != 1 or not iq.get("id"):
            return None  # → not-authorized stream error
        if t not in ("get", "set"):
            return ev.HANDLED if t in ("result", "error") else None
        try:
            if not allowed():
                raise StanzaError("service-unavailable", "in-band registration is disabled")
            if not secure_enough(session):
                raise StanzaError("policy-violation", "encryption is required")
            payload = form() if t == "get" else await register(session, query)
        except StanzaError as err:
            reply_error(session, iq, err)
            return ev.HANDLED
        session.send(st.iq_result(iq, payload))
        return ev.HANDLED

    def form() -> ET.Element:
        q = ET.Element(QUERY)
        ET.SubElement(q, f"{{{NS}}}instructions").text = m.get_option("registration_instructions")
        ET.SubElement(q, f"{{{NS}}}username")
        ET.SubElement(q, f"{{{NS}}}password")
        return q

    async def register(session, query) -> None:
        if query.find(f"{{{NS}}}remove") is not None:
            raise StanzaError("registration-required", "log in to remove your account")
        username, password = _text(query, "username"), _text(query, "password")
        if not username or not password:
            raise StanzaError("not-acceptable", "username and password are required")
        try:
            user = nodeprep(username)
        except InvalidJID:
            raise StanzaError("not-acceptable", "the requested username is invalid") from None
        ip = session.peer.rsplit(":", 1)[0]
        wait = m.get_option("min_seconds_between_registrations")
        now = time.monotonic()
        if wait and now - last_by_ip.get(ip, -wait) < wait:
            raise StanzaError("resource-constraint", "too many registrations; try again later")
        try:
            await accounts.create(host.name, user, password)
        except AccountExists:
            raise StanzaError("conflict", "the requested username already exists") from None
        if wait:
            last_by_ip[ip] = now
            for k in [k for k, v in last_by_ip.items() if now - v >= wait]:
                del last_by_ip[k]
        m.log.info("account %s@%s registered in-band from %s", user, host.name, ip)
        await host.events.notify("user-registered", user)
        return None

    # -- logged in: password change and account removal ----------------------
    def own_user(event) -> str:
        if event.to_node:  # to the own bare JID (or no 'to')
            if event.from_bare != f"{event.to_node}@{host.name}":
                raise StanzaError("service-unavailable")
            return event.to_node
        node, _, rest = event.from_bare.partition("@")
        if rest != host.name or not node:
            raise StanzaError("not-allowed", "only accounts of this server can do that")
        return node

    def registered_info(event):
        user = own_user(event)
        q = ET.Element(QUERY)
        ET.SubElement(q, f"{{{NS}}}registered")
        ET.SubElement(q, f"{{{NS}}}username").text = user
        ET.SubElement(q, f"{{{NS}}}password")
        return q

    async def change(event):
        user = own_user(event)
        query = event.payload
        if query.find(f"{{{NS}}}remove") is not None:
            # acknowledge first: deleting closes this very session
            await m.send(st.iq_result(event.stanza))
            try:
                await accounts.delete(host.name, user)
            except NoSuchAccount:
                pass
            m.log.info("account %s@%s removed in-band", user, host.name)
            return ev.HANDLED
        username, password = _text(query, "username"), _text(query, "password")
        if not password:
            raise StanzaError("not-acceptable", "a new password is required")
        if username:
            try:
                if nodeprep(username) != user:
                    raise StanzaError("not-allowed", "you can only change your own password")
            except InvalidJID:
                raise StanzaError("not-acceptable", "invalid username") from None
        await accounts.set_password(host.name, user, password)
        return None

    m.add_stream_feature(stream_feature, stage="pre-auth")
    m.hook(ev.element_event("jabber:client", "iq", bound=False), unauthenticated)
    m.hook_iq("get", NS, "query", registered_info, to=("host", "bare"))
    m.hook_iq("set", NS, "query", change, to=("host", "bare"))

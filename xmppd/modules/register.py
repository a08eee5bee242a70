"""In-Band Registration (XEP-0077).

* Account creation on a not-yet-authenticated stream, only when
  ``allow_registration = true`` (global or for the host); then the
  ``<register xmlns='http://jabber.org/features/iq-register'/>`` stream feature
  is offered before authentication. While ``c2s_require_encryption`` is on
  (the default) it needs TLS (``policy-violation`` otherwise). Disabled:
  ``service-unavailable``. Existing user → ``conflict``; missing or invalid
  username/password → ``not-acceptable``; a second registration from the same
  IP address within ``min_seconds_between_registrations`` → ``resource-constraint``;
  ``<remove/>`` before logging in → ``registration-required``.
* Other modules take part through events and items: ``user-registering`` (fired
  with ``{"username", "session", "ip", "host"}`` before the account is created; a
  handler refuses by raising ``StanzaError``, or sets ``allow_reset`` to the
  username to let the request set a new password on that existing account,
  ``user-password-reset`` follows), ``user-registered-in-band`` (the
  same, once it exists; ``user-registered`` gets the username), and
  ``registration-gate`` items: while one is there, registration is offered even
  with ``allow_registration = false``, for whom a ``user-registering`` handler
  lets through ([invites_register](invites_register.md): invitations).
* Logged-in accounts can always change their password
  (``<username/><password/>``) and remove their account (``<remove/>``): the
  removal is acknowledged, then the account and every stored item of it are
  deleted and its sessions closed. Sent to the account's bare JID (or with no
  'to') only the account itself may ask (``service-unavailable`` otherwise); sent
  to the server, any account of this host (``not-allowed`` for others).

The queries are read and built with slixmpp's XEP-0077 ``Register`` payload.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import (
    HANDLED,
    AccountExists,
    NoSuchAccount,
    Option,
    core_option,
    element_event,
)
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, nodeprep
from xmppd.xmpp.stanzas import Register

PROTOCOLS = ["XEP-0077"]
OPTIONS = [
    Option("min_seconds_between_registrations", "integer", 0, "both",
           "Seconds an IP address must wait between two in-band registrations (0: no limit).",
           min=0, limit=True),
    Option("registration_instructions", "string",
           "Choose a username and password for use with this service.", "both",
           "Instructions sent with the registration form."),
]
QUERY = ns.q(ns.REGISTER, "query")
ALLOW_REGISTRATION = core_option("allow_registration")


def registration_form(instructions: str) -> ET.Element:
    """What an unauthenticated client is asked to fill in."""
    r = Register()
    r["instructions"] = instructions
    r.add_field("username")
    r.add_field("password")
    return r.xml


def registered_form(user: str) -> ET.Element:
    """What a logged-in account is told: it is registered, as ``user``."""
    r = Register()
    r["registered"] = True
    r["username"] = user
    r.add_field("password")
    return r.xml


def account_of(event) -> str:
    """The account a logged-in request is about: the addressed one (the
    declared own-account check let only itself through), or, sent to the
    server, the sender's, when it is an account of this host."""
    if event.to_node:
        return event.to_node
    node, _, domain = event.from_bare.partition("@")
    if domain != event.host.name or not node:
        raise StanzaError("not-allowed", "only accounts of this server can do that")
    return node


class Registration:
    """The module's state on one host: when each IP address last registered."""

    def __init__(self, m):
        self.m = m
        self.host = m.host
        self.accounts = m.server.accounts
        self.last_by_ip: dict[str, float] = {}

    def allowed(self) -> bool:
        return (bool(self.host.get_option("allow_registration", False, ALLOW_REGISTRATION))
                or bool(self.m.items("registration-gate")))

    def secure_enough(self, session) -> bool:
        return session.tls or not self.m.server.c2s_require_encryption(self.host)

    def stream_feature(self, session):
        if session.authenticated or not self.allowed() or not self.secure_enough(session):
            return None
        return ET.Element(ns.q(ns.REGISTER_FEATURE, "register"))

    # -- before authentication: account creation -------------------------------
    async def unauthenticated(self, arg):
        """An IQ on a stream that is not authenticated yet."""
        session, iq = arg
        if session.authenticated:
            return None  # authenticated but unbound: not ours
        query = st.first_child(iq)
        t = iq.get("type")
        if query is None or query.tag != QUERY or len(iq) != 1 or not iq.get("id"):
            return None  # → not-authorized stream error
        if t not in ("get", "set"):
            return HANDLED if t in ("result", "error") else None
        try:
            if not self.allowed():
                raise StanzaError("service-unavailable", "in-band registration is disabled")
            if not self.secure_enough(session):
                raise StanzaError("policy-violation", "encryption is required")
            if t == "get":
                payload = registration_form(self.m.get_option("registration_instructions"))
            else:
                payload = await self.register(session, Register(xml=query))
        except StanzaError as err:
            session.send(st.error_reply(iq, err, from_=self.host.name))
            return HANDLED
        session.send(st.iq_result(iq, payload))
        return HANDLED

    async def register(self, session, query: Register) -> None:
        if query["remove"]:
            raise StanzaError("registration-required", "log in to remove your account")
        username, password = query["username"], query["password"]
        if not username or not password:
            raise StanzaError("not-acceptable", "username and password are required")
        try:
            user = nodeprep(username)
        except InvalidJID:
            raise StanzaError("not-acceptable", "the requested username is invalid") from None
        ip = session.peer.rsplit(":", 1)[0]
        wait = self.m.get_option("min_seconds_between_registrations")
        now = time.monotonic()
        last_by_ip = self.last_by_ip
        if wait and now - last_by_ip.get(ip, -wait) < wait:
            raise StanzaError("resource-constraint", "too many registrations; try again later")
        event = {"username": user, "session": session, "ip": ip, "host": self.host}
        await self.host.events.fire("user-registering", event)
        if event.get("allow_reset") == user and await self.accounts.exists(self.host.name, user):
            # a handler let this registration set a new password (a reset invitation)
            await self.accounts.set_password(self.host.name, user, password)
            self.m.log.info("account %s@%s: new password set in-band (reset)", user, self.host.name)
            await self.host.events.notify("user-password-reset", event)
            return
        try:
            await self.accounts.create(self.host.name, user, password)
        except AccountExists:
            raise StanzaError("conflict", "the requested username already exists") from None
        if wait:
            last_by_ip[ip] = now
            for k in [k for k, v in last_by_ip.items() if now - v >= wait]:
                del last_by_ip[k]
        self.m.log.info("account %s@%s registered in-band from %s", user, self.host.name, ip)
        await self.host.events.notify("user-registered", user)
        await self.host.events.notify("user-registered-in-band", event)

    # -- logged in: password change and account removal -----------------------
    def registered_info(self, event):
        return registered_form(account_of(event))

    async def change(self, event):
        user = account_of(event)
        host = self.host
        query = Register(xml=event.payload)
        if query["remove"]:
            # acknowledge first: deleting closes this very session
            await self.m.send(st.iq_result(event.stanza))
            try:
                await self.accounts.delete(host.name, user)
            except NoSuchAccount:
                pass
            self.m.log.info("account %s@%s removed in-band", user, host.name)
            return HANDLED
        username, password = query["username"], query["password"]
        if not password:
            raise StanzaError("not-acceptable", "a new password is required")
        if username:
            try:
                if nodeprep(username) != user:
                    raise StanzaError("not-allowed", "you can only change your own password")
            except InvalidJID:
                raise StanzaError("not-acceptable", "invalid username") from None
        await self.accounts.set_password(host.name, user, password)
        return None


def setup(m) -> None:
    reg = Registration(m)
    m.add_feature(ns.REGISTER)
    m.add_stream_feature(reg.stream_feature, stage="pre-auth")
    m.hook(element_event(ns.CLIENT, "iq", bound=False), reg.unauthenticated)
    for iq_type, handler in (("get", reg.registered_info), ("set", reg.change)):
        m.hook_iq(iq_type, ns.REGISTER, "query", handler, to=("host",))
        m.hook_iq(iq_type, ns.REGISTER, "query", handler, to=("bare",),
                  own_account="service-unavailable")

"""Registering with an invitation (Prosody's mod_invites_register): XEP-0445
Pre-Authenticated In-Band Registration and XEP-0379 Pre-Authenticated Roster
Subscription, over the [invites](invites.md) store.

* Before logging in, a client sees the ``<register xmlns='urn:xmpp:ibr-token:0'/>``
  stream feature (and XEP-0401's older ``urn:xmpp:invite`` one, which Conversations
  looks for) and sends ``<iq type='set'><preauth xmlns='urn:xmpp:pars:0'
  token='TOKEN'/></iq>``: a valid token gets an empty result, an unknown, spent or
  expired one ``item-not-found`` (XEP-0445). Then it registers (XEP-0077) as usual.
  The expiry is checked at that moment only; a single-use invitation is spent once
  the account exists.
* ``registration_invite_only`` (default true): registration needs such a token,
  and while this module is loaded in-band registration is offered even with
  ``allow_registration = false``. Set to false, tokens are optional and only
  ``allow_registration`` opens registration to everyone. Without a token:
  ``not-acceptable``. An invitation for a given username accepts no other
  (``not-acceptable``), and nobody may take that name while it is pending
  (``conflict``).
* A password reset invitation (``xmppctl invite reset``, the ad-hoc command)
  lets the owner register their existing account again with it: the request
  sets the new password (another username: ``not-acceptable``).
* After registering: with a contact invitation (``ibr=y``) the inviter and the
  new account are each other's contacts at once; an administrator's invitation
  (``xmppctl invite create --admin``) makes the account an administrator (kept in
  the ``roles`` store, as Prosody 0.12 does); ``--group`` puts it in groups whose
  members become each other's contacts (roster group of that name).
* An account's contact invitation presented in a subscription request
  (``<presence type='subscribe'><preauth xmlns='urn:xmpp:pars:0' token=.../></presence>``,
  XEP-0379) is approved at once, and the account subscribes back: a mutual
  subscription without asking anyone. A wrong token leaves an ordinary request.
"""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from xmppd.moduleapi import (
    EARLY,
    HANDLED,
    Option,
    element_event,
    roster as rs,
    stanza_event,
)
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0445", "XEP-0379"]
DEPENDS = ["invites", "register"]
OPTIONS = [
    Option("registration_invite_only", "boolean", True, "both",
           "In-band registration only with an invitation (and offered for them even "
           "when allow_registration is false)."),
]
PREAUTH = ns.q(ns.PARS, "preauth")
ROLES_STORE = "roles"
GROUPS_STORE = "invite_groups"
ADMIN_ROLE = "prosody:admin"


class InviteRegistration:
    def __init__(self, m, invites):
        self.m = m
        self.host = m.host
        self.invites = invites
        self.slot = m.session_slot("invite")
        self.roles = m.open_store(ROLES_STORE, "keyval")
        self.groups = m.open_store(GROUPS_STORE, "map")
        self.admins: set[str] = set()
        self.spending: set[str] = set()

    def invite_only(self) -> bool:
        return bool(self.m.get_option("registration_invite_only"))

    def offered(self, session) -> bool:
        if session.authenticated:
            return False
        return session.tls or not self.m.server.c2s_require_encryption(self.host)

    def feature(self, namespace: str):
        def build(session):
            return ET.Element(ns.q(namespace, "register")) if self.offered(session) else None
        return build

    # -- XEP-0445: the token, before registering -----------------------------------
    async def preauth(self, arg):
        session, iq = arg
        if session.authenticated:
            return None
        child = st.first_child(iq)
        if child is None or child.tag != PREAUTH or iq.get("type") != "set" or not iq.get("id"):
            return None
        try:
            if not self.offered(session):
                raise StanzaError("policy-violation", "encryption is required")
            try:
                invite = await self.invites.get(child.get("token"))
            except self.invites.Error:
                raise StanzaError("item-not-found", "The provided token is invalid or expired") from None
        except StanzaError as err:
            session.send(st.error_reply(iq, err, from_=self.host.name))
            return HANDLED
        self.slot.set(session, invite)
        session.send(st.iq_result(iq))
        return HANDLED

    # -- XEP-0077 with the token ---------------------------------------------------
    async def registering(self, event) -> None:
        session, username = event["session"], event["username"]
        invite = self.slot.get(session) if session is not None else None
        reserved = await self.invites.reserved_by(username)
        if invite is None:
            if self.invite_only():
                raise StanzaError("not-acceptable", "Registration on this server is through invitation only")
            if reserved:
                raise StanzaError("conflict", "This username is reserved for an invitation")
            return
        node = invite["jid"].rpartition("@")[0] if invite["type"] == "register" else ""
        if node and node != username:
            raise StanzaError("not-acceptable", "The chosen username is not valid with this invitation")
        reset = (invite.get("additional_data") or {}).get("allow_reset")
        if reset and reset != username:
            raise StanzaError("not-acceptable", "Incorrect username for password reset")
        if reserved and invite["token"] not in reserved:
            raise StanzaError("conflict", "This username is reserved for an invitation")
        if reset:
            event["allow_reset"] = reset
        elif await self.m.server.accounts.exists(self.host.name, username):
            raise StanzaError("conflict", "the requested username already exists")
        token = invite["token"]
        single = not invite.get("reusable")
        if token in self.spending:
            raise StanzaError("not-acceptable", "The invitation is no longer valid")
        if single:
            self.spending.add(token)   # before any await: one session spends it
        try:
            if await self.invites.store.get(None, token) is None:
                # spent by another session holding the same token, or revoked meanwhile
                self.slot.pop(session)
                raise StanzaError("not-acceptable", "The invitation is no longer valid")
            if single:
                await self.invites.use(invite)
        finally:
            self.spending.discard(token)
        event["invite"] = invite

    def reset_done(self, event) -> None:
        self.slot.pop(event["session"])

    async def registered(self, event) -> None:
        invite = event.get("invite")
        if invite is None:
            return
        self.slot.pop(event["session"])
        user = event["username"]
        data = invite.get("additional_data") or {}
        if invite["type"] == "roster":
            inviter = invite["jid"].partition("@")[0]
            if await self.m.server.accounts.exists(self.host.name, inviter):
                await self.befriend(inviter, user)
        if ADMIN_ROLE in (data.get("roles") or ()):
            await self.roles.set(user, {ADMIN_ROLE: True})
            self.admins.add(f"{user}@{self.host.name}")
            self.m.log.info("%s@%s is an administrator (invitation)", user, self.host.name)
        for group in data.get("groups") or ():
            members = await self.groups.get(None, group) or []
            for other in members:
                if other != user and await self.m.server.accounts.exists(self.host.name, other):
                    await self.befriend(other, user, group)
            if user not in members:
                await self.groups.set(None, group, [*members, user])

    async def befriend(self, a: str, b: str, group: str | None = None) -> None:
        """``a`` and ``b`` (accounts of this host) become each other's contacts."""
        roster = self.host.roster
        for user, contact in ((a, b), (b, a)):
            jid = f"{contact}@{self.host.name}"

            def change(item):
                item = item or rs.new_item()
                item["listed"] = True
                if group and group not in item["groups"]:
                    item["groups"].append(group)
                return rs.set_state(item, rs.BOTH)
            old, new, ver = await roster.update(user, jid, change)
            if rs.visible(old) != rs.visible(new):
                roster.push(user, jid, new, ver)

    # -- XEP-0379: a subscription request with a token -----------------------------------
    async def subscribe(self, sev):
        stanza = sev.stanza
        if stanza.get("type") != "subscribe":
            return None
        preauth = stanza.find(PREAUTH)
        user, contact = sev.to_node, sev.from_bare
        if preauth is None or not user or not contact or contact == f"{user}@{self.host.name}":
            return None
        try:
            invite = await self.invites.get(preauth.get("token"), user)
        except self.invites.Error:
            return None      # an ordinary request, for the user to answer
        if not await self.m.server.accounts.exists(self.host.name, user):
            return None
        await self.invites.use(invite)
        self.m.log.info("%s@%s: subscription of %s approved by invitation", user, self.host.name, contact)
        await self.approve(user, contact)
        return HANDLED

    async def approve(self, user: str, contact: str) -> None:
        host = self.host
        bare = f"{user}@{host.name}"
        info = {}

        def change(item):
            item = item or rs.new_item()
            item["listed"] = True
            has_to = rs.has_presence_of(item.get("subscription") or "none")
            info["ask"] = not has_to and not item.get("ask")
            item = rs.set_state(item, rs.BOTH if has_to else rs.FROM_OUT)
            item["approved"] = False
            return item
        old, new, ver = await host.roster.update(user, contact, change)
        if rs.visible(old) != rs.visible(new):
            host.roster.push(user, contact, new, ver)
        await self.m.send(st.make("presence", {"type": "subscribed", "from": bare, "to": contact}))
        for sess in host.available_sessions(user):
            if sess.presence is not None:
                await self.m.send(st.copy(sess.presence, **{"from": sess.full_jid, "to": contact}))
        if info["ask"]:
            await self.m.send(st.make("presence", {"type": "subscribe", "from": bare, "to": contact}))

    # -- roles and groups -----------------------------------------------------------------
    async def load_admins(self) -> None:
        for user in await self.roles.users():
            roles = await self.roles.get(user)
            if isinstance(roles, dict) and roles.get(ADMIN_ROLE):
                self.admins.add(f"{user}@{self.host.name}")

    async def forget(self, user: str) -> None:
        self.admins.discard(f"{user}@{self.host.name}")
        for group, members in (await self.groups.items(None)).items():
            if isinstance(members, list) and user in members:
                await self.groups.set(None, group, [u for u in members if u != user])


def setup(m) -> None:
    reg = InviteRegistration(m, m.depends("invites"))
    if reg.invite_only():
        m.add_item("registration-gate", "invites_register")
    m.add_stream_feature(reg.feature(ns.IBR_TOKEN), stage="pre-auth")
    m.add_stream_feature(reg.feature(ns.INVITE), stage="pre-auth")
    m.hook(element_event(ns.CLIENT, "iq", bound=False), reg.preauth)
    m.hook("user-registering", reg.registering)
    m.hook("user-registered-in-band", reg.registered)
    m.hook("user-password-reset", reg.reset_done)
    m.hook(stanza_event("presence", "bare"), reg.subscribe, EARLY)
    m.hook("user-deleted", reg.forget)
    m.add_item("admin-check", lambda jid: jid in reg.admins)
    task = asyncio.get_running_loop().create_task(reg.load_admins())
    m.on_unload(task.cancel)

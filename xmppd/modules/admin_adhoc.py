"""Service Administration (XEP-0133): the host's admins manage it from their client.

The commands (``AdhocCommand`` items, run by the ``adhoc`` module; only the host's
``admins`` see and run them), with XEP-0133's nodes and field names and FORM_TYPE
``http://jabber.org/protocol/admin``:

* add a user (``accountjid``, ``password``, ``password-verify``; ``email``,
  ``given_name``, ``surname`` are accepted and not kept), delete users, disable
  and re-enable users (``accountjids``), change a user's password;
* end the sessions of users (``accountjids``: a bare JID ends every session, a
  full JID that resource), as ``xmppctl kick`` does;
* the list and the number of online users;
* an announcement (``subject``, ``announcement``) to every online user of the
  host, as a ``headline`` message from the host (Prosody's mod_announce); a
  message from an admin to ``HOST/announce/online`` does the same, and ejabberd's
  ``HOST/announce/motd`` (``/update``, ``/delete``) set the MOTD: Psi's admin menu;
* the message of the day: set, edit, delete (``motd``). It is stored (the ``motd``
  store) and sent to each resource that comes online (Prosody's mod_motd, whose
  ``motd_text`` option is the MOTD when none was set by command).

Prosody's ``announce`` and ``motd`` module names load this module. Disabling an
account keeps its data; it cannot log in (SASL ``account-disabled``) and its
sessions end, until it is enabled again.
"""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED, AccountError, AdhocCommand, Option, stanza_event
from xmppd.xmpp import commands, forms, ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.forms import Field
from xmppd.xmpp.jid import InvalidJID, split

PROTOCOLS = ["XEP-0133"]
DEPENDS = ["adhoc"]
OPTIONS = [
    Option("motd_text", "string", None, "both",
           "message of the day sent to users when they come online, until an admin sets "
           "one by command (Prosody's mod_motd)"),
    Option("motd_jid", "string", None, "both",
           "the address the message of the day comes from (default: the host)"),
]
STORE = "motd"
NODE = ns.ADMIN + "#"
ANNOUNCE_RESOURCES = ("announce/online", "announce/motd", "announce/motd/update",
                      "announce/motd/delete")
MAX_ITEMS = ("25", "50", "75", "100", "150", "200", "all")


def _form(title: str, instructions: str, fields: list) -> ET.Element:
    return forms.build(ns.ADMIN, fields, title=title, instructions=instructions)


def one_form(build, submit):
    """A command of one form: the first ``execute`` gets the form (built by
    ``build(request)``), the submitted form goes to ``submit(request, submission)``.
    A first ``execute`` that already carries the form is submitted at once."""
    async def handler(request: commands.Request) -> commands.Reply:
        if request.form is None:
            if request.state is not None:
                raise commands.error("bad-request", "bad-payload", "the form is missing")
            form = build(request)
            if asyncio.iscoroutine(form):
                form = await form
            return commands.ask(form)
        return await submit(request, forms.read(request.form, form_type=ns.ADMIN))
    return handler


class Admin:
    """The commands of one host."""

    def __init__(self, m, store):
        self.m = m
        self.host = m.host
        self.server = m.server
        self.store = store

    @property
    def accounts(self):
        return self.server.accounts

    def _account(self, jid: str, *, resource_ok: bool = False) -> tuple[str, str | None]:
        """``(user, resource)`` of an account JID of this host, or AccountError."""
        try:
            user, domain, resource = split(jid)
        except InvalidJID:
            raise AccountError(f"{jid}: not a valid JID") from None
        if not user or (resource and not resource_ok):
            raise AccountError(f"{jid}: not an account's JID (user@{self.host.name})")
        if domain != self.host.name:
            raise AccountError(f"{jid}: not an account of {self.host.name}")
        return user, resource

    # -- accounts ------------------------------------------------------------------
    def add_user_form(self, request):
        return _form("Adding a User", "Fill out this form to add a user.", [
            Field("accountjid", "jid-single", label="The Jabber ID for the account to be added",
                  required=True),
            Field("password", "text-private", label="The password for this account", required=True),
            Field("password-verify", "text-private", label="Retype password", required=True),
            Field("email", "text-single", label="Email address"),
            Field("given_name", "text-single", label="Given name"),
            Field("surname", "text-single", label="Family name"),
        ])

    async def add_user(self, request, sub):
        jid = sub.get("accountjid") or ""
        password = "".join(sub.raw("password"))
        try:
            user, _ = self._account(jid)
        except AccountError as exc:
            return commands.completed(error=str(exc))
        if not password or password != "".join(sub.raw("password-verify")):
            return commands.completed(error="The passwords are empty or do not match")
        try:
            await self.accounts.create(self.host.name, user, password)
        except AccountError:
            return commands.completed(error="Account already exists")
        except ValueError as exc:      # a password SASLprep refuses
            return commands.completed(error=f"Unusable password: {exc}")
        self.m.log.info("account %s@%s created by %s", user, self.host.name, request.from_bare)
        return commands.completed(info="Account successfully created")

    def change_password_form(self, request):
        return _form("Changing a User Password", "Fill out this form to change a user's password.", [
            Field("accountjid", "jid-single", label="The Jabber ID for this account", required=True),
            Field("password", "text-private", label="The password for this account", required=True),
        ])

    async def change_password(self, request, sub):
        password = "".join(sub.raw("password"))
        try:
            user, _ = self._account(sub.get("accountjid") or "")
            if not password:
                raise AccountError("The password is empty")
            await self.accounts.set_password(self.host.name, user, password)
        except AccountError as exc:
            return commands.completed(error=str(exc))
        except ValueError as exc:
            return commands.completed(error=f"Unusable password: {exc}")
        self.m.log.info("password of %s@%s changed by %s", user, self.host.name, request.from_bare)
        return commands.completed(info="Password successfully changed")

    def accounts_form(self, title: str, instructions: str, label: str):
        def build(request):
            return _form(title, instructions, [
                Field("accountjids", "jid-multi", label=label, required=True)])
        return build

    def each_account(self, what: str, action, *, resource_ok: bool = False):
        """A submit function applying ``action(user, resource)`` to each of
        ``accountjids``; the note says which succeeded and which did not."""
        async def submit(request, sub):
            done, failed = [], []
            jids = sub.all("accountjids")
            if not jids:
                return commands.completed(error="No account given")
            for jid in jids:
                try:
                    user, resource = self._account(jid, resource_ok=resource_ok)
                    await action(user, resource)
                except AccountError as exc:
                    failed.append(f"{jid} ({exc})")
                    continue
                self.m.log.info("%s: %s by %s", jid, what, request.from_bare)
                done.append(jid)
            lines = []
            if done:
                lines += [f"The following accounts were successfully {what}:", *done]
            if failed:
                lines += [f"The following accounts could not be {what}:", *failed]
            text = "\n".join(lines)
            if not failed:
                return commands.completed(info=text)
            return commands.completed(warn=text) if done else commands.completed(error=text)
        return submit

    async def _exists(self, user: str) -> None:
        if not await self.accounts.exists(self.host.name, user):
            raise AccountError("no such account")

    async def delete(self, user, _resource) -> None:
        await self.accounts.delete(self.host.name, user)   # as xmppctl deluser

    async def disable(self, user, _resource) -> None:
        await self.accounts.disable(self.host.name, user)

    async def enable(self, user, _resource) -> None:
        await self.accounts.enable(self.host.name, user)

    async def end_sessions(self, user, resource) -> None:
        await self._exists(user)
        if not self.server.end_user_sessions(self.host.name, user, resource):   # as xmppctl kick
            raise AccountError("no session")

    # -- online users -------------------------------------------------------------
    def online_users(self) -> list[str]:
        return sorted(f"{user}@{self.host.name}" for user, resources in self.host.sessions.items()
                      if any(not s.closing for s in resources.values()))

    def online_list_form(self, request):
        return _form("Getting List of Online Users", "How many users should be returned at most?", [
            Field("max_items", "list-single", "all", label="Maximum number of users",
                  options=MAX_ITEMS)])

    async def online_list(self, request, sub):
        users = self.online_users()
        limit = sub.get("max_items") or "all"
        if limit != "all":
            if not limit.isdigit():
                raise commands.error("bad-request", "bad-payload", "max_items: a number or all")
            users = users[:int(limit)]
        return commands.completed(form=forms.build(ns.ADMIN, [
            Field("onlineuserjids", "jid-multi", users, label="The list of all online users")],
            type="result"))

    def online_num(self, request):
        return commands.completed(form=forms.build(ns.ADMIN, [
            Field("onlineusersnum", "text-single", len(self.online_users()),
                  label="The number of online users")], type="result"))

    # -- announcement ---------------------------------------------------------------
    def announce_form(self, request):
        return _form("Making an Announcement",
                     "Fill out this form to make an announcement to all\n"
                     "active users of this service.", [
                         Field("subject", "text-single", label="Subject"),
                         Field("announcement", "text-multi", label="Announcement", required=True)])

    async def send_to_online(self, text: str, subject: str | None = None) -> int:
        """A headline from the host to each online user; how many."""
        users = self.online_users()
        for jid in users:
            msg = ET.Element(ns.q(ns.CLIENT, "message"),
                             {"type": "headline", "from": self.host.name, "to": jid})
            if subject:
                ET.SubElement(msg, ns.q(ns.CLIENT, "subject")).text = subject
            ET.SubElement(msg, ns.q(ns.CLIENT, "body")).text = text
            await self.m.send(msg)
        return len(users)

    async def announce(self, request, sub):
        text = "\n".join(sub.raw("announcement")).strip()
        if not text:
            return commands.completed(error="The announcement is empty")
        count = await self.send_to_online(text, sub.get("subject"))
        self.m.log.info("announcement by %s sent to %d online users", request.from_bare, count)
        return commands.completed(info=f"Announcement sent to {count} online users")

    def announce_message(self, sev):
        """``message/full``: a plain function, so that the messages to clients (all of
        them pass here) cost a test and no coroutine."""
        if sev.to_node or sev.to_resource not in ANNOUNCE_RESOURCES:
            return None
        return self._announce_message(sev)

    async def _announce_message(self, sev):
        """A message to ``HOST/announce/online`` (Prosody's mod_announce) or
        ``HOST/announce/motd`` (set and send to the online users),
        ``.../motd/update`` (set), ``.../motd/delete``, as ejabberd: what the admin
        menus of Psi and Psi+ send. Only from an admin; others get ``forbidden``."""
        what = sev.to_resource
        if not self.host.is_admin(sev.from_jid):
            raise StanzaError("forbidden", "announcements are for the server's administrators")
        body = sev.stanza.find(ns.q(ns.CLIENT, "body"))
        subject = sev.stanza.find(ns.q(ns.CLIENT, "subject"))
        text = (body.text or "").strip() if body is not None else ""
        if what == "announce/motd/delete":
            await self.store.set(None, {"text": ""})
        elif not text:
            raise StanzaError("bad-request", "the message has no body")
        elif what == "announce/online":
            count = await self.send_to_online(text, subject.text if subject is not None else None)
            self.m.log.info("announcement by %s sent to %d online users", sev.from_bare, count)
        else:
            await self.store.set(None, {"text": text})
            if what == "announce/motd":
                await self.send_to_online(text)
        if what.startswith("announce/motd"):
            self.m.log.info("message of the day %s by %s", what.rpartition("/")[2], sev.from_bare)
        return HANDLED

    # -- message of the day -----------------------------------------------------------
    async def motd(self) -> str | None:
        stored = await self.store.get(None)
        if stored is not None:
            return stored.get("text") or None
        text = self.m.get_option("motd_text")
        if not text:
            return None
        # as Prosody: the config's indentation is not part of the text
        return "\n".join(line.strip() for line in str(text).strip().splitlines())

    def motd_form(self, title: str):
        async def build(request):
            current = await self.motd()
            return _form(title, "Fill out this form to set the message of the day.", [
                Field("motd", "text-multi", current.split("\n") if current else None,
                      label="Message of the day", required=True)])
        return build

    async def set_motd(self, request, sub):
        text = "\n".join(sub.raw("motd")).strip()
        if not text:
            return commands.completed(error="The message of the day is empty")
        await self.store.set(None, {"text": text})
        self.m.log.info("message of the day set by %s", request.from_bare)
        return commands.completed(info="Message of the day set")

    async def delete_motd(self, request):
        # stored empty, so that motd_text does not come back either
        await self.store.set(None, {"text": ""})
        self.m.log.info("message of the day deleted by %s", request.from_bare)
        return commands.completed(info="Message of the day deleted")

    async def send_motd(self, session) -> None:
        """``resource-available``: the resource gets the message of the day."""
        text = await self.motd()
        if not text or session.closing:
            return
        msg = ET.Element(ns.q(ns.CLIENT, "message"),
                         {"from": self.m.get_option("motd_jid") or self.host.name,
                          "to": session.full_jid})
        ET.SubElement(msg, ns.q(ns.CLIENT, "body")).text = text
        session.send(msg)


def setup(m) -> None:
    admin = Admin(m, m.open_store(STORE, "keyval"))
    users = admin.accounts_form
    each = admin.each_account
    for node, name, handler in [
        ("add-user", "Add User", one_form(admin.add_user_form, admin.add_user)),
        ("delete-user", "Delete User", one_form(
            users("Deleting a User", "Fill out this form to delete a user.",
                  "The Jabber ID(s) to delete"), each("deleted", admin.delete))),
        ("disable-user", "Disable User", one_form(
            users("Disabling a User", "Fill out this form to disable a user.",
                  "The Jabber ID(s) to disable"), each("disabled", admin.disable))),
        ("reenable-user", "Re-Enable User", one_form(
            users("Re-Enable a User", "Fill out this form to enable a user.",
                  "The Jabber ID(s) to re-enable"), each("enabled", admin.enable))),
        ("change-user-password", "Change User Password",
         one_form(admin.change_password_form, admin.change_password)),
        ("end-user-session", "End User Session", one_form(
            users("Ending a User Session", "Fill out this form to end a user's session.",
                  "The Jabber ID(s) for which to end sessions"),
            each("disconnected", admin.end_sessions, resource_ok=True))),
        ("get-online-users-list", "Get List of Online Users",
         one_form(admin.online_list_form, admin.online_list)),
        ("get-online-users-num", "Get Number of Online Users", admin.online_num),
        ("announce", "Send Announcement to Online Users",
         one_form(admin.announce_form, admin.announce)),
        ("set-motd", "Set Message of the Day",
         one_form(admin.motd_form("Setting the Message of the Day"), admin.set_motd)),
        ("edit-motd", "Edit Message of the Day",
         one_form(admin.motd_form("Editing the Message of the Day"), admin.set_motd)),
        ("delete-motd", "Delete Message of the Day", admin.delete_motd),
    ]:
        m.add_item("adhoc", AdhocCommand(NODE + node, name, handler))
    m.hook("resource-available", admin.send_motd)
    m.hook(stanza_event("message", "full"), admin.announce_message)

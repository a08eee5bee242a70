"""Invitations by ad-hoc command (Prosody's mod_invites_adhoc, XEP-0401 §5): users
create them from their client, over the [invites](invites.md) store.

* ``urn:xmpp:invite#invite`` "Create new contact invite": any account of this
  host (only the administrators when ``allow_contact_invites = false``) gets a
  contact invitation; it also lets the invitee register an account here when
  ``allow_user_invites`` is true or the requester is an administrator.
* ``urn:xmpp:invite#create-account`` "Create new account invite": the
  administrators get an account invitation.
* ``xmpp:prosody.im/mod_invites_adhoc#password-reset`` "Create password reset
  invite" (Prosody's node): the administrators get a password reset invitation
  for an account (``accountjid``).

Both complete at once with a result form: ``uri`` (the ``xmpp:`` URI),
``landing-url`` (the web page, when there is one) and ``expire`` (XEP-0082).
"""
from __future__ import annotations

from xmppd.moduleapi import AdhocCommand, Option
from xmppd.xmpp import commands, forms
from xmppd.xmpp.forms import Field
from xmppd.xmpp.jid import InvalidJID, split
from xmppd.xmpp.time import utc_stamp

PROTOCOLS = ["XEP-0401"]
DEPENDS = ["invites", "adhoc"]
OPTIONS = [
    Option("allow_user_invites", "boolean", False, "both",
           "Whether every user's invitations may also be used to register an account "
           "(else only the administrators')."),
    Option("allow_contact_invites", "boolean", True, "both",
           "Whether every user may create contact invitations (else only the administrators)."),
]
NODE_CONTACT = "urn:xmpp:invite#invite"
NODE_ACCOUNT = "urn:xmpp:invite#create-account"
NODE_RESET = "xmpp:prosody.im/mod_invites_adhoc#password-reset"   # Prosody's node


def result(invite: dict) -> commands.Reply:
    fields = []
    if invite.get("landing_page"):
        fields.append(Field("landing-url", "text-single", invite["landing_page"], label="Invite web page",
                            desc="Share this link"))
    fields.append(Field("uri", "text-single", invite["uri"], label="Invite URI",
                        desc="This alternative link can be opened with some XMPP clients"))
    if invite.get("expires"):
        fields.append(Field("expire", "text-single", utc_stamp(invite["expires"]),
                            label="Invite valid until"))
    return commands.completed(form=forms.build(None, fields, type="result",
                                               title="Your invite has been created"))


def setup(m) -> None:
    invites = m.depends("invites")
    host = m.host

    def local_user(request) -> str | None:
        node, _, domain = request.from_bare.partition("@")
        return node if domain == host.name and node else None

    async def contact_invite(request):
        user = local_user(request)
        if user is None:
            return commands.completed(error=f"This command is only available to users of {host.name}")
        may_register = bool(m.get_option("allow_user_invites")) or host.is_admin(request.from_bare)
        invite = await invites.create_contact(user, allow_registration=may_register,
                                              creator=request.from_bare)
        return result(invite)

    async def account_invite(request):
        creator = request.from_bare if local_user(request) else None
        return result(await invites.create_account(creator=creator))

    async def reset_invite(request):
        if request.form is None:
            return commands.ask(forms.build(None, [
                Field("accountjid", "jid-single", required=True,
                      label="The XMPP ID for the account to generate a password reset invite for")],
                title="Generate Password Reset Invite"))
        jid = forms.read(request.form).get("accountjid") or ""
        try:
            node, domain, resource = split(jid)
        except InvalidJID:
            node, domain, resource = "", "", ""
        if not node or resource or domain != host.name:
            return commands.completed(error=f"Not an account of {host.name}: {jid!r}")
        if not await m.server.accounts.exists(host.name, node):
            return commands.completed(error=f"No account {node}@{host.name}")
        return result(await invites.create_reset(node, creator=request.from_bare))

    m.add_item("adhoc", AdhocCommand(NODE_CONTACT, "Create new contact invite", contact_invite,
                                     admin_only=not m.get_option("allow_contact_invites")))
    m.add_item("adhoc", AdhocCommand(NODE_ACCOUNT, "Create new account invite", account_invite,
                                     admin_only=True))
    m.add_item("adhoc", AdhocCommand(NODE_RESET, "Create password reset invite", reset_invite,
                                     admin_only=True))

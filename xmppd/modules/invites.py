"""Invitations (Prosody's mod_invites; XEP-0401 Easy User Onboarding): the store
and what the other ``invites_*`` modules and ``xmppctl invite`` use.

An invitation is a random token with an expiry (``invite_expiry``, one week by
default) and an ``xmpp:`` URI that carries it:

* an **account invitation** lets someone register an account in-band
  ([invites_register](invites_register.md)): ``xmpp:falcot.com?register;preauth=TOKEN``,
  or ``xmpp:joe@falcot.com?register;preauth=TOKEN`` when it is for one username
  (nobody else may register that name while the invitation is pending, XEP-0445);
  it may make the new account an administrator (``--admin``) and put it in groups
  (``--group``: the members of a group are each other's contacts);
* a **password reset** (``xmppctl invite reset``) lets the owner of an existing
  account set a new password by registering it again with the token (one day);
* a **contact invitation** from a user pre-approves a mutual presence
  subscription with whoever presents the token (XEP-0379):
  ``xmpp:joe@falcot.com?roster;preauth=TOKEN``, plus ``;ibr=y`` when it also allows
  registering an account here (then the new account and the inviter become
  each other's contacts at once).

Invitations are single-use unless made reusable; expired ones are never
accepted and are purged every hour. An invitation dies with the account that
made it: the ``user-deleted`` event revokes it, and one whose creator no longer
exists (deleted while xmppd was stopped) is refused.

``invites_page`` (Prosody's option) is the template of a web page for an
invitation, e.g. ``"https://falcot.com/invite/?{invite.token}"`` (``{host}``,
``{invite.token}``, ``{invite.uri}``, ``{invite.jid}``, ``{invite.type}``; values
are URL-escaped); without it the [invites_page](invites_page.md) module, when
loaded, serves one itself.

The store is Prosody's ``invite_token`` map: under no user, each token's
invitation; under a user, the expiry of each of their contact invitations.
"""
from __future__ import annotations

import re
import secrets
import time
from urllib.parse import quote

from xmppd.moduleapi import CliCommand, Option, parse_period
from xmppd.xmpp.jid import InvalidJID, nameprep

PROTOCOLS = ["XEP-0401"]
STORE = "invite_token"
ACCOUNTS_STORE = "accounts"      # the server's accounts (xmppctl, with xmppd stopped)
DEFAULT_EXPIRY = "1w"
PURGE_INTERVAL = 3600
ADMIN_ROLE = "prosody:admin"
RESET_TTL = 86400
OPTIONS = [
    Option("invite_expiry", "any", DEFAULT_EXPIRY, "both",
           "How long an invitation is valid: \"1d\", \"1w\", a number of seconds."),
    Option("invites_page", "string", None, "both",
           "Template of the web page of an invitation (\"https://example.com/invite?{invite.token}\"); "
           "default: the invites_page module's own page when it is loaded."),
    Option("invites_page_supports", "list", ["account", "contact", "account-and-contact"], "both",
           "Kinds of invitation the web page handles: account, contact, account-and-contact, "
           "contact-only, password-reset."),
]


class InviteError(Exception):
    """Why a token is refused: ``token-invalid`` or ``token-expired``."""


def make_uri(action: str, jid: str, token: str, params: str | None = None) -> str:
    """XEP-0401's URI: ``xmpp:JID?ACTION;preauth=TOKEN[;params]``."""
    return f"xmpp:{jid}?{action};preauth={token}" + (f";{params}" if params else "")


def new_token() -> str:
    """24 URL-safe characters (18 random bytes, as Prosody's); never a leading ``-``,
    which a command line would take for an option."""
    while True:
        token = secrets.token_urlsafe(18)
        if not token.startswith("-"):
            return token


_FIELD = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)?)(?:\|([a-z]+))?\}")


def render_template(template: str, host: str, invite: dict) -> str:
    """``invites_page`` with ``{host}``, ``{invite.token}``... filled in, URL-escaped
    (``|noscheme``: the URI without ``xmpp:``)."""
    def sub(mt):
        name, filt = mt.group(1), mt.group(2)
        value = host if name == "host" else (
            invite.get(name.split(".", 1)[1]) if name.startswith("invite.") else None)
        value = "" if value is None else str(value)
        if filt == "noscheme":
            value = re.sub(r"^[^:]+:", "", value)
        return quote(value, safe="")
    return _FIELD.sub(sub, template)


def page_kind(invite: dict) -> str:
    if invite["type"] == "register":
        return "password-reset" if (invite.get("additional_data") or {}).get("allow_reset") else "account"
    return "account-and-contact" if invite.get("allow_registration") else "contact-only"


def describe(invite: dict) -> str:
    """One line about what an invitation does."""
    data = invite.get("additional_data") or {}
    if invite["type"] == "roster":
        text = f"contact with {invite['jid']}"
        if invite.get("allow_registration"):
            text += " (may register)"
    elif data.get("allow_reset"):
        text = f"new password for {invite['jid']}"
    else:
        node, _, domain = invite["jid"].rpartition("@")
        text = f"register on {domain or invite['jid']}" + (f" as {node}" if node else "")
    if ADMIN_ROLE in (data.get("roles") or ()):
        text += ", as an administrator"
    if data.get("groups"):
        text += ", groups " + ",".join(data["groups"])
    return text


class InviteStore:
    """The invitations of one host, over its ``invite_token`` map store. Used by the
    module on a running server and by ``xmppctl invite`` on a stopped one."""
    Error = InviteError

    def __init__(self, store, host: str, *, expiry: float | None = 7 * 86400,
                 page_template: str | None = None, page_supports=(), landing=None,
                 account_exists=None, on_created=None):
        self.store = store
        self.host = host
        self.expiry = expiry
        self.page_template = page_template
        self.page_supports = set(page_supports or ())
        self.landing = landing                  # () -> callable(invite) -> url, or None
        self.account_exists = account_exists    # async (user) -> bool, or None
        self.on_created = on_created

    # -- creating --------------------------------------------------------------
    async def create(self, action: str, jid: str, *, allow_registration: bool,
                     additional_data: dict | None = None, ttl: float | None = None,
                     reusable: bool = False, creator: str | None = None) -> dict:
        token = new_token()
        now = time.time()
        ttl = self.expiry if ttl is None else ttl
        params = "ibr=y" if action == "roster" and allow_registration else None
        invite = {
            "type": action, "jid": jid, "token": token,
            "allow_registration": bool(allow_registration),
            "additional_data": additional_data or {},
            "uri": make_uri(action, jid, token, params),
            "created_at": int(now), "expires": int(now + ttl) if ttl else None,
            "reusable": bool(reusable), "creator": creator,
        }
        page = self.landing_page(invite)
        if page:
            invite["landing_page"] = page
        await self.store.set(None, token, invite)
        if action == "roster":
            await self.store.set(jid.partition("@")[0], token, invite["expires"])
        if self.on_created is not None:
            await self.on_created(invite)
        return invite

    def landing_page(self, invite: dict) -> str | None:
        kind = page_kind(invite)
        if self.page_template:
            if kind not in self.page_supports:
                return None
            return render_template(self.page_template, self.host, invite)
        make = self.landing() if self.landing is not None else None
        if make is not None and invite.get("allow_registration"):
            return make(invite)
        return None

    async def create_account(self, username: str | None = None, *, ttl: float | None = None,
                             groups=(), admin: bool = False, reusable: bool = False,
                             creator: str | None = None) -> dict:
        """An invitation to register an account (named ``username``, or any name)."""
        data: dict = {}
        if admin:
            data["roles"] = [ADMIN_ROLE]
        if groups:
            data["groups"] = list(groups)
        if creator:
            data["source"] = creator
        jid = f"{username}@{self.host}" if username else self.host
        return await self.create("register", jid, allow_registration=True, additional_data=data,
                                 ttl=ttl, reusable=reusable, creator=creator)

    async def create_reset(self, username: str, *, ttl: float | None = None,
                           creator: str | None = None) -> dict:
        """An invitation to set a new password on the existing account ``username``
        (valid one day unless told otherwise), as Prosody's ``create_reset``."""
        data = {"allow_reset": username}
        if creator:
            data["source"] = creator
        return await self.create("register", f"{username}@{self.host}", allow_registration=True,
                                 additional_data=data, ttl=RESET_TTL if ttl is None else ttl,
                                 creator=creator)

    async def create_contact(self, username: str, *, allow_registration: bool = False,
                             ttl: float | None = None, creator: str | None = None) -> dict:
        """An invitation to become a contact of ``username`` (optionally to register)."""
        creator = creator or f"{username}@{self.host}"
        return await self.create("roster", f"{username}@{self.host}",
                                 allow_registration=allow_registration,
                                 additional_data={"source": creator}, ttl=ttl, creator=creator)

    # -- reading ----------------------------------------------------------------
    def expired(self, invite: dict, now: float | None = None) -> bool:
        exp = invite.get("expires")
        return exp is not None and (now or time.time()) > exp

    async def _creator_gone(self, invite: dict) -> bool:
        if self.account_exists is None:
            return False
        for jid in (invite.get("creator"), invite["jid"] if invite["type"] == "roster" else None):
            if jid and "@" in jid:
                node, _, domain = jid.rpartition("@")
                if domain == self.host and not await self.account_exists(node):
                    return True
        return False

    async def get(self, token: str | None, username: str | None = None) -> dict:
        """The valid invitation ``token`` for registering (``username`` None) or for
        subscribing to ``username``; raises :class:`InviteError`."""
        if not token or not isinstance(token, str):
            raise InviteError("token-invalid")
        invite = await self.store.get(None, token)
        if not isinstance(invite, dict):
            raise InviteError("token-invalid")
        if username is not None:
            if invite["type"] != "roster" or invite["jid"] != f"{username}@{self.host}":
                raise InviteError("token-invalid")
        elif not invite.get("allow_registration"):
            raise InviteError("token-invalid")
        if self.expired(invite):
            raise InviteError("token-expired")
        if await self._creator_gone(invite):
            await self.revoke(token)
            raise InviteError("token-invalid")
        return invite

    async def use(self, invite: dict) -> None:
        """Spend a single-use invitation (a reusable one stays until it expires)."""
        if not invite.get("reusable"):
            await self.revoke(invite["token"])

    async def revoke(self, token: str) -> bool:
        invite = await self.store.get(None, token)
        if not isinstance(invite, dict):
            return False
        await self.store.delete(None, token)
        if invite.get("type") == "roster":
            await self.store.delete(invite["jid"].partition("@")[0], token)
        return True

    async def all(self) -> list[dict]:
        """Every stored invitation, expired ones too, oldest first."""
        items = await self.store.items(None)
        return sorted((v for v in items.values() if isinstance(v, dict)),
                      key=lambda i: (i.get("created_at") or 0, i["token"]))

    async def pending(self) -> list[dict]:
        """The invitations still usable: not expired, their creator still there (those
        whose creator is gone are revoked on the way)."""
        now = time.time()
        out = []
        for i in await self.all():
            if self.expired(i, now):
                continue
            if await self._creator_gone(i):
                await self.revoke(i["token"])
                continue
            out.append(i)
        return out

    async def reserved_by(self, username: str) -> set[str]:
        """Tokens of pending invitations for the account name ``username`` (XEP-0445:
        the name is kept for them)."""
        jid = f"{username}@{self.host}"
        return {i["token"] for i in await self.pending() if i["type"] == "register" and i["jid"] == jid
                and not (i.get("additional_data") or {}).get("allow_reset")}

    async def revoke_by(self, username: str) -> int:
        """Revoke every invitation ``username`` made (their account is gone)."""
        jid = f"{username}@{self.host}"
        count = 0
        for i in await self.all():
            if i.get("creator") == jid or (i["type"] == "roster" and i["jid"] == jid):
                count += await self.revoke(i["token"])
        await self.store.clear(username)
        return count

    async def purge_expired(self) -> int:
        now = time.time()
        count = 0
        for i in await self.all():
            if self.expired(i, now):
                count += await self.revoke(i["token"])
        return count


# -- the module on a running server --------------------------------------------------

def _ttl(value, what: str = "invite_expiry") -> float:
    """A validity period in seconds; invitations always expire ("never" is refused)."""
    try:
        ttl = parse_period(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if ttl is None:
        raise ValueError(f"{what}: invitations must expire; expected a duration like \"1w\", got {value!r}")
    return ttl


def store_for(m) -> InviteStore:
    host = m.host

    def landing():
        pages = m.items("invite-landing-page")
        return pages[-1] if pages else None

    async def account_exists(user: str) -> bool:
        return await m.server.accounts.exists(host.name, user)

    async def created(invite: dict) -> None:
        await host.events.notify("invite-created", invite)

    try:
        expiry = _ttl(m.get_option("invite_expiry"))
    except ValueError as exc:
        raise m.option_error("invite_expiry", str(exc)) from None
    return InviteStore(m.open_store(STORE, "map"), host.name, expiry=expiry,
                       page_template=m.get_option("invites_page"),
                       page_supports=m.get_option("invites_page_supports"),
                       landing=landing, account_exists=account_exists, on_created=created)


def _invites_of(ctx, domain: str) -> InviteStore:
    host = ctx.virtualhost(domain)
    invites = host.provided("invites")
    if invites is None:
        raise ctx.Error(f"invitations are not enabled on {domain} "
                        "(add \"invites\" to its modules_enabled)")
    return invites


def _bool(args: dict, name: str) -> bool:
    return bool(args.get(name))


async def create_command(ctx, args: dict) -> dict:
    """``invite-create``: a new invitation (``host``; ``user`` for a named account or
    the inviter of a contact invitation; ``kind`` ``account`` or ``contact``)."""
    domain = ctx.arg(args, "host")
    invites = _invites_of(ctx, domain)
    user = ctx.arg(args, "user", required=False)
    expires = args.get("expires")
    try:
        ttl = _ttl(expires, "--expires") if expires else None
    except ValueError as exc:
        raise ctx.Error(str(exc)) from None
    groups = args.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ctx.Error("groups must be a list of names")
    if args.get("kind") == "reset":
        if not user or not await ctx.server.accounts.exists(domain, user):
            raise ctx.Error(f"no account {user}@{domain}")
        return await invites.create_reset(user, ttl=ttl)
    if args.get("kind", "account") == "contact":
        if not user:
            raise ctx.Error("a contact invitation needs the inviting account")
        if not await ctx.server.accounts.exists(domain, user):
            raise ctx.Error(f"no account {user}@{domain}")
        return await invites.create_contact(user, allow_registration=_bool(args, "allow_registration"),
                                            ttl=ttl, creator=None)
    if user and await ctx.server.accounts.exists(domain, user):
        raise ctx.Error(f"the account {user}@{domain} already exists")
    return await invites.create_account(user, ttl=ttl, groups=groups, admin=_bool(args, "admin"),
                                        reusable=_bool(args, "reusable"))


async def list_command(ctx, args: dict) -> list[dict]:
    """``invite-list``: the pending invitations of ``host``."""
    return await _invites_of(ctx, ctx.arg(args, "host")).pending()


async def revoke_command(ctx, args: dict) -> dict:
    """``invite-revoke``: revoke the invitation ``token`` of ``host``."""
    invites = _invites_of(ctx, ctx.arg(args, "host"))
    token = ctx.arg(args, "token")
    return {"revoked": await invites.revoke(token)}


def setup(m) -> None:
    invites = store_for(m)
    m.provide(invites)

    async def user_deleted(user: str) -> None:
        n = await invites.revoke_by(user)
        if n:
            m.log.info("%d invitation(s) of %s@%s revoked with the account", n, user, m.host.name)

    m.hook("user-deleted", user_deleted)
    m.add_timer(PURGE_INTERVAL, invites.purge_expired, repeat=True)
    m.add_control_command("invite-create", create_command,
                          doc="Create an invitation (an account, or a contact of a user).")
    m.add_control_command("invite-list", list_command, read_only=True,
                          doc="The pending invitations of a host.")
    m.add_control_command("invite-revoke", revoke_command, doc="Revoke an invitation.")


# -- xmppctl invite ------------------------------------------------------------------

def _enabled_here(cfg, domain: str) -> bool:
    enabled = cfg.get("modules_enabled", host=domain) or ()
    disabled = cfg.get("modules_disabled", host=domain) or ()
    return any(isinstance(n, str) and n.startswith("invites") and n not in disabled for n in enabled)


def _target(ctx, text: str, *, need_user: bool) -> tuple[str | None, str]:
    """``user@domain`` or ``domain``, checked against the configuration."""
    from xmppd.xmpp.jid import split
    try:
        node, domain, res = split(text)
    except InvalidJID as exc:
        raise ctx.Error(f"invalid JID {text!r}: {exc}") from None
    if res:
        raise ctx.Error(f"invalid JID {text!r}: no resource expected")
    if need_user and not node:
        raise ctx.Error(f"expected an account (user@domain), got {text!r}")
    if node:
        node, domain = ctx.split_account(f"{node}@{domain}")
    else:
        ctx.split_account(f"x@{domain}")   # the domain checks (a configured VirtualHost)
    if not _enabled_here(ctx.config, domain):
        raise ctx.Error(f"invitations are not enabled on {domain}: add \"invites\" "
                        f"(and \"invites_register\") to its modules_enabled in {ctx.config.path}")
    return node or None, domain


def _domain(ctx, text: str) -> str:
    try:
        domain = nameprep(text)
    except InvalidJID as exc:
        raise ctx.Error(f"invalid domain {text!r}: {exc}") from None
    return _target(ctx, domain, need_user=False)[1]


def _offline_store(ctx, storage, domain: str) -> InviteStore:
    cfg = ctx.config
    try:
        expiry = _ttl(cfg.get("invite_expiry", host=domain, default=DEFAULT_EXPIRY))
    except ValueError as exc:
        raise ctx.Error(f"{cfg.path}: {exc}") from None
    supports = cfg.get("invites_page_supports", host=domain,
                       default=["account", "contact", "account-and-contact"])
    accounts = storage.keyval(domain, ACCOUNTS_STORE)

    async def account_exists(user: str) -> bool:
        return await accounts.get(user) is not None

    return InviteStore(storage.map(domain, STORE), domain, expiry=expiry,
                       page_template=cfg.get("invites_page", host=domain), page_supports=supports,
                       account_exists=account_exists)


def _when(t) -> str:
    if not t:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _print_created(invite: dict, running: bool) -> None:
    print(invite.get("landing_page") or invite["uri"])
    if invite.get("landing_page"):
        print(invite["uri"])
    use = "reusable until it expires" if invite.get("reusable") else "single-use"
    print(f"{describe(invite)}; {use}; expires {_when(invite.get('expires'))}")
    if not running:
        print("(xmppd is not running: stored for it to use when it starts)")


async def _create(ctx, args: dict, running_args: dict) -> int:
    if args["expires"]:
        try:
            args["ttl"] = _ttl(args["expires"], "--expires")
        except ValueError as exc:
            raise ctx.Error(str(exc)) from None
    r = ctx.call_running("invite-create", running_args, required=False)
    if r is not ctx.NOT_RUNNING:
        _print_created(r, True)
        return 0
    storage = await ctx.open_storage()
    try:
        invites = _offline_store(ctx, storage, args["domain"])
        user = args["user"]
        if args["kind"] == "reset":
            if not await invites.account_exists(user):
                raise ctx.Error(f"no account {user}@{args['domain']}")
            invite = await invites.create_reset(user, ttl=args.get("ttl"))
        elif args["kind"] == "contact":
            if not await invites.account_exists(user):
                raise ctx.Error(f"no account {user}@{args['domain']}")
            invite = await invites.create_contact(user, allow_registration=args["allow_registration"],
                                                  ttl=args.get("ttl"))
        else:
            if user and await invites.account_exists(user):
                raise ctx.Error(f"the account {user}@{args['domain']} already exists")
            invite = await invites.create_account(user, ttl=args.get("ttl"), groups=args["groups"],
                                                  admin=args["admin"], reusable=args["reusable"])
    finally:
        await storage.close()
    _print_created(invite, False)
    return 0


async def cmd_create(args, ctx) -> int:
    user, domain = _target(ctx, args.jid, need_user=False)
    groups = [g.strip() for g in args.group or [] if g.strip()]
    if len(groups) != len(args.group or []):
        raise ctx.Error("--group needs a group name")
    a = {"domain": domain, "user": user, "kind": "account", "groups": groups,
         "admin": args.admin, "reusable": args.reusable, "expires": args.expires,
         "allow_registration": True}
    return await _create(ctx, a, {"host": domain, "user": user, "kind": "account",
                                  "groups": groups, "admin": args.admin,
                                  "reusable": args.reusable, "expires": args.expires})


async def cmd_contact(args, ctx) -> int:
    user, domain = _target(ctx, args.jid, need_user=True)
    a = {"domain": domain, "user": user, "kind": "contact", "groups": [], "admin": False,
         "reusable": False, "expires": args.expires, "allow_registration": args.allow_registration}
    return await _create(ctx, a, {"host": domain, "user": user, "kind": "contact",
                                  "allow_registration": args.allow_registration,
                                  "expires": args.expires})


async def cmd_reset(args, ctx) -> int:
    user, domain = _target(ctx, args.jid, need_user=True)
    a = {"domain": domain, "user": user, "kind": "reset", "groups": [], "admin": False,
         "reusable": False, "expires": args.expires, "allow_registration": True}
    return await _create(ctx, a, {"host": domain, "user": user, "kind": "reset",
                                  "expires": args.expires})


async def cmd_list(args, ctx) -> int:
    domain = _domain(ctx, args.domain)
    pending, running = await ctx.running_or_stored(
        "invite-list", {"host": domain},
        lambda storage: _offline_store(ctx, storage, domain).pending())
    if args.json:
        import json
        print(json.dumps(pending, indent=2, sort_keys=True))
        return 0
    for i in pending:
        use = "reusable" if i.get("reusable") else "single-use"
        print(f"{i['token']}\texpires {_when(i.get('expires'))}\t{use}\t{describe(i)}"
              + (f"\tby {i['creator']}" if i.get("creator") else ""))
    print(f"{len(pending)} pending invitation(s) on {domain}")
    if not running:
        print("(xmppd is not running: read from the storage)")
    return 0


async def cmd_revoke(args, ctx) -> int:
    domain = _domain(ctx, args.domain)
    token = args.token.strip()
    m = re.search(r"preauth=([^;&\s]+)", token)
    if m:
        token = m.group(1)           # a whole URI is fine too
    if not token:
        raise ctx.Error("expected an invitation token")
    r, running = await ctx.running_or_stored(
        "invite-revoke", {"host": domain, "token": token},
        lambda storage: _offline_store(ctx, storage, domain).revoke(token))
    revoked = r["revoked"] if running else r
    if not revoked:
        raise ctx.Error(f"no invitation {token!r} on {domain}")
    print(f"invitation {token} revoked")
    return 0


def register(subparsers, common_parser):
    p = subparsers.add_parser("invite", parents=[common_parser], help="invitations to register or "
                              "to become a contact", description="Invitations (XEP-0401): "
                              "create, list and revoke them (on the running xmppd, else in storage).")
    sub = p.add_subparsers(dest="invite_command", metavar="ACTION")
    sub.required = True
    pc = sub.add_parser("create", parents=[common_parser],
                        help="an invitation to register an account on DOMAIN (or as USER@DOMAIN)")
    pc.add_argument("jid", metavar="DOMAIN|USER@DOMAIN")
    pc.add_argument("--admin", action="store_true", help="the new account is an administrator")
    pc.add_argument("--group", action="append", default=[], metavar="GROUP",
                    help="put the new account in GROUP (repeatable)")
    pc.add_argument("--expires", default=None, metavar="PERIOD",
                    help="valid for PERIOD (\"1h\", \"7d\", \"2w\"; default: invite_expiry)")
    pc.add_argument("--reusable", action="store_true",
                    help="usable by many until it expires (default: once)")
    pc.set_defaults(func=cmd_create)
    pk = sub.add_parser("contact", parents=[common_parser],
                        help="an invitation to become a contact of USER@DOMAIN")
    pk.add_argument("jid", metavar="USER@DOMAIN")
    pk.add_argument("--allow-registration", action="store_true",
                    help="the invitee may also register an account here with it")
    pk.add_argument("--expires", default=None, metavar="PERIOD", help="valid for PERIOD")
    pk.set_defaults(func=cmd_contact)
    pz = sub.add_parser("reset", parents=[common_parser],
                        help="an invitation to set a new password on the account USER@DOMAIN")
    pz.add_argument("jid", metavar="USER@DOMAIN")
    pz.add_argument("--expires", default=None, metavar="PERIOD", help="valid for PERIOD (default: 1d)")
    pz.set_defaults(func=cmd_reset)
    pl = sub.add_parser("list", parents=[common_parser], help="the pending invitations of DOMAIN")
    pl.add_argument("domain", metavar="DOMAIN")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_list)
    pr = sub.add_parser("revoke", parents=[common_parser], help="revoke an invitation")
    pr.add_argument("domain", metavar="DOMAIN")
    pr.add_argument("token", metavar="TOKEN", help="the token (or the invitation's URI)")
    pr.set_defaults(func=cmd_revoke)
    return p


CLI = [CliCommand("invite", register, "invitations")]

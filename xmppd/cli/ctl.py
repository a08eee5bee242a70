"""``xmppctl``: the admin's day — accounts, configuration checks, certificates, domains.

Every command takes ``--config PATH``. Errors name the problem and exit non-zero.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import platform
import sys
from pathlib import Path

from .. import __version__
from .daemon import find_config


class CtlError(Exception):
    """A problem the admin can fix; printed as ``xmppctl: <message>``, exit 1."""


# -- helpers ---------------------------------------------------------------------

def load(path: str):
    from ..config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CtlError(str(exc)) from None


def config_dir(cfg) -> Path:
    return Path(cfg.path).resolve().parent if getattr(cfg, "path", None) else Path.cwd()


def resolve(cfg, p) -> Path:
    p = Path(p)
    return p if p.is_absolute() else config_dir(cfg) / p


def data_path(cfg) -> Path:
    dp = cfg.get("data_path")
    if dp is None:
        dp = "/var/lib/xmppd" if str(config_dir(cfg)).startswith("/etc/") else "var"
    return resolve(cfg, dp)


def split_account(cfg, jid: str) -> tuple[str, str]:
    from ..jid import InvalidJID, nameprep, nodeprep
    if "@" not in jid or "/" in jid:
        raise CtlError(f"invalid JID {jid!r}: expected user@domain")
    user, _, domain = jid.rpartition("@")
    try:
        user = nodeprep(user)
        domain = nameprep(domain)
    except InvalidJID as exc:
        raise CtlError(f"invalid JID {jid!r}: {exc}") from None
    check_domain(cfg, domain)
    return user, domain


def check_domain(cfg, domain: str) -> None:
    hc = cfg.hosts.get(domain)
    if hc is None:
        known = ", ".join(h.name for h in cfg.virtual_hosts()) or "none"
        raise CtlError(f"unknown domain {domain!r}: no VirtualHost for it in {cfg.path} "
                       f"(configured: {known})")
    if hc.kind != "virtualhost":
        raise CtlError(f"{domain!r} is a Component, not a VirtualHost: it has no accounts")
    if not hc.enabled:
        raise CtlError(f"domain {domain!r} is disabled (enabled = false at {hc.file}:{hc.line})")


async def open_accounts(cfg):
    from ..core.accounts import Accounts
    from ..core.server import open_configured_storage
    storage = await open_configured_storage(cfg, data_path(cfg))
    return storage, Accounts(storage)


def read_password(args, *, confirm: bool = True) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        pw = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CtlError("no terminal to ask for the password: use --password-stdin")
        pw = getpass.getpass("Enter new password: ")
        if confirm and getpass.getpass("Retype new password: ") != pw:
            raise CtlError("passwords do not match")
    if not pw:
        raise CtlError("empty password")
    return pw


# -- commands ----------------------------------------------------------------------

async def cmd_adduser(args, cfg) -> int:
    from ..core.accounts import AccountExists
    user, domain = split_account(cfg, args.jid)
    pw = read_password(args)
    storage, accounts = await open_accounts(cfg)
    try:
        await accounts.create(domain, user, pw)
    except AccountExists:
        raise CtlError(f"user {user}@{domain} already exists") from None
    finally:
        await storage.close()
    print(f"created {user}@{domain}")
    return 0


async def cmd_passwd(args, cfg) -> int:
    from ..core.accounts import NoSuchAccount
    user, domain = split_account(cfg, args.jid)
    storage, accounts = await open_accounts(cfg)
    try:
        if not await accounts.exists(domain, user):
            raise CtlError(f"user {user}@{domain} does not exist")
        pw = read_password(args)
        await accounts.set_password(domain, user, pw)
    except NoSuchAccount:
        raise CtlError(f"user {user}@{domain} does not exist") from None
    finally:
        await storage.close()
    print(f"password of {user}@{domain} changed")
    return 0


async def cmd_deluser(args, cfg) -> int:
    from ..core.accounts import NoSuchAccount
    user, domain = split_account(cfg, args.jid)
    storage, accounts = await open_accounts(cfg)
    try:
        await accounts.delete(domain, user)
    except NoSuchAccount:
        raise CtlError(f"user {user}@{domain} does not exist") from None
    finally:
        await storage.close()
    print(f"deleted {user}@{domain}")
    return 0


async def cmd_users(args, cfg) -> int:
    from ..jid import InvalidJID, nameprep
    try:
        domain = nameprep(args.domain)
    except InvalidJID:
        raise CtlError(f"invalid domain {args.domain!r}") from None
    check_domain(cfg, domain)
    storage, accounts = await open_accounts(cfg)
    try:
        for user in await accounts.users(domain):
            print(f"{user}@{domain}")
    finally:
        await storage.close()
    return 0


def cmd_check(args, cfg) -> int:
    if args.what != "config":
        raise CtlError(f"unknown check {args.what!r} (available: config)")
    from ..config.options import OptionRegistry, check
    from ..core.modules import BUILTIN, all_declared_options, available_modules
    reg = OptionRegistry()
    for opt in all_declared_options():
        try:
            reg.declare(opt)
        except ValueError:
            pass
    warnings = list(cfg.warnings) + list(check(cfg, reg, set(available_modules()) | set(BUILTIN)))
    errors = []
    for hc in cfg.hosts.values():
        if hc.kind == "component" and hc.component_module and hc.component_module not in available_modules():
            warnings.append(f"{hc.file}:{hc.line}: component module '{hc.component_module}' of "
                            f"{hc.name} is not available in xmppd yet; the component will not run")
        ssl_opt = cfg.get("ssl", host=hc.name)
        if hc.enabled and isinstance(ssl_opt, dict):
            for key in ("certificate", "key"):
                p = ssl_opt.get(key)
                if p and not os.access(resolve(cfg, p), os.R_OK):
                    errors.append(f"{hc.name}: ssl.{key} {p} is missing or unreadable")
    if not cfg.virtual_hosts():
        warnings.append(f"{cfg.path}: no enabled VirtualHost (enable one with `xmppctl enable DOMAIN`)")
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    if errors:
        return 1
    print(f"{cfg.path}: ok ({len(cfg.virtual_hosts())} virtual host(s), {len(warnings)} warning(s))")
    return 0


def cmd_cert(args, cfg) -> int:
    if args.action != "generate":
        raise CtlError(f"unknown cert action {args.action!r} (available: generate)")
    from ..jid import InvalidJID, nameprep
    from ..net.tls import generate_self_signed
    try:
        domain = nameprep(args.domain)
    except InvalidJID:
        raise CtlError(f"invalid domain {args.domain!r}") from None
    certdir = resolve(cfg, cfg.get("certificates", default="certs"))
    cert, key = certdir / f"{domain}.crt", certdir / f"{domain}.key"
    if (cert.exists() or key.exists()) and not args.force:
        raise CtlError(f"{cert} already exists (use --force to replace it)")
    extra = [h.name for h in cfg.hosts.values() if h.name.endswith("." + domain)]
    try:
        generate_self_signed(domain, cert, key, extra_names=extra)
    except OSError as exc:
        raise CtlError(f"cannot write the certificate: {exc}") from None
    print(f"self-signed certificate for {', '.join([domain] + extra)}:\n  {cert}\n  {key}")
    print("xmppd finds it there by name; or set in the VirtualHost:")
    print(f'  ssl = {{ certificate = "{cert}"; key = "{key}"; }}')
    return 0


def _conf_paths(cfg, domain: str) -> tuple[Path, Path]:
    base = config_dir(cfg)
    return base / "conf.avail" / f"{domain}.cfg.lua", base / "conf.d" / f"{domain}.cfg.lua"


def cmd_enable(args, cfg) -> int:
    avail, link = _conf_paths(cfg, args.domain)
    if not avail.exists():
        raise CtlError(f"no {avail}: write the domain's configuration there first "
                       f"(VirtualHost \"{args.domain}\" ...)")
    if link.is_symlink() or link.exists():
        if link.resolve() == avail.resolve():
            print(f"{args.domain} is already enabled")
            return 0
        raise CtlError(f"{link} exists and is not a link to {avail}")
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(avail, link.parent), link)
    print(f"enabled {args.domain}: {link} -> {os.readlink(link)}; restart xmppd to apply")
    return 0


def cmd_disable(args, cfg) -> int:
    avail, link = _conf_paths(cfg, args.domain)
    if not link.is_symlink():
        if link.exists():
            raise CtlError(f"{link} is a regular file, not a link into conf.avail; move it there first")
        raise CtlError(f"{args.domain} is not enabled (no {link})")
    link.unlink()
    print(f"disabled {args.domain} (removed {link}); restart xmppd to apply")
    return 0


def cmd_about(args, cfg) -> int:
    import importlib.metadata as md
    print(f"xmppd {__version__}")
    print(f"Python {platform.python_version()} on {platform.system()} {platform.release()}")
    print(f"config: {cfg.path}")
    print(f"data:   {data_path(cfg)} (storage: {cfg.get('storage', default='sqlite')})")
    hosts = ", ".join(h.name for h in cfg.virtual_hosts()) or "none"
    print(f"hosts:  {hosts}")
    for lib in ("slixmpp", "aiosqlite", "cryptography", "lxml", "dnspython", "scramp", "uvloop"):
        try:
            print(f"  {lib} {md.version(lib)}")
        except md.PackageNotFoundError:
            print(f"  {lib} (not installed)")
    return 0


# -- entry point ---------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", default=argparse.SUPPRESS,
                        help="main configuration file (default: /etc/xmppd/xmppd.cfg.lua, then ./xmppd.cfg.lua)")
    ap = argparse.ArgumentParser(prog="xmppctl", parents=[common],
                                 description="Administer an xmppd server.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name, func, help_):
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    for name, func, help_ in (("adduser", cmd_adduser, "create an account"),
                              ("passwd", cmd_passwd, "change an account's password")):
        p = add(name, func, help_)
        p.add_argument("jid", metavar="JID", help="user@domain")
        p.add_argument("--password-stdin", action="store_true", help="read the password from one line of standard input")
    p = add("deluser", cmd_deluser, "delete an account and everything stored for it")
    p.add_argument("jid", metavar="JID")
    p = add("users", cmd_users, "list the accounts of a domain")
    p.add_argument("domain", metavar="DOMAIN")
    p = add("check", cmd_check, "check the configuration")
    p.add_argument("what", nargs="?", default="config", choices=["config"])
    p = add("cert", cmd_cert, "certificates: `cert generate DOMAIN` makes a self-signed one")
    p.add_argument("action", choices=["generate"])
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("--force", action="store_true", help="replace an existing certificate")
    p = add("enable", cmd_enable, "enable a domain: link conf.avail/DOMAIN.cfg.lua into conf.d/")
    p.add_argument("domain", metavar="DOMAIN")
    p = add("disable", cmd_disable, "disable a domain: remove its conf.d/ link")
    p.add_argument("domain", metavar="DOMAIN")
    add("about", cmd_about, "versions and paths")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = find_config(getattr(args, "config", None))
    try:
        if not os.path.exists(path):
            raise CtlError(f"cannot read configuration {path}: no such file (use --config PATH)")
        cfg = load(path)
        result = args.func(args, cfg)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return result
    except CtlError as exc:
        print(f"xmppctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xmppctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

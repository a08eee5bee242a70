"""``xmppctl``: the admin's day — accounts, configuration checks, certificates, domains,
and the running server (``status``, ``c2s``, ``s2s``, ``kick``, ``trace``, ``reload``)
through its control socket (``xmppd/core/control.py``).

Every command takes ``--config PATH`` (before or after the command). Errors name the
problem and exit non-zero.

Modules add their own commands: a module lists them in ``CLI`` (``CliCommand``
items), whose ``register(subparsers, common_parser)`` adds a sub-parser and returns
it (``p.set_defaults(func=cmd)``). ``cmd(args, ctx)`` gets a :class:`Context` (the
configuration, the storage, the running server), returns an exit code or a
coroutine giving one, and raises ``ctx.Error`` for a problem the admin can fix.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import platform
import signal
import sys
from pathlib import Path

from .. import __version__
from .daemon import diagnose, find_config


class CtlError(Exception):
    """A problem the admin can fix; printed as ``xmppctl: <message>``, exit 1."""


# -- helpers ---------------------------------------------------------------------

def load(path: str):
    from ..config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CtlError(str(exc)) from None


def _server(cfg):
    """A Server that is never started: it resolves paths exactly as the daemon does,
    so xmppctl opens the daemon's database and certificate directory."""
    from ..core.server import Server
    try:
        return Server(cfg)
    except (TypeError, ValueError) as exc:
        raise CtlError(f"{cfg.path}: {exc} (run `xmppctl check config`)") from None


def resolve(cfg, p) -> Path:
    return _server(cfg).resolve_path(p)


def data_path(cfg) -> Path:
    return _server(cfg).data_path


def split_account(cfg, jid: str) -> tuple[str, str]:
    from ..xmpp.jid import InvalidJID, nameprep, nodeprep
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


def selected_hosts(cfg, names: list[str] | None) -> list[str]:
    """The hosts a ``--host`` option names (each checked), or every enabled VirtualHost."""
    from ..xmpp.jid import InvalidJID, nameprep
    if not names:
        return [h.name for h in cfg.virtual_hosts() if h.enabled]
    try:
        hosts = [nameprep(h) for h in names]
    except InvalidJID as exc:
        raise CtlError(f"invalid host: {exc}") from None
    for h in hosts:
        check_domain(cfg, h)
    return hosts


def refuse_while_running(cfg, before: str) -> None:
    """CtlError "xmppd is running: stop it before ..." when the daemon answers."""
    if call_running(cfg, "status", required=False) is not NOT_RUNNING:
        raise CtlError(f"xmppd is running: stop it before {before}")


def _give_files_to_data_owner(path: Path) -> None:
    """Run as root, leave the files xmppctl created in the data directory (the
    database, its WAL) to the directory's owner, the daemon's user, as prosodyctl
    does by switching user."""
    if os.geteuid() != 0 or not path.is_dir():
        return
    st = path.stat()
    if st.st_uid == 0:
        return
    for f in path.iterdir():
        try:
            if f.is_file() and f.stat().st_uid == 0:
                os.chown(f, st.st_uid, st.st_gid)
        except OSError:
            pass


class _OwnedStorage:
    """The storage, with ``close()`` handing new files to the data directory's owner."""

    def __init__(self, storage, path: Path):
        self._storage, self._path = storage, path

    def __getattr__(self, name):
        return getattr(self._storage, name)

    async def close(self) -> None:
        await self._storage.close()
        _give_files_to_data_owner(self._path)


async def open_storage(cfg):
    """The daemon's storage (close it when done). The SQLite database may be used
    by a running xmppd at the same time."""
    from ..core.server import open_configured_storage
    try:
        return _OwnedStorage(await open_configured_storage(cfg, data_path(cfg)), data_path(cfg))
    except Exception as exc:  # unknown driver, unwritable directory, damaged database
        raise CtlError(f"cannot open the storage in {data_path(cfg)}: {exc}") from None


async def open_accounts(cfg):
    from ..core.accounts import Accounts
    storage = await open_storage(cfg)
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


def _password_refused(exc: ValueError) -> CtlError:
    # make_credentials: "empty password" or "password refused by SASLprep: ..."
    return CtlError(f"password not accepted: {exc} (control characters and some "
                    f"Unicode characters are not allowed in XMPP passwords)")


class Context:
    """What a module's xmppctl command gets instead of importing xmppctl."""
    Error = CtlError

    def __init__(self, cfg):
        self.config = cfg

    NOT_RUNNING = None   # set below

    async def open_storage(self):
        """The daemon's storage (close it when done)."""
        return await open_storage(self.config)

    def call_running(self, cmd: str, cmd_args: dict | None = None, *, required: bool = True):
        """The running xmppd's answer to a control command (``NOT_RUNNING`` when it
        is not running and ``required`` is false)."""
        return call_running(self.config, cmd, cmd_args, required=required)

    async def running_or_stored(self, cmd: str, cmd_args: dict | None, from_storage):
        """``(answer, True)``: the running xmppd's answer to a control command; or,
        when it is not running, ``(await from_storage(storage), False)`` on the
        daemon's storage."""
        r = self.call_running(cmd, cmd_args, required=False)
        if r is not NOT_RUNNING:
            return r, True
        storage = await self.open_storage()
        try:
            return await from_storage(storage), False
        finally:
            await storage.close()

    def split_account(self, jid: str) -> tuple[str, str]:
        return split_account(self.config, jid)


# -- the running server: the control socket ---------------------------------------------

NOT_RUNNING = object()
Context.NOT_RUNNING = NOT_RUNNING


def control_path(cfg) -> Path | None:
    """The daemon's control socket (None if ``control_socket = false``)."""
    from ..core.control import socket_path
    return socket_path(_server(cfg))


def call_running(cfg, cmd: str, cmd_args: dict | None = None, *, required: bool = True,
                 streaming: bool = False):
    """The running xmppd's answer to ``cmd``. When it is not running: CtlError if
    ``required``, else :data:`NOT_RUNNING` (the caller works on storage instead).
    ``streaming``: ``(answer, lines)`` of a streaming command (``trace``)."""
    from ..core import control
    path = control_path(cfg)
    if path is None:
        if not required:
            return NOT_RUNNING
        where = cfg.where("control_socket")
        raise CtlError(f"the control socket is disabled (control_socket = false at "
                       f"{where.location if where else cfg.path}): xmppctl cannot reach xmppd")
    try:
        if streaming:
            return control.stream(path, cmd, cmd_args)
        return control.request(path, cmd, cmd_args)
    except control.NotRunning:
        if not required:
            return NOT_RUNNING
        raise CtlError(f"xmppd is not running (no control socket at {path})") from None
    except control.Denied:
        owner = ""
        try:
            import pwd
            owner = f" ({pwd.getpwuid(path.stat().st_uid).pw_name})"
        except (OSError, KeyError, ImportError):
            pass
        raise CtlError(f"permission denied on {path}: run xmppctl as root or as the "
                       f"user xmppd runs as{owner}") from None
    except control.ControlError as exc:
        raise CtlError(str(exc)) from None
    except OSError as exc:  # e.g. a path too long for a Unix socket
        raise CtlError(f"cannot reach xmppd at {path}: {exc}") from None


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d}d"] if d else []
    if d or h:
        parts.append(f"{h}h")
    if d or h or m:
        parts.append(f"{m}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def _print_json(result) -> int:
    import json
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_status(args, cfg) -> int:
    r = call_running(cfg, "status")
    if args.json:
        return _print_json(r)
    print(f"xmppd {r['version']} is running (pid {r['pid']}), up {_duration(r['uptime'])}")
    print(f"hosts: {', '.join(r['hosts']) or 'none'}")
    if r.get("components"):
        print(f"components: {', '.join(r['components'])}")
    print(f"client sessions: {r['c2s']}")
    print(f"server connections: {r['s2s']} ({r['s2s_in']} incoming, {r['s2s_out']} outgoing)")
    if r.get("traces"):
        print(f"stanza traces running (xmppctl trace): {r['traces']}")
    _print_metrics(r.get("metrics") or [])
    return 0


# the metrics ``status`` shows in words; any other (a module's) is listed as it is
_SHOWN = {"xmppd_info", "xmppd_connections", "xmppd_sessions", "xmppd_s2s_remote_domains",
          "prosody_mod_measure_stanza_counts__received", "prosody_mod_measure_stanza_counts__sent",
          "xmppd_storage_operation_duration_seconds", "process_cpu_seconds",
          "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
          "prosody_mod_c2s__connections", "prosody_mod_s2s__connections_inbound",
          "prosody_mod_s2s__connections_outbound", "process_virtual_memory_bytes",
          "process_start_time_seconds"}


def _print_metrics(families: list[dict]) -> None:
    """The metrics of ``status`` (those ``http_openmetrics`` serves), for a reader."""
    by_name = {f["name"]: f["samples"] for f in families}

    def value(name, **labels):
        for smp in by_name.get(name, ()):
            if all(smp["labels"].get(k) == v for k, v in labels.items()):
                return smp["value"]
        return None

    conns = by_name.get("xmppd_connections")
    if conns:
        print("connections: " + ", ".join(f"{int(smp['value'])} {smp['labels']['listener']}"
                                          for smp in conns))
    sessions = by_name.get("xmppd_sessions")
    if sessions:
        print("bound resources: " + ", ".join(f"{smp['labels']['host']} {int(smp['value'])}"
                                              for smp in sessions))
    domains = by_name.get("xmppd_s2s_remote_domains")
    if domains:
        print(f"remote domains: {int(value('xmppd_s2s_remote_domains', direction='in') or 0)} "
              f"incoming, {int(value('xmppd_s2s_remote_domains', direction='out') or 0)} outgoing")
    for title, name in (("stanzas in", "prosody_mod_measure_stanza_counts__received"),
                        ("stanzas out", "prosody_mod_measure_stanza_counts__sent")):
        per_type: dict[str, list] = {}
        for smp in by_name.get(name, ()):
            per_type.setdefault(smp["labels"]["session_type"], []).append(
                (int(smp["value"]), smp["labels"]["stanza_kind"]))
        if name in by_name:      # stream types that saw none are left out
            shown = [f"{t} {', '.join(f'{n} {k}' for n, k in v)}" for t, v in per_type.items()
                     if any(n for n, _ in v)]
            print(f"{title}: " + ("; ".join(shown) or "none"))
    storage: dict[tuple[str, str], dict] = {}
    for smp in by_name.get("xmppd_storage_operation_duration_seconds", ()):
        key = (smp["labels"]["store_type"], smp["labels"]["operation"])
        suffix = smp["name"].rsplit("_", 1)[1]
        if suffix in ("count", "sum"):
            storage.setdefault(key, {})[suffix] = smp["value"]
    timed = [(k, v) for k, v in storage.items() if v.get("count")]
    if timed:
        print("storage (operations, mean time): " + ", ".join(
            f"{kind}.{op} {int(v['count'])} {v['sum'] / v['count'] * 1000:.2f} ms"
            for (kind, op), v in timed))
    rss = value("process_resident_memory_bytes")
    cpu = value("process_cpu_seconds")
    fds, max_fds = value("process_open_fds"), value("process_max_fds")
    parts = []
    if rss is not None:
        parts.append(f"{rss / 1048576:.1f} MiB resident memory")
    if cpu is not None:
        parts.append(f"{cpu:.2f} s CPU")
    if fds is not None:
        limit = "" if max_fds is None else f" of {int(max_fds)}"
        parts.append(f"{int(fds)}{limit} file descriptors")
    if parts:
        print("process: " + ", ".join(parts))
    for f in families:       # a module's (MUC's rooms): its help, its labels, the value
        if f["name"] in _SHOWN:
            continue
        for smp in f["samples"]:
            labels = ", ".join(f"{k} {v}" for k, v in smp["labels"].items())
            what = f["help"] or smp["name"]
            print(f"{what}{' (' + labels + ')' if labels else ''}: {smp['value']:g}")


def cmd_c2s(args, cfg) -> int:
    sessions = call_running(cfg, "c2s")
    if args.json:
        return _print_json(sessions)
    for s in sessions:
        tls = ("direct TLS" if s["direct_tls"] else "TLS") if s["tls"] else "plain"
        sm = s.get("sm")
        if sm is None:
            smt = "-"
        else:
            smt = "sm" + (" resumable" if sm["resumable"] else "")
            if sm["hibernating"]:
                smt += f" hibernating ({sm['unacked']} unacked)"
        print(f"{s['jid'] or '(not authenticated)'}	{s['ip']}	{tls}	{smt}")
    if not sessions:
        print("no client sessions")
    return 0


def cmd_s2s(args, cfg) -> int:
    links = call_running(cfg, "s2s")
    if args.json:
        return _print_json(links)
    for s in links:
        arrow = "->" if s.get("direction") == "out" else "<-"
        when = f"idle {s['idle']}s" if "idle" in s else f"up {s.get('age', 0)}s"
        print(f"{s.get('direction')}	{s.get('local') or '?'} {arrow} {s.get('remote') or '?'}	"
              f"{s.get('auth') or 'unauthenticated'}	{'TLS' if s.get('tls') else 'plain'}	{when}")
    if not links:
        print("no server-to-server connections")
    return 0


def cmd_kick(args, cfg) -> int:
    r = call_running(cfg, "kick", {"jid": args.jid, "reason": args.reason})
    for jid in r["closed"]:
        print(f"disconnected {jid}")
    return 0


def _clock(t: float) -> str:
    import time
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def pretty_xml(xml: str) -> str:
    """A stanza as xmppd wrote or read it, indented (as it is, if it does not parse)."""
    from xml.dom import minidom
    from xml.parsers.expat import ExpatError
    from ..xmpp import ns
    try:
        doc = minidom.parseString(f"<trace xmlns:stream='{ns.STREAM}' xmlns:db='{ns.DIALBACK}'>"
                                  f"{xml}</trace>")
    except (ExpatError, ValueError):
        return xml
    top = doc.documentElement.firstChild
    if top is None or top.nodeType != top.ELEMENT_NODE:
        return xml

    def strip(node) -> None:   # whitespace between elements: the indentation replaces it
        children = list(node.childNodes)
        if any(c.nodeType == c.ELEMENT_NODE for c in children):
            for c in children:
                if c.nodeType == c.TEXT_NODE and not c.data.strip():
                    node.removeChild(c)
        for c in node.childNodes:
            if c.nodeType == c.ELEMENT_NODE:
                strip(c)
    strip(top)
    return top.toprettyxml(indent="  ").rstrip("\n")


def cmd_trace(args, cfg) -> int:
    import json
    request = {"jid": args.jid, "count": args.count, "duration": args.duration}
    info, lines = call_running(cfg, "trace", request, streaming=True)
    sessions = info["sessions"]
    print(f"tracing {info['tracing']} ({info['what']}): "
          + (f"{sessions} session(s) now" if sessions else "no session now, waiting for one")
          + "; Ctrl-C to stop", file=sys.stderr, flush=True)
    shown = dropped = 0
    end = None
    interrupted = False
    try:
        for line in lines:
            kind = line.get("type")
            if kind == "end":
                end = line
                break
            if kind == "stanza":
                shown += 1
            elif kind == "dropped":
                dropped += line["count"]
            if args.json:
                print(json.dumps(line), flush=True)
            else:
                print(_trace_line(line), flush=True)
    except KeyboardInterrupt:   # Ctrl-C: the usual way to stop
        interrupted = True
    except OSError as exc:
        raise CtlError(f"the trace stopped: {exc}") from None
    finally:
        lines.close()
    if end is not None:
        shown, dropped = end["stanzas"], end["dropped"]
        why = {"count": "--count reached", "duration": "--duration elapsed"}.get(
            end["reason"], "stopped by xmppd")
    else:
        why = "interrupted" if interrupted else "xmppd closed the connection"
    print(f"trace of {info['tracing']} ended ({why}): {shown} stanza(s)"
          + (f", {dropped} dropped" if dropped else ""), file=sys.stderr)
    return 0


def _trace_line(line: dict) -> str:
    """One line of a trace, for a person."""
    kind = line.get("type")
    when = _clock(line["time"])
    who = f"{line.get('session')} [{line.get('kind')} {line.get('id')}]"
    if kind == "stanza":
        arrow = "in  <-" if line["direction"] == "in" else "out ->"
        return f"{when} {arrow} {who}\n{pretty_xml(line['xml'])}\n"
    if kind == "session":
        return f"-- {when} {who}: traced from now\n"
    if kind == "closed":
        return f"-- {when} {who}: connection closed\n"
    if kind == "dropped":
        return f"-- {when} {line['count']} stanza(s) dropped: xmppctl did not read them fast enough\n"
    return f"-- {when} {line}\n"


def cmd_reload(args, cfg) -> int:
    # the same checks as the daemon's, here first: file:line:col, and nothing sent
    from ..config import ConfigError
    try:
        _warnings, errors = diagnose(cfg)
        _server(cfg)
    except (ConfigError, CtlError) as exc:
        errors = [str(exc)]
    if errors:
        for e in errors:
            print(f"configuration NOT applied, xmppd keeps running with the previous one: {e}")
        return 1
    r = call_running(cfg, "reload")
    failed = False
    for c in r["certificates"]:
        if c["error"]:
            failed = True
            state = f"NOT reloaded, the old one stays: {c['error']}"
        else:
            state = "reloaded" if c["changed"] else "unchanged"
        until = f", valid until {c['not_after'][:10]}" if c.get("not_after") else ""
        print(f"certificate for {', '.join(c['names'])}: {state} ({c['certificate']}{until})")
    if r["config_error"]:
        failed = True
        print(f"configuration NOT applied, xmppd keeps running with the previous one: "
              f"{r['config_error']}")
    elif r["config_changes"]:
        print("configuration changes:")
        for change in r["config_changes"]:
            print(f"  {change}")
        for line in r.get("applied", ()):
            print(f"applied: {line}")
        for line in r.get("restart", ()):
            print(f"needs a restart: {line}")
    else:
        print("configuration: unchanged")
    return 1 if failed else 0


# -- commands ----------------------------------------------------------------------

async def cmd_adduser(args, cfg) -> int:
    from ..core.accounts import AccountExists
    user, domain = split_account(cfg, args.jid)
    storage, accounts = await open_accounts(cfg)
    try:
        if await accounts.exists(domain, user):  # before asking for a password
            raise AccountExists()
        pw = read_password(args)
        await accounts.create(domain, user, pw)
    except AccountExists:
        raise CtlError(f"user {user}@{domain} already exists") from None
    except ValueError as exc:
        raise _password_refused(exc) from None
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
    except ValueError as exc:
        raise _password_refused(exc) from None
    finally:
        await storage.close()
    print(f"password of {user}@{domain} changed")
    return 0


async def cmd_deluser(args, cfg) -> int:
    from ..core.accounts import NoSuchAccount
    user, domain = split_account(cfg, args.jid)
    r = call_running(cfg, "deluser", {"jid": f"{user}@{domain}"}, required=False)
    if r is not NOT_RUNNING:
        print(f"deleted {user}@{domain} and everything stored for it")
        print(f"(on the running xmppd: {r['sessions']} session(s) closed, "
              f"contacts' rosters updated)")
        return 0
    storage, accounts = await open_accounts(cfg)
    try:
        await accounts.delete(domain, user)
    except NoSuchAccount:
        raise CtlError(f"user {user}@{domain} does not exist") from None
    finally:
        await storage.close()
    print(f"deleted {user}@{domain} and everything stored for it")
    print("(xmppd is not running: deleted from the storage)")
    return 0


async def cmd_users(args, cfg) -> int:
    from ..xmpp.jid import InvalidJID, nameprep
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
    if args.what == "dns":
        if not args.domain:
            raise CtlError("check dns needs a DOMAIN (e.g. xmppctl check dns falcot.com)")
        from .dns_check import run_check
        return run_check(args, cfg)
    if args.what == "certs":
        from .certs import cmd_check_certs
        return cmd_check_certs(args, cfg)
    from ..config import ConfigError
    try:
        warnings, errors = diagnose(cfg)
    except ConfigError as exc:  # an option of the wrong type, out of range, ...
        warnings, errors = [], [str(exc)]
    if not errors:     # certificates of a configuration that makes sense
        from .certs import certificate_report
        _lines, cert_errors, cert_warnings = certificate_report(cfg)
        errors += cert_errors
        warnings += cert_warnings
    for w in warnings:
        print(f"{getattr(w, 'level', 'warning')}: {w}")
    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"{cfg.path}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print("limits in force:")
    for line in limits_in_force(cfg):
        print(f"  {line}")
    print(f"storage: {storage_in_force(cfg)}")
    print(f"{cfg.path}: ok ({len(cfg.virtual_hosts())} virtual host(s), {len(warnings)} warning(s))")
    return 0


DURABILITY = {
    "normal": "WAL, synchronous=NORMAL: what the server acknowledged survives a crash of "
              "xmppd (kill -9), not of the machine",
    "safe": "WAL, synchronous=FULL: what the server acknowledged survives a crash of the "
            "machine too (an fsync per commit)",
    "fast": "WAL, synchronous=OFF: survives a crash of xmppd; a crash of the machine may "
            "lose or corrupt the database",
}
DURABILITY["default"] = DURABILITY["safe"]   # Prosody's name for SQLite's own FULL


def storage_in_force(cfg) -> str:
    """The storage and the durability it promises (sqlite_tune)."""
    from ..config.options import CORE_OPTIONS, lookup
    from ..core.storage_setup import StorageConfigError, postgres_options, routes
    try:
        default, per_store = routes(cfg)
    except StorageConfigError as exc:
        return str(exc)

    def describe(kind: str) -> str:
        if kind == "memory":
            return "memory (nothing survives a restart)"
        if kind == "postgres":
            try:
                o = postgres_options(cfg)
            except StorageConfigError as exc:
                return str(exc)
            where = o.get("host") or "local socket"
            where += f":{o['port']}" if o.get("port") else ""
            return (f"postgresql database {o['database']!r} on {where} (every write is "
                    "committed before it is acknowledged: synchronous_commit)")
        tune = lookup(cfg, next(o for o in CORE_OPTIONS if o.name == "sqlite_tune"))
        return f"sqlite {data_path(cfg) / 'xmppd.sqlite'} (sqlite_tune = {tune}: {DURABILITY[tune]})"

    text = describe(default)
    for store, kind in sorted(per_store.items()):
        if kind != default:
            text += f"; {store}: {describe(kind)}"
    return text


def limits_in_force(cfg) -> list[str]:
    """Every limit the configuration sets or leaves at its default: the core's
    (connections, reading rates, failed logins) and the options modules declare as
    limits, with their values per host where they differ."""
    from ..app import FINDER
    from ..config.options import CORE_OPTIONS, lookup
    from ..core.limits import Limits
    out = Limits(cfg).describe()
    hosts = [None] + [h.name for h in cfg.hosts.values() if h.enabled]
    for opt in FINDER.declared_options(CORE_OPTIONS):
        if not getattr(opt, "limit", False):
            continue
        values = {}
        for h in hosts if opt.scope != "global" else [None]:
            try:
                values[h] = lookup(cfg, opt, h)
            except Exception:
                continue
        glob = values.get(None)
        line = f"{opt.name} = {'not set' if glob is None else glob}"
        if glob is None and "(default: " in opt.doc:     # what "not set" means
            line += " (" + opt.doc.split("(default: ", 1)[1].split(")", 1)[0] + ")"
        diff = [f"{h}: {v}" for h, v in values.items() if h is not None and v != glob]
        if diff:
            line += f" ({'; '.join(diff)})"
        out.append(line)
    return out


def cmd_cert(args, cfg) -> int:
    if args.action == "import":
        from .certs import cmd_cert_import
        return cmd_cert_import(args, cfg)
    from ..xmpp.jid import InvalidJID, nameprep
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
    ssl_setting = cfg.where("ssl", host=domain) if domain in cfg.hosts else None
    configured = ssl_setting.value.get("certificate") if ssl_setting is not None and \
        isinstance(ssl_setting.value, dict) else None
    if configured and resolve(cfg, configured) != cert:
        # the host names its own certificate: that one is used, not the one just made
        print(f"note: {domain}'s ssl ({ssl_setting.file}:{ssl_setting.line}:{ssl_setting.col}) "
              f"names {resolve(cfg, configured)}, which xmppd uses instead; to use this one, set")
    elif configured:
        print(f"{domain}'s ssl ({ssl_setting.file}:{ssl_setting.line}) names this file.")
        return 0
    else:
        print("xmppd finds it there by name; or set in the VirtualHost:")
    print(f'  ssl = {{ certificate = "{cert}"; key = "{key}"; }}')
    return 0


def _conf_paths(cfg, domain: str) -> tuple[str, Path, Path]:
    """``(domain, conf.avail/DOMAIN.cfg.lua, conf.d/DOMAIN.cfg.lua)`` beside the main
    file (where ``Include "conf.d/*.cfg.lua"`` looks)."""
    from ..xmpp.jid import InvalidJID, nameprep
    try:
        domain = nameprep(domain)
    except InvalidJID:
        raise CtlError(f"invalid domain {domain!r}") from None
    base = Path(cfg.config_dir)
    return domain, base / "conf.avail" / f"{domain}.cfg.lua", base / "conf.d" / f"{domain}.cfg.lua"


def cmd_enable(args, cfg) -> int:
    domain, avail, link = _conf_paths(cfg, args.domain)
    if not avail.is_file():
        raise CtlError(f"no {avail}: write the domain's configuration there first "
                       f"(VirtualHost \"{domain}\" ...)")
    if link.is_symlink() or link.exists():
        if link.exists() and link.resolve() == avail.resolve():
            print(f"{domain} is already enabled ({link})")
            return 0
        raise CtlError(f"{link} exists and is not a link to {avail}; remove it first")
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(avail, link.parent), link)
    print(f"enabled {domain}: {link} -> {os.readlink(link)}; `xmppctl reload` applies it to the running xmppd")
    return 0


def cmd_disable(args, cfg) -> int:
    domain, avail, link = _conf_paths(cfg, args.domain)
    if not link.is_symlink():
        if link.exists():
            raise CtlError(f"{link} is a regular file, not a link into conf.avail; "
                           f"move it to {avail.parent}/ first")
        raise CtlError(f"{domain} is not enabled (no {link})")
    link.unlink()
    print(f"disabled {domain} (removed {link}); `xmppctl reload` applies it to the running xmppd")
    return 0


def cmd_about(args, cfg) -> int:
    import importlib.metadata as md
    print(f"xmppd {__version__}")
    print(f"Python {platform.python_version()} on {platform.system()} {platform.release()}")
    print(f"config: {cfg.path}")
    print(f"data:   {data_path(cfg)} (storage: {storage_in_force(cfg)})")
    hosts = ", ".join(h.name for h in cfg.virtual_hosts()) or "none"
    print(f"hosts:  {hosts}")
    for lib in ("slixmpp", "aiosqlite", "asyncpg", "cryptography", "dnspython", "scramp", "uvloop"):
        try:
            print(f"  {lib} {md.version(lib)}")
        except md.PackageNotFoundError:
            print(f"  {lib} (not installed)")
    return 0


# -- entry point ---------------------------------------------------------------------

def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            v = 0
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
        return v
    return parse


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
    p = add("deluser", cmd_deluser, "delete an account and everything stored for it "
            "(through the running xmppd when it runs: its sessions close, rosters are updated)")
    p.add_argument("jid", metavar="JID")
    p = add("users", cmd_users, "list the accounts of a domain")
    p.add_argument("domain", metavar="DOMAIN")
    p = add("check", cmd_check, "check the configuration (check config, the default), "
            "the certificates (check certs) or the DNS records a domain needs (check dns DOMAIN)")
    p.add_argument("--nameserver", action="append", metavar="ADDR[:PORT]",
                   help="for check dns: ask this DNS server")
    checks = p.add_subparsers(dest="what", metavar="config|dns|certs")
    checks.add_parser("config", parents=[common], help="errors and warnings, with file:line:col")
    d = checks.add_parser("dns", parents=[common],
                          help="the SRV records DOMAIN needs, against the configuration")
    d.add_argument("domain", metavar="DOMAIN")
    # before or after the domain: `check dns --nameserver 127.0.0.1 falcot.com`
    d.add_argument("--nameserver", action="append", metavar="ADDR[:PORT]", default=argparse.SUPPRESS,
                   help="ask this DNS server (repeatable)")
    checks.add_parser("certs", parents=[common], help="the certificate each host serves: "
                      "readable, key, names, chain, expiry")
    p = add("cert", cmd_cert, "certificates: `cert generate DOMAIN` makes a self-signed one; "
            "`cert import [HOST...] DIR...` copies certbot's (e.g. /etc/letsencrypt/live)")
    actions = p.add_subparsers(dest="action", metavar="generate|import")
    actions.required = True
    g = actions.add_parser("generate", parents=[common], help="a self-signed certificate for DOMAIN "
                           "and its components")
    g.add_argument("domain", metavar="DOMAIN")
    g.add_argument("--force", action="store_true", help="replace an existing certificate")
    i = actions.add_parser("import", parents=[common], help="copy the certificates for the "
                           "configured hosts found in DIR into the certificates directory and "
                           "have xmppd load them")
    i.add_argument("args", nargs="+", metavar="[HOST...] DIR...",
                   help="hosts to import (default: every host, or certbot's RENEWED_DOMAINS) "
                   "then directories to search")
    p = add("enable", cmd_enable, "enable a domain: link conf.avail/DOMAIN.cfg.lua into conf.d/")
    p.add_argument("domain", metavar="DOMAIN")
    p = add("disable", cmd_disable, "disable a domain: remove its conf.d/ link")
    p.add_argument("domain", metavar="DOMAIN")
    add("about", cmd_about, "versions and paths")
    # the running server, through the control socket
    for name, func, help_ in (("status", cmd_status, "is xmppd running: version, uptime, hosts, connections"),
                              ("c2s", cmd_c2s, "list the client sessions of the running xmppd"),
                              ("s2s", cmd_s2s, "list the server-to-server connections of the running xmppd")):
        p = add(name, func, help_)
        p.add_argument("--json", action="store_true", help="print JSON")
    p = add("kick", cmd_kick, "disconnect the sessions of a JID (bare: all of them) with a stream error")
    p.add_argument("jid", metavar="JID", help="user@domain or user@domain/resource")
    p.add_argument("--reason", default=None, help="text sent with the stream error")
    p = add("trace", cmd_trace, "show the stanzas of an account, a resource or a remote domain "
            "live, as they go over the wire (after authentication), until Ctrl-C")
    p.add_argument("jid", metavar="JID", help="user@domain (every session of the account, also "
                   "those that start later), user@domain/resource, a remote domain (its "
                   "server-to-server streams) or an external component's domain")
    p.add_argument("--count", type=_positive(int), default=None, metavar="N",
                   help="stop after N stanzas")
    p.add_argument("--duration", type=_positive(float), default=None, metavar="SECONDS",
                   help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print each line as xmppd sends it (JSON)")
    from .import_prosody import register as register_import
    from .xep227 import register as register_xep227
    register_xep227(sub, common, add, register_import(sub, common, add))
    from .storage_migrate import register as register_storage
    register_storage(sub, common, add)
    add("reload", cmd_reload, "apply the configuration files to the running xmppd (hosts, "
        "modules, options; what needs a restart is said) and reload the certificates")
    register_feature_commands(sub, common)
    return ap


def register_feature_commands(subparsers, common) -> None:
    """Let modules add their commands (their ``CLI`` lists).

    A module whose commands fail to import or register is reported on stderr and
    skipped: one broken feature must not take the admin's tool down.
    """
    from ..app import FINDER
    for name in FINDER.available():
        try:
            commands = getattr(FINDER.load(name), "CLI", ())
            for command in commands:
                p = command.register(subparsers, common)
                if p is not None:
                    p.set_defaults(module_command=True)
        except Exception as exc:
            print(f"xmppctl: warning: the commands of module {name!r} are unavailable: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    if argv is None and hasattr(signal, "SIGPIPE"):
        # `xmppctl check config | head`: end quietly when the reader goes, as Unix tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = build_parser().parse_args(argv)
    path = find_config(getattr(args, "config", None))
    try:
        if not os.path.exists(path):
            raise CtlError(f"cannot read configuration {path}: no such file (use --config PATH)")
        cfg = load(path)
        if argv is None and args.func is not cmd_check:
            # what xmppctl creates (the database for adduser, certificates) gets the
            # daemon's modes; check config reports a bad umask itself
            from ..config import ConfigError
            from ..config.options import umask_setting
            try:
                os.umask(umask_setting(cfg))
            except ConfigError as exc:
                raise CtlError(str(exc)) from None
        result = args.func(args, Context(cfg) if getattr(args, "module_command", False) else cfg)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except CtlError as exc:
        print(f"xmppctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nxmppctl: interrupted", file=sys.stderr)
        return 130
    except EOFError:  # Ctrl-D at a password prompt
        print("\nxmppctl: no password given", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

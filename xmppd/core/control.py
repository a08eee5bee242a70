"""The control socket: ``xmppctl`` acting on the running server.

The daemon listens on a Unix socket (``control_socket``, by default
``data_path/xmppd.sock``), mode 0600 and owned by the daemon's user; only that user
and root may connect (the peer's uid is checked too). The protocol is one JSON
object per line each way::

    {"cmd": "kick", "args": {"jid": "joe@falcot.com"}}
    {"ok": true, "result": {"closed": ["joe@falcot.com/phone"]}}
    {"ok": false, "error": "no session of joe@falcot.com"}

Several requests may follow each other on one connection. The core's commands are
``status``, ``c2s``, ``kick``, ``deluser``, ``reload`` and ``shutdown``
(:data:`COMMANDS`); protocols and modules add theirs as ``control-command`` items
(``s2s``, ``muc-destroy``...). A command is called as ``func(ctx, args)`` with a
:class:`Context`. :func:`request` is the client side, used by ``xmppctl``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..xmpp.errors import StreamError
from ..xmpp.jid import InvalidJID, split
from .modules import ControlCommand

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("xmppd.control")

DEFAULT_NAME = "xmppd.sock"
MAX_LINE = 65536
# sun_path is 108 bytes on Linux, with the final NUL
MAX_PATH = 107


class ControlError(Exception):
    """A command that cannot be done; the message goes back to xmppctl as is."""


def socket_path(server: "Server") -> Path | None:
    """Where the control socket is (None if ``control_socket = false``). Works on a
    Server that was never started, as xmppctl's is."""
    v = server.config.get("control_socket")
    if v is False:
        return None
    if v in (None, True, ""):
        return server.data_path / DEFAULT_NAME
    return server.resolve_path(str(v))


# -- the server side ----------------------------------------------------------------

class ControlPathTooLong(OSError):
    """The socket can't be created there; the server runs without it."""


class ControlServer:
    def __init__(self, server: "Server", path: Path):
        self.server = server
        self.path = path
        self._srv: asyncio.AbstractServer | None = None
        self._ino: tuple[int, int] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # what ``shutdown`` calls once it has answered (the daemon sets its own)
        self.on_shutdown: Callable[[], Any] = self._stop_server
        self._stop_task: asyncio.Task | None = None

    def _stop_server(self) -> None:
        self._stop_task = asyncio.get_running_loop().create_task(self.server.stop())

    async def start(self) -> None:
        path = self.path
        if len(os.fsencode(path)) > MAX_PATH:
            raise ControlPathTooLong(f"control socket {path}: path too long for a Unix socket "
                                     f"({MAX_PATH} bytes at most); set control_socket to a shorter path")
        _remove_stale(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)  # born 0600: never connectable by others
            try:
                sock.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            sock.listen(16)
            sock.setblocking(False)
            self._srv = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            raise
        st = os.stat(path)
        self._ino = (st.st_dev, st.st_ino)
        log.info("control socket at %s", path)

    async def close(self) -> None:
        if self._srv is None:
            return
        srv, self._srv = self._srv, None
        srv.close()
        for w in list(self._writers):
            w.close()
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._ino:  # ours, not a newer daemon's
                os.unlink(self.path)
        except OSError:
            pass
        try:
            await asyncio.wait_for(srv.wait_closed(), 2)
        except (asyncio.TimeoutError, Exception):
            pass

    def _allowed(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except (OSError, AttributeError):
            return True  # no SO_PEERCRED here: the file mode alone guards the socket
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid in (0, os.geteuid())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if not self._allowed(writer):
                await _reply(writer, {"ok": False, "error": "permission denied"})
                return
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _reply(writer, {"ok": False, "error": "request too long"})
                    return
                if not line:
                    return
                cmd, response = await self.handle(line)
                await _reply(writer, response)
                if cmd == "shutdown" and response["ok"]:
                    self.on_shutdown()
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def commands(self) -> dict[str, ControlCommand]:
        """The core's commands, then those protocols and modules registered."""
        out = dict(COMMANDS)
        for c in self.server.items("control-command"):
            out.setdefault(c.name, c)
        return out

    async def handle(self, line: bytes) -> tuple[str | None, dict]:
        """One request line → ``(command, response)``."""
        try:
            req = json.loads(line)
        except ValueError:
            return None, {"ok": False, "error": "not a JSON object"}
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return None, {"ok": False, "error": 'expected {"cmd": "...", "args": {...}}'}
        cmd, args = req["cmd"], req.get("args") or {}
        commands = self.commands()
        command = commands.get(cmd)
        if command is None:
            return cmd, {"ok": False, "error": f"unknown command {cmd!r} "
                                               f"(available: {', '.join(sorted(commands))})"}
        if not isinstance(args, dict):
            return cmd, {"ok": False, "error": "args must be an object"}
        log.log(logging.DEBUG if command.read_only else logging.INFO, "control: %s%s", cmd,
                "".join(f" {k}={v}" for k, v in args.items() if v is not None))
        try:
            return cmd, {"ok": True, "result": await command.func(Context(self.server), args)}
        except ControlError as exc:
            return cmd, {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control: %s failed", cmd)
            return cmd, {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


async def _reply(writer: asyncio.StreamWriter, response: dict) -> None:
    writer.write(json.dumps(response).encode() + b"\n")
    await writer.drain()


def _remove_stale(path: Path) -> None:
    """A socket file left by a crashed run is removed; a live one means another
    xmppd uses this data directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"control socket {path}: the file exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing the stale control socket %s (from a previous run)", path)
        path.unlink(missing_ok=True)
        return
    except OSError:
        pass  # e.g. not ours to connect to: say so below
    finally:
        probe.close()
    raise OSError(f"control socket {path}: another xmppd is running with this data "
                  f"directory (stop it, or set control_socket elsewhere)")


# -- commands -----------------------------------------------------------------------

class Context:
    """What a control command gets: the server, and helpers that turn bad arguments
    into :class:`ControlError` (``ctx.Error``) messages."""
    Error = ControlError

    def __init__(self, server: "Server"):
        self.server = server

    def arg(self, args: dict, name: str, *, required: bool = True) -> str | None:
        v = args.get(name)
        if v is None or v == "":
            if required:
                raise ControlError(f"missing argument {name!r}")
            return None
        if not isinstance(v, str):
            raise ControlError(f"argument {name!r} must be a string")
        return v

    def jid(self, s: str) -> tuple[str, str, str]:
        try:
            return split(s)
        except InvalidJID as exc:
            raise ControlError(f"invalid JID {s!r}: {exc}") from None

    def virtualhost(self, domain: str):
        host = self.server.hosts.get(domain)
        if host is None or not host.is_virtualhost:
            served = ", ".join(h.name for h in self.server.hosts.values() if h.is_virtualhost) or "none"
            raise ControlError(f"{domain!r} is not a VirtualHost of the running xmppd (serving: {served})")
        return host


COMMANDS: dict[str, ControlCommand] = {}


def command(name: str, *, read_only: bool = False) -> Callable:
    def register(fn: Callable) -> Callable:
        COMMANDS[name] = ControlCommand(name, fn, read_only, (fn.__doc__ or "").strip())
        return fn
    return register


def client_sessions(server: "Server") -> list:
    """Every c2s session: connections (bound or not) and hibernating resources."""
    out = list(server.c2s_sessions)
    seen = set(map(id, out))
    for host in server.hosts.values():
        for resources in host.sessions.values():
            for sess in resources.values():
                if id(sess) not in seen:
                    seen.add(id(sess))
                    out.append(sess)
    return out


def describe_c2s(sess) -> dict:
    """A client session for ``xmppctl c2s``: what the core knows, and what each
    module that describes sessions adds (``m.describe_session``)."""
    out = {
        "jid": sess.full_jid or sess.bare_jid,
        "host": sess.host.name if sess.host is not None else None,
        "ip": sess.peer,
        "tls": bool(sess.tls),
        "direct_tls": bool(sess.direct_tls),
        "available": bool(sess.available),
        "hibernating": bool(sess.hibernating),
    }
    if sess.host is not None:
        for describe in sess.host.items("session-describer"):
            try:
                extra = describe(sess)
            except Exception:
                log.exception("describing %r failed", sess)
                continue
            if extra:
                out.update(extra)
    return out


@command("status", read_only=True)
async def cmd_status(ctx: Context, args: dict) -> dict:
    """Version, uptime, hosts, session counts and the metrics (``http_openmetrics``'s)."""
    server = ctx.server
    out = {
        "version": server.version,
        "pid": os.getpid(),
        "uptime": round(time.time() - server.started_at, 1),
        "hosts": [h.name for h in server.hosts.values() if h.is_virtualhost],
        "components": [h.name for h in server.hosts.values() if not h.is_virtualhost],
        "c2s": len(client_sessions(server)),
        "s2s": 0, "s2s_in": 0, "s2s_out": 0,
    }
    for describe in server.items("status-describer"):
        out.update(describe(server) or {})
    out["metrics"] = [f.to_json() for f in server.metrics.collect()]
    return out


@command("c2s", read_only=True)
async def cmd_c2s(ctx: Context, args: dict) -> list[dict]:
    """The client sessions."""
    out = [describe_c2s(s) for s in client_sessions(ctx.server)]
    out.sort(key=lambda d: (d["jid"] is None, d["jid"] or "", d["ip"]))
    return out


@command("kick")
async def cmd_kick(ctx: Context, args: dict) -> dict:
    """Close the sessions of a bare or full JID with a stream error."""
    jid = ctx.arg(args, "jid")
    user, domain, resource = ctx.jid(jid)
    if not user:
        raise ControlError(f"{jid!r} is not a user's JID")
    ctx.virtualhost(domain)
    reason = ctx.arg(args, "reason", required=False) or "kicked by the administrator"
    closed = []
    for sess in client_sessions(ctx.server):
        if sess.host is None or sess.host.name != domain or sess.username != user:
            continue
        if resource and sess.resource != resource:
            continue
        if sess.hibernating:
            sess.end_session()  # no connection to tell: the resource just ends
        elif not sess.closing:
            sess.stream_error(StreamError("policy-violation", reason))
        else:
            continue  # already on its way out
        closed.append(sess.full_jid or sess.bare_jid)
    if not closed:
        raise ControlError(f"no session of {jid}")
    return {"closed": sorted(closed)}


@command("deluser")
async def cmd_deluser(ctx: Context, args: dict) -> dict:
    """Delete an account on the running server: its sessions close, the modules
    clean up (contacts' rosters lose it), then everything stored goes."""
    from .accounts import NoSuchAccount
    jid = ctx.arg(args, "jid")
    user, domain, resource = ctx.jid(jid)
    if not user or resource:
        raise ControlError(f"invalid account {jid!r}: expected user@domain")
    host = ctx.virtualhost(domain)
    sessions = list(host.sessions_of(user).values())
    for sess in sessions:
        if sess.hibernating:
            sess.end_session()
    try:
        await ctx.server.accounts.delete(domain, user)
    except NoSuchAccount:
        raise ControlError(f"user {user}@{domain} does not exist") from None
    return {"jid": f"{user}@{domain}", "sessions": len(sessions)}


@command("reload")
async def cmd_reload(ctx: Context, args: dict) -> dict:
    """Certificates again from disk; configuration changes reported."""
    return await reload(ctx.server)


@command("shutdown")
async def cmd_shutdown(ctx: Context, args: dict) -> dict:
    """Stop the server (after answering)."""
    return {"stopping": True}


async def reload(server: "Server") -> dict:
    """``xmppctl reload`` and SIGHUP: certificates again from disk, and what changed
    in the configuration files (applied at the next restart).

    ``{"certificates": [CertificateStore.reload() reports], "config_changes": [str],
    "config_error": str | None}``
    """
    certs = server.certs.reload() if server.certs is not None else []
    if any(c["changed"] for c in certs):
        # e.g. server-to-server TLS contexts, built from the same files on demand
        await server.events.notify("certificates-reloaded", certs)
    out: dict[str, Any] = {"certificates": certs, "config_changes": [], "config_error": None}
    path = getattr(server.config, "path", "")
    if path and not path.startswith("<"):
        from ..config import ConfigError, load_config
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            out["config_error"] = str(exc)
        else:
            out["config_changes"] = config_changes(server.config, new)
    return out


def config_changes(old, new) -> list[str]:
    """What differs between two loaded configurations, one line each."""
    out = []

    def options(a: dict, b: dict, where: str) -> None:
        for name in sorted(set(a) | set(b)):
            sa, sb = a.get(name), b.get(name)
            if sa is not None and sb is not None and sa.value == sb.value:
                continue
            if sb is None:
                out.append(f"{where}option {name} removed")
            elif sa is None:
                out.append(f"{where}option {name} added ({sb.location})")
            else:
                out.append(f"{where}option {name} changed ({sb.location})")

    options(old.globals, new.globals, "")
    for name in sorted(set(old.hosts) | set(new.hosts)):
        a, b = old.hosts.get(name), new.hosts.get(name)
        if b is None or (not b.enabled and (a is not None and a.enabled)):
            if a is not None and a.enabled:
                out.append(f"{a.describe()} removed or disabled")
            continue
        if a is None or not a.enabled:
            if b.enabled:
                out.append(f"{b.describe()} added ({b.file}:{b.line})")
            continue
        if (a.kind, a.component_module) != (b.kind, b.component_module):
            out.append(f"{a.describe()} is now {b.describe()} ({b.file}:{b.line})")
        options(a.options, b.options, f"{name}: ")
    return out


# -- the client side ----------------------------------------------------------------

class NotRunning(Exception):
    """Nothing answers on the control socket."""


class Denied(Exception):
    """The socket is there but not ours to use."""


def request(path: Path, cmd: str, args: dict | None = None, *, timeout: float = 120) -> Any:
    """Send one command to the running xmppd; its result, or ControlError with the
    server's message. NotRunning when nobody listens; Denied without permission."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise NotRunning(str(path)) from None
        except PermissionError:
            raise Denied(str(path)) from None
        sock.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        raise ControlError(f"no answer from xmppd within {timeout:g}s") from None
    except (ConnectionResetError, BrokenPipeError):
        raise ControlError("xmppd closed the control connection") from None
    finally:
        sock.close()
    if not buf:
        raise ControlError("xmppd closed the control connection without answering")
    try:
        resp = json.loads(buf)
    except ValueError:
        raise ControlError("xmppd sent an unreadable answer") from None
    if not resp.get("ok"):
        if resp.get("error") == "permission denied":
            raise Denied(str(path))
        raise ControlError(resp.get("error") or "failed")
    return resp.get("result")

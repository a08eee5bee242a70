"""The control socket: ``xmppctl`` acting on the running server.

The daemon listens on a Unix socket (``control_socket``, by default
``data_path/xmppd.sock``), mode 0600 and owned by the daemon's user; only that user
and root may connect (the peer's uid is checked too). The protocol is one JSON
object per line each way::

    {"cmd": "kick", "args": {"jid": "joe@falcot.com"}}
    {"ok": true, "result": {"closed": ["joe@falcot.com/phone"]}}
    {"ok": false, "error": "no session of joe@falcot.com"}

Several requests may follow each other on one connection. The core's commands are
``status``, ``c2s``, ``kick``, ``deluser``, ``trace``, ``reload`` and ``shutdown``
(:data:`COMMANDS`); protocols and modules add theirs as ``control-command`` items
(``s2s``, ``muc-destroy``...). A command is called as ``func(ctx, args)`` with a
:class:`Context`.

A streaming command (``trace``) answers as the others, then sends one more JSON
object per line (``{"type": "stanza", ...}``) until it ends (an ``{"type": "end"}``
line) or xmppctl closes the connection; then the connection closes
(:class:`Streaming`). :func:`request` and :func:`stream` are the client side, used
by ``xmppctl``.
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
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

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
                streaming = response.pop("streaming", None)
                await _reply(writer, response)
                if streaming is not None:
                    await _stream(reader, writer, streaming.lines)
                    return
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
            result = await command.func(Context(self.server), args)
            if isinstance(result, Streaming):
                return cmd, {"ok": True, "result": result.result, "streaming": result}
            return cmd, {"ok": True, "result": result}
        except ControlError as exc:
            return cmd, {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control: %s failed", cmd)
            return cmd, {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


async def _reply(writer: asyncio.StreamWriter, response: dict) -> None:
    writer.write(json.dumps(response).encode() + b"\n")
    await writer.drain()


class Streaming:
    """What a streaming command (``trace``) returns: ``result`` is its answer, as any
    command's, then each dict ``lines`` yields goes to xmppctl as one more line. The
    stream ends when ``lines`` does or when xmppctl closes its end (or sends
    anything); then the connection closes. A slow xmppctl slows the writing here,
    so ``lines`` must not keep without bound what waits (the trace drops)."""

    def __init__(self, result: Any, lines: AsyncIterator[dict]):
        self.result = result
        self.lines = lines


async def _stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  lines: AsyncIterator[dict]) -> None:
    loop = asyncio.get_running_loop()
    gone = loop.create_task(reader.read(1))   # EOF (or anything): xmppctl is done
    nxt = None
    try:
        while True:
            nxt = loop.create_task(lines.__anext__())
            await asyncio.wait({nxt, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                break
            try:
                line = nxt.result()
            except StopAsyncIteration:
                break
            finally:
                nxt = None
            writer.write(json.dumps(line).encode() + b"\n")
            await writer.drain()
    finally:
        gone.cancel()
        if nxt is not None:
            nxt.cancel()
            try:
                await nxt
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
        await lines.aclose()


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
    return server.client_sessions()


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
        "traces": len(server.tracer.traces),
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
    closed = ctx.server.end_user_sessions(domain, user, resource,
                                          StreamError("policy-violation", reason))
    if not closed:
        raise ControlError(f"no session of {jid}")
    return {"closed": closed}


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
    try:
        await ctx.server.accounts.delete(domain, user)
    except NoSuchAccount:
        raise ControlError(f"user {user}@{domain} does not exist") from None
    return {"jid": f"{user}@{domain}", "sessions": len(sessions)}


@command("trace", read_only=True)
async def cmd_trace(ctx: Context, args: dict) -> "Streaming":
    """Follow the stanzas of an account, a resource or a remote domain, live."""
    spec = ctx.arg(args, "jid")
    count, duration = args.get("count"), args.get("duration")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ControlError("count must be a positive integer")
    if duration is not None and (not isinstance(duration, (int, float)) or isinstance(duration, bool)
                                 or duration <= 0):
        raise ControlError("duration must be a positive number of seconds")
    user, domain, resource = ctx.jid(spec)
    if user:
        ctx.virtualhost(domain)
        what = "resource" if resource else "account"
    elif resource:
        raise ControlError(f"{spec!r}: trace an account (user@domain), a resource "
                           f"(user@domain/resource) or a remote domain")
    else:
        host = ctx.server.hosts.get(domain)
        if host is not None and (host.is_virtualhost or host.component_module):
            raise ControlError(f"{domain} is served by this xmppd: trace one of its accounts "
                               f"(user@{domain}) or a remote domain")
        what = "component" if host is not None else "remote domain"
    spec = f"{user}@{domain}" if user else domain
    if resource:
        spec += f"/{resource}"
    trace = ctx.server.tracer.start(spec, user or None, domain, resource or None)
    return Streaming({"tracing": spec, "what": what, "sessions": len(trace.sessions)},
                     trace.lines(count, duration))


@command("reload")
async def cmd_reload(ctx: Context, args: dict) -> dict:
    """Certificates again from disk; configuration changes reported."""
    return await reload(ctx.server)


@command("shutdown")
async def cmd_shutdown(ctx: Context, args: dict) -> dict:
    """Stop the server (after answering)."""
    return {"stopping": True}


async def reload(server: "Server") -> dict:
    """``xmppctl reload`` and SIGHUP: the configuration files read again and applied
    to the running server (core/reload.py), certificates again from disk.

    ``{"certificates": [CertificateStore.reload() reports], "config_changes": [str],
    "applied": [str], "restart": [str], "config_error": str | None}``: every
    difference from the running configuration, what was applied, and what waits
    for a restart. A configuration with errors is not applied at all.
    """
    from ..config import ConfigError
    from .certificates import reload as reload_certificates
    out: dict[str, Any] = {"certificates": [], "config_changes": [], "applied": [],
                           "restart": [], "config_error": None}
    new = None
    try:
        new = await asyncio.to_thread(_load_again, server)
    except ConfigError as exc:
        out["config_error"] = str(exc)
    if new is not None:
        out["config_changes"] = config_changes(server.config, new)
        if out["config_changes"]:
            from .reload import apply
            report = await apply(server, new)
            out["applied"], out["restart"] = report["applied"], report["restart"]
            for line in out["applied"]:
                log.info("reload: %s", line)
            for line in out["restart"]:
                log.warning("reload: needs a restart: %s", line)
    out["certificates"] = await reload_certificates(server)
    if server.accounts is not None:   # passwords xmppctl changed in the storage
        for name in list(server.hosts):
            await server.accounts.load_hash_state(name)
    return out


def _load_again(server: "Server"):
    """The configuration as the files say now (None when there are no files), with
    the daemon's command-line overrides; checked as ``check config`` checks it, so
    a value of the wrong type is a ConfigError and nothing is applied."""
    from ..config import ConfigError
    if server.config_loader is not None:
        new = server.config_loader()
    else:
        path = getattr(server.config, "path", "")
        if not path or path.startswith("<"):
            return None
        from ..config import load_config
        new = load_config(path)
    from ..config.options import CORE_OPTIONS, OptionRegistry, check
    reg = OptionRegistry()
    for opt in server.finder.declared_options(CORE_OPTIONS):
        try:
            reg.declare(opt)
        except ValueError:
            pass
    check(new, reg, server.finder.known())
    from .limits import LimitError, parse_limits
    try:
        parse_limits(new.get("limits"))
    except LimitError as exc:
        where = new.where("limits")
        raise ConfigError(where.file if where else new.path, where.line if where else 0,
                          where.col if where else 0, f"limits: {exc}") from None
    return new


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


def _connect(path: Path, cmd: str, args: dict | None, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        raise NotRunning(str(path)) from None
    except PermissionError:
        sock.close()
        raise Denied(str(path)) from None
    except BaseException:
        sock.close()
        raise
    return sock


def _answer(path: Path, buf: bytes) -> Any:
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


def request(path: Path, cmd: str, args: dict | None = None, *, timeout: float = 120) -> Any:
    """Send one command to the running xmppd; its result, or ControlError with the
    server's message. NotRunning when nobody listens; Denied without permission."""
    sock = _connect(path, cmd, args, timeout)
    buf = b""
    try:
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
    return _answer(path, buf)


def stream(path: Path, cmd: str, args: dict | None = None, *,
           timeout: float = 120) -> tuple[Any, Iterator[dict]]:
    """Send a streaming command (``trace``): its result, and an iterator over the
    lines that follow (it ends when xmppd ends the stream; closing it, or leaving
    the process, ends the stream on xmppd's side)."""
    sock = _connect(path, cmd, args, timeout)
    f = sock.makefile("rb")
    try:
        try:
            first = f.readline()
        except socket.timeout:
            raise ControlError(f"no answer from xmppd within {timeout:g}s") from None
        except (ConnectionResetError, BrokenPipeError):
            raise ControlError("xmppd closed the control connection") from None
        result = _answer(path, first)
    except BaseException:
        f.close()
        sock.close()
        raise
    sock.settimeout(None)

    def lines() -> Iterator[dict]:
        try:
            for raw in f:
                try:
                    yield json.loads(raw)
                except ValueError:
                    raise ControlError("xmppd sent an unreadable line") from None
        except (ConnectionResetError, BrokenPipeError):
            raise ControlError("xmppd closed the control connection") from None
        finally:
            f.close()
            sock.close()
    return result, lines()

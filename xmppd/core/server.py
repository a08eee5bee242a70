"""The server: configuration, hosts, storage, certificates, listeners, lifecycle."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..net import listener
from ..xmpp.errors import StreamError
from . import events as ev
from . import modules as modmgr
from .accounts import Accounts
from .host import Host
from .items import ItemRegistry
from .limits import LimitError, Limits
from .metrics import Metrics
from .router import Router
from .storage_setup import SQLITE_TUNE, StorageConfigError, open_configured_storage  # noqa: F401
from .trace import Tracer

log = logging.getLogger("xmppd.server")

SHUTDOWN_GRACE = 5.0
"""Seconds ``stop()`` gives the work sessions hand over on their way out."""


def _task_name(task: asyncio.Task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or task.get_name()


class StartupError(Exception):
    """The server cannot start as configured. The message is one line for the admin:
    what failed, the option and where it is set, and the path."""


class Server:
    """One running xmppd. ``finder`` says where modules come from (none without
    one); protocols register their listeners as ``listener`` items before
    ``start()`` (``xmppd/app.py`` wires both)."""

    def __init__(self, config, *, storage=None, finder: modmgr.ModuleFinder | None = None):
        self.config = config
        self.events = ev.EventBus("global")
        self._items = ItemRegistry(self.events)
        self.finder = finder if finder is not None else modmgr.ModuleFinder(None)
        self.hosts: dict[str, Host] = {}
        self.router = Router(self)
        self.storage = storage
        self._own_storage = storage is None
        self.accounts: Accounts | None = None
        self.certs = None
        self.c2s_sessions: set = set()
        self.s2s = None  # the federation manager, when the s2s protocol is wired in
        self.control = None  # the control socket for xmppctl (core/control.py)
        self.tracer = Tracer(self)  # xmppctl trace (core/trace.py)
        self.listeners: dict[str, list[asyncio.AbstractServer]] = {}
        self.global_modules: dict[str, Any] = {}
        self.started_at = time.time()
        self.config_loader = None   # () -> a fresh Config, for reloads (the daemon sets it)
        self.c2s_stanza_size_limit = int(config.get("c2s_stanza_size_limit", default=262144))
        self.c2s_timeout = float(config.get("c2s_timeout", default=60))
        self._limits_error: LimitError | None = None
        try:
            self.limits = Limits(config)
        except LimitError as exc:   # reported by start() (and check config) with its place
            self._limits_error = exc
            self.limits = Limits(config, parsed={})
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self.version = __version__
        self.http = None          # the HTTP service (xmppd/http), set by its register()
        self.cert_watcher = None  # core/certificates.py: files re-read when they change
        self.metrics = Metrics(self)   # counters, gauges, storage timings (core/metrics.py)

    # -- paths and options -------------------------------------------------
    @property
    def config_dir(self) -> Path:
        d = getattr(self.config, "config_dir", None)
        return Path(d) if d else Path.cwd()

    def resolve_path(self, p: str | os.PathLike) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.config_dir / p

    @property
    def data_path(self) -> Path:
        dp = self.config.get("data_path")
        if dp is None:
            dp = "/var/lib/xmppd" if str(self.config_dir).startswith("/etc/") else "var"
        return self.resolve_path(dp)

    def c2s_require_encryption(self, host: Host) -> bool:
        v = self.config.get("c2s_require_encryption", host=host.name)
        return True if v is None else bool(v)

    def certs_for(self, hostname: str) -> bool:
        return self.certs is not None and self.certs.has_name(hostname)

    # -- items: what protocols and modules register server-wide -------------------------
    def add_item(self, kind: str, value: Any, module: str = ""):
        return self._items.add(kind, value, module)

    def remove_item(self, item) -> None:
        self._items.remove(item)

    def items(self, kind: str) -> list:
        return self._items.values(kind)

    # -- lifecycle -----------------------------------------------------------
    def where(self, option: str, host: str | None = None) -> str:
        """`` (option at file:line:col)`` for messages, or `` (option not set)``."""
        setting = self.config.where(option, host=host)
        if setting is None:
            return f" ({option} not set)"
        return f" ({option} at {setting.file}:{setting.line}:{setting.col})"

    async def start(self) -> None:
        if self._limits_error is not None:
            raise StartupError(f"limits: {self._limits_error}{self.where('limits')}")
        if self.storage is None:
            from ..storage import StorageError
            try:
                self.storage = await open_configured_storage(self.config, self.data_path)
            except StorageConfigError as exc:  # a backend xmppd lacks, PostgreSQL refusing
                raise StartupError(f"{exc}{self.where(exc.option)}") from None
            except (StorageError, OSError) as exc:
                raise StartupError(f"storage in {self.data_path}: {_reason(exc)}"
                                   f"{self.where('data_path')}") from None
        from ..storage.timed import TimedStorage
        if not isinstance(self.storage, TimedStorage):
            self.storage = TimedStorage(self.storage, self.metrics.storage_histogram)
        self.accounts = Accounts(self.storage, on_deleted=self._user_deleted,
                                 on_disabled=self._user_disabled)
        for hc in self.config.hosts.values():
            if not hc.enabled:
                continue
            self.hosts[hc.name] = Host(self, hc.name, hc)
        for name in self.hosts:
            await self.accounts.load_hash_state(name)
        self._setup_certificates()
        await self.events.notify("server-starting", self)
        for host in self.hosts.values():
            host.load_modules()
        await self.events.notify("server-started", self)
        await self._start_listeners()
        await self.events.notify("server-listening", self)
        from .certificates import CertificateWatcher
        self.cert_watcher = CertificateWatcher(
            self, float(self.config.get("certificate_check_interval", default=60)))
        self.cert_watcher.start()
        from .control import ControlPathTooLong, ControlServer, socket_path
        path = socket_path(self)
        if path is not None:  # control_socket = false: none
            control = ControlServer(self, path)
            try:
                await control.start()
                self.control = control
            except ControlPathTooLong as exc:
                # xmppctl then works on the storage only; the server itself is fine
                log.error("%s; xmppctl cannot reach this server", exc)

    async def _start_listeners(self) -> None:
        """Bind every listener a protocol registered (``listener`` items)."""
        for lst in self.items("listener"):
            if lst.when is not None and not lst.when(self):
                continue
            ports = _ports(self.config.get(lst.ports_option, default=lst.default_ports))
            if not ports:
                continue
            ifaces = None
            if lst.interfaces_option:
                ifaces = self.config.get(lst.interfaces_option)
            if not ifaces:
                ifaces = lst.default_interfaces or self.config.get("interfaces", default=["*", "::"])
            ifaces = listener.resolve_interfaces(ifaces)
            ctx = lst.ssl_context(self) if lst.ssl_context is not None else None
            for port in ports:
                try:
                    self.listeners.setdefault(lst.name, []).extend(
                        await listener.listen(lst.factory, ifaces, port, ssl_context=ctx,
                                              name=lst.name))
                except OSError as exc:
                    if lst.fatal:
                        raise StartupError(f"{exc}{self.where(lst.ports_option)}") from None
                    log.error("%s: %s", lst.name, exc)

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` in the background; ``stop()`` waits for it before
        closing storage, so nothing a session hands over on its way out is lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def ports(self, service: str = "c2s") -> list[int]:
        return listener.bound_ports(self.listeners.get(service, []))

    async def stop(self) -> None:
        """Stop listening, close every stream with system-shutdown, close storage.

        Bounded: streams get two seconds to close, work they handed over
        (offline storage, presence on the way out) gets ``SHUTDOWN_GRACE``
        seconds; what is still running then is cancelled and logged.  Each step
        is logged with its time, so a slow stop says where it spent it."""
        if self._stopping:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        log.info("stopping: %d client streams, %d background tasks",
                 len(self.c2s_sessions), len(self._tasks))
        if self.control is not None:
            await self.control.close()
        if self.cert_watcher is not None:
            await self.cert_watcher.stop()
        for servers in self.listeners.values():
            for srv in servers:
                srv.close()
        # modules say goodbye while sessions can still hear it (e.g. MUC's 332)
        await self.events.notify("server-stopping", self)
        for host in self.hosts.values():
            await host.events.notify("server-stopping", self)
        for sess in list(self.c2s_sessions):
            sess.stream_error(StreamError("system-shutdown"))
        await self.events.notify("server-closing", self)   # s2s closes its streams
        deadline = loop.time() + 2
        while self.c2s_sessions and loop.time() < deadline:
            await asyncio.sleep(0.01)
        aborted = 0
        for sess in list(self.c2s_sessions):   # peers that do not read what is left
            if sess.transport is not None:
                sess.transport.abort()
                aborted += 1
        await asyncio.sleep(0)
        # hibernating sessions end now: what they hold goes to offline storage
        for host in self.hosts.values():
            for resources in list(host.sessions.values()):
                for sess in list(resources.values()):
                    sess.end_session()
        t1 = loop.time()
        log.info("stopping: streams closed in %.1f s (%d aborted)", t1 - t0, aborted)
        deadline = loop.time() + SHUTDOWN_GRACE
        while self._tasks and loop.time() < deadline:   # tasks may spawn tasks
            await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())
        if self._tasks:
            left = list(self._tasks)
            log.warning("stopping: %d background tasks still running after %.0f s, "
                        "cancelled: %s", len(left), SHUTDOWN_GRACE,
                        ", ".join(sorted({_task_name(t) for t in left})))
            for t in left:
                t.cancel()
            await asyncio.wait(left, timeout=1)
        t2 = loop.time()
        log.info("stopping: handed-over work done in %.1f s", t2 - t1)
        for servers in self.listeners.values():
            for srv in servers:
                try:
                    await asyncio.wait_for(srv.wait_closed(), 2)
                except (asyncio.TimeoutError, Exception):
                    pass
        for host in self.hosts.values():
            for name in list(host.modules):
                host.unload_module(name)
        await self.events.notify("server-stopped", self)
        if self._own_storage and self.storage is not None:
            await self.storage.close()
        log.info("stopped in %.1f s (storage closed in %.1f s)", loop.time() - t0,
                 loop.time() - t2)

    def load_global_module(self, name: str, pymod) -> modmgr.ModuleAPI:
        api = self.global_modules.get(name)
        if api is None:
            api = modmgr.ModuleAPI(_GlobalHost(self), name, pymod)
            self.global_modules[name] = api
            pymod.setup(api)
        return api

    def client_sessions(self) -> list:
        """Every c2s session: connections (bound or not) and hibernating resources."""
        out = list(self.c2s_sessions)
        seen = set(map(id, out))
        for host in self.hosts.values():
            for resources in host.sessions.values():
                for sess in resources.values():
                    if id(sess) not in seen:
                        seen.add(id(sess))
                        out.append(sess)
        return out

    def end_user_sessions(self, domain: str, user: str, resource: str | None = None,
                          error: StreamError | None = None) -> list[str]:
        """Close the client sessions of ``user@domain`` (of one resource, if given),
        authenticated but not yet bound ones too, with ``error`` (by default
        policy-violation); a hibernating resource just ends. The JIDs closed."""
        error = error or StreamError("policy-violation", "kicked by the administrator")
        closed = []
        for sess in self.client_sessions():
            if sess.host is None or sess.host.name != domain or sess.username != user:
                continue
            if resource and sess.resource != resource:
                continue
            if sess.hibernating:
                sess.end_session()  # no connection to tell: the resource just ends
            elif not sess.closing:
                sess.stream_error(error)
            else:
                continue  # already on its way out
            closed.append(sess.full_jid or sess.bare_jid)
        return sorted(closed)

    async def _user_deleted(self, host: str, user: str) -> None:
        h = self.hosts.get(host)
        if h is not None:
            self.end_user_sessions(host, user, error=StreamError("not-authorized", "account deleted"))
            await h.events.notify("user-deleted", user)
        # for services on other hosts (a component keeping the user's files)
        await self.events.notify("account-deleted", {"host": host, "user": user})

    async def _user_disabled(self, host: str, user: str) -> None:
        """A disabled account's sessions end (as Prosody 13's mod_c2s does)."""
        h = self.hosts.get(host)
        if h is not None:
            self.end_user_sessions(host, user, error=StreamError("not-authorized", "account disabled"))
            await h.events.notify("user-disabled", user)

    # -- reload ------------------------------------------------------------------
    def apply_settings(self) -> None:
        """Read again what the server keeps from its configuration (after a reload):
        the limits (their bookkeeping stays) and the stanza size and timeout, for
        new connections."""
        self.c2s_stanza_size_limit = int(self.config.get("c2s_stanza_size_limit", default=262144))
        self.c2s_timeout = float(self.config.get("c2s_timeout", default=60))
        try:
            self.limits.update(self.config)
        except LimitError as exc:
            log.error("limits: %s%s; the previous limits stay", exc, self.where("limits"))

    async def remove_host(self, name: str) -> None:
        """Stop serving a host: its client sessions end with ``host-gone``, its
        modules are unloaded, and stanzas for it are no longer routed here."""
        from .reload import close_host_sessions
        host = self.hosts.get(name)
        if host is None:
            return
        closed = await close_host_sessions(self, name)
        await host.events.notify("host-removed", host)
        for mod in list(host.modules):
            host.unload_module(mod)
        del self.hosts[name]
        log.info("%s: no longer served (%d session(s) closed)", name, closed)

    # -- certificates ------------------------------------------------------------
    def _setup_certificates(self) -> None:
        from . import certificates
        self.certs = certificates.setup(self)

    def obtained_certificate_files(self, name: str) -> tuple[Path, Path]:
        """Where a certificate this server obtained itself (ACME) for ``name`` goes;
        served in preference to the certificates directory (core/certificates.py)."""
        from .certificates import OBTAINED_DIR
        d = self.data_path / OBTAINED_DIR
        return d / f"{name}.crt", d / f"{name}.key"

    async def reload_certificates(self) -> list[dict]:
        """Certificates again from disk, as ``xmppctl reload`` does."""
        from . import certificates
        return await certificates.reload(self)


def _reason(exc: BaseException) -> str:
    """An exception as the end of a one-line message."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.filename is None else f"{exc.filename}: {exc.strerror.lower()}"
    return str(exc)


class _GlobalHost:
    """What a global module's API sees as its host: the server's own bus."""

    def __init__(self, server: Server):
        self.server = server
        self.name = "*"
        self.kind = "global"
        self.events = server.events
        self.modules = server.global_modules
        self.sessions: dict = {}
        self.features: list = []
        self.account_features: list = []
        self.identities: list = []
        self.account_identities: list = []
        self.disco_extensions: list = []
        self.stream_features: dict = {}

    @property
    def finder(self):
        return self.server.finder

    def add_item(self, kind, value, module=""):
        return self.server.add_item(kind, value, module)

    def remove_item(self, item) -> None:
        self.server.remove_item(item)

    def items(self, kind: str) -> list:
        return self.server.items(kind)

    def provided(self, name: str):
        api = self.server.global_modules.get(name)
        return api.provided if api is not None else None

    def load_module(self, name: str):
        return self.server.load_global_module(name, self.server.finder.load(name))

    def get_option(self, name, default=None, opt=None):
        setting = self.server.config.where(name)
        if setting is None:
            return default
        if opt is not None:
            from ..config.options import coerce
            return coerce(opt, setting)
        return setting.value


def _ports(v) -> list[int]:
    if v is None:
        return []
    if isinstance(v, (int, float)):
        return [int(v)]
    if isinstance(v, dict):
        v = list(v.values())
    return [int(p) for p in v]


"""The module loader and the module contract (a module's whole surface).

A feature module is one file (or package) in the modules package that declares::

    PROTOCOLS = ["XEP-0199"]          # what it implements (docs, `xmppctl about`)
    DEPENDS = []                      # other modules it needs loaded first (hard)
    OPTIONS = [Option(...)]           # the options it reads, with type and default
    SCOPE = "host"                    # or "global": loaded once, on the server
    CLI = [CliCommand(...)]           # xmppctl sub-commands (optional)
    def setup(m: ModuleAPI) -> None   # registers everything through ``m``

Every hook, IQ handler, feature, item, store, timer and session slot goes through
``m``, so unloading a module undoes all of it. Modules meet only through this
contract, never by importing each other:

* ``m.provide(obj)`` makes ``obj`` what other modules get from ``m.depends(name)``
  (hard: the module is loaded first) or ``m.depends(name, soft=True)`` (a handle
  whose ``get()`` gives the object while that module is loaded, else None);
* ``m.add_item(kind, item)`` adds to a host's list of items of a kind (external
  services, control commands, listeners, session describers...); ``m.items(kind)``
  reads it and ``m.handle_items(kind, added, removed)`` follows it;
* ``m.hook_iq(..., own_account=True)`` serves the account's own JID only;
* ``m.session_slot(name)`` is per-session state owned by the module.

The core names no module: the package modules come from, the module-name aliases
and the default set are given by the caller (``xmppd/app.py``).
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..xmpp import stanza as st
from ..xmpp.errors import StanzaError
from . import events as ev

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger("xmppd.modules")


class ModuleError(Exception):
    """A module cannot be loaded as configured (the message says why)."""


class ModuleFinder:
    """Where modules come from: one Python package, plus a table of other names
    (Prosody's) that mean one of them, plus names the core itself stands for."""

    def __init__(self, package: str | None, *, aliases: dict[str, str] | None = None,
                 builtin: frozenset[str] = frozenset(), autoload: tuple[str, ...] = (),
                 default_modules: tuple[str, ...] = (), component_inherited: tuple[str, ...] = (),
                 enabled_by_option: dict[str, str] | None = None):
        self.package = package
        # option -> module: setting the option (to anything but false) loads the module
        self.enabled_by_option = dict(enabled_by_option or {})
        self.default_modules = tuple(default_modules)
        self.aliases = dict(aliases or {})
        self.builtin = frozenset(builtin)
        self.autoload = tuple(autoload)
        self.component_inherited = tuple(component_inherited)
        self._available: tuple | None = None

    def available(self) -> list[str]:
        """Module names (the package's submodules without a leading underscore)."""
        if self.package is None:
            return []
        path = tuple(importlib.import_module(self.package).__path__)
        if self._available is None or self._available[0] != path:
            self._available = (path, frozenset(m.name for m in pkgutil.iter_modules(path)
                                               if not m.name.startswith("_")))
        return sorted(self._available[1])

    def __contains__(self, name: str) -> bool:
        return name in self.available()

    def known(self) -> set[str]:
        """Every name ``modules_enabled`` may hold without a warning."""
        return set(self.available()) | set(self.aliases) | set(self.builtin)

    def resolve(self, name: str) -> str:
        """The module a configured name loads (an alias gives its target)."""
        return self.aliases.get(name, name)

    def load(self, name: str):
        return importlib.import_module(f"{self.package}.{name}")

    def declared_options(self, core: list) -> list:
        """Every option declared by the core and by every module (``check config``)."""
        opts = list(core)
        for name in self.available():
            try:
                opts.extend(getattr(self.load(name), "OPTIONS", ()))
            except Exception:  # pragma: no cover - a broken module is reported at load
                log.exception("module %s failed to import", name)
        return opts

    def cli_commands(self) -> list:
        """The xmppctl commands modules declare (their ``CLI`` lists)."""
        out = []
        for name in self.available():
            try:
                out.extend(getattr(self.load(name), "CLI", ()))
            except Exception:  # pragma: no cover
                log.exception("module %s failed to import", name)
        return out


# -- what handlers receive ------------------------------------------------------------

class IQEvent:
    """What an IQ handler receives. ``user`` is the addressed account's localpart
    (for IQs to a bare JID, or with no 'to'); ``session`` the sender's client
    session when it is one of this server's clients."""
    __slots__ = ("stanza", "origin", "host", "payload", "to_node", "to_resource", "from_jid",
                 "from_bare")

    def __init__(self, sev, payload):
        self.stanza = sev.stanza
        self.origin = sev.origin
        self.host = sev.host
        self.payload = payload
        self.to_node = sev.to_node
        self.to_resource = sev.to_resource
        self.from_jid = sev.from_jid
        self.from_bare = sev.from_bare

    @property
    def user(self) -> str:
        return self.to_node

    @property
    def session(self):
        o = self.origin
        return o if getattr(o, "kind", None) == "c2s" else None

    @property
    def own(self) -> bool:
        """From the addressed account itself, over one of this host's client sessions."""
        o = self.origin
        return (getattr(o, "kind", None) == "c2s" and o.host is self.host and bool(self.to_node)
                and o.username == self.to_node)


@dataclass
class Item:
    """One registration in a host's item list (kept so unload can remove it)."""
    kind: str
    value: Any
    module: str


@dataclass
class ControlCommand:
    """A command of the control socket (``xmppctl`` on the running server).
    ``func(ctx, args)`` returns a JSON-able result or raises ``ctx.Error``."""
    name: str
    func: Callable
    read_only: bool = False
    doc: str = ""


@dataclass
class CliCommand:
    """An ``xmppctl`` sub-command a module declares in its ``CLI`` list.
    ``register(subparsers, common_parser)`` adds the argparse parser; the function it
    sets as ``func`` is called as ``func(args, ctx)`` with the xmppctl context (the
    configuration, storage, the running server) and raises ``ctx.Error``."""
    name: str
    register: Callable
    doc: str = ""


@dataclass
class Listener:
    """A listening socket a protocol asks for: the ports come from the option
    ``ports_option`` (default ``default_ports``), the addresses from
    ``interfaces_option`` then ``interfaces``. ``factory()`` makes the protocol
    object of a connection; ``ssl_context()`` (when given) makes TLS start at once.
    ``when(server)`` false skips it."""
    name: str
    factory: Callable
    ports_option: str
    default_ports: list = field(default_factory=list)
    interfaces_option: str | None = None
    default_interfaces: list | None = None
    ssl_context: Callable | None = None
    when: Callable | None = None
    fatal: bool = True        # a port that cannot be bound stops the start


@dataclass
class HttpRoute:
    """An HTTP endpoint a module serves on its host (Prosody's ``module:provides("http")``):
    ``handler(request)`` answers requests under ``path`` (``http_paths`` may move it,
    by ``name``). The request is an ``xmppd.http.Request``; the answer an aiohttp
    response. ``alt_connection``: the XEP-0156 link relation it is announced under
    in ``/.well-known/host-meta`` (None: not announced)."""
    name: str
    path: str
    handler: Callable
    alt_connection: str | None = None


@dataclass
class AdhocCommand:
    """An ad-hoc command a module offers on its host (``m.add_item("adhoc",
    AdhocCommand(node, name, handler))``), served by the ``adhoc`` module
    (XEP-0050): listed to those who may run it, run by ``handler(request)``
    (a ``xmppd.xmpp.commands.Request``), which returns a ``commands.Reply`` or raises
    ``StanzaError``; it may be a coroutine function. ``admin_only``: only the host's
    administrators (the ``admins`` option) see and run it."""
    node: str
    name: str
    handler: Callable
    admin_only: bool = True


@dataclass
class InlineFeature:
    """Something a client asks for inside its authentication request, so that it
    needs no round trip of its own (``m.add_item("inline-feature", ...)``).

    ``stage`` says where: ``"auth"``, a child of the authentication request
    itself, handled once the client is authenticated and before a resource is
    bound (``advertise(session)`` gives the element announced with the
    authentication feature); ``"bind"``, a child of the binding request made
    there, handled once the resource is bound (announced by ``namespace``);
    ``"bound"``, nothing the client asks for: called at every such binding.
    ``handle(session, element)`` (``element`` None for ``"bound"``; it may be a
    coroutine function) returns None, an element for the answer, or
    ``(element, after)``: ``after()`` runs once the answer is sent."""
    namespace: str
    stage: str
    handle: Callable
    advertise: Callable | None = None


@dataclass
class SaslMechanism:
    """A SASL mechanism a module adds (``m.add_item("sasl-mechanism", ...)``),
    offered in the extensible profile only and done in one round trip:
    ``offered(session)`` says whether this stream may use it;
    ``await authenticate(session, data, request)`` gets the decoded initial
    response and the whole request element, and returns ``(username,
    additional_data)`` or raises ``SASLFailure``."""
    name: str
    authenticate: Callable
    offered: Callable | None = None


class SoftDependency:
    """A module this one uses when it is loaded: ``get()`` gives what it provides
    (or None while it is not loaded)."""
    __slots__ = ("host", "name")

    def __init__(self, host, name: str):
        self.host = host
        self.name = name

    def get(self):
        return self.host.provided(self.name)

    @property
    def loaded(self) -> bool:
        return self.name in self.host.modules

    def __bool__(self) -> bool:
        return self.loaded


class SessionSlot:
    """Per-session state owned by one module (``session.state[key]``)."""
    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def get(self, session, default=None):
        return session.state.get(self.key, default)

    def set(self, session, value) -> None:
        session.state[self.key] = value

    def pop(self, session, default=None):
        return session.state.pop(self.key, default)

    def has(self, session) -> bool:
        return self.key in session.state


# -- the module API -------------------------------------------------------------------

class ModuleAPI:
    """A module's handle on its host; tracks every registration for unload."""

    def __init__(self, host: "Host", name: str, pymod):
        self.host = host
        self.server = host.server
        self.name = name
        self.pymod = pymod
        self.log = logging.getLogger(f"xmppd.mod.{name}")
        self.provided: Any = None
        self._undo: list[Callable[[], None]] = []
        self._options = {o.name: o for o in getattr(pymod, "OPTIONS", ())}

    # -- events -------------------------------------------------------------
    def hook(self, name: str, func: Callable, priority: int = ev.NORMAL) -> None:
        self._undo.append(self.host.events.hook(name, func, priority))

    def hook_global(self, name: str, func: Callable, priority: int = ev.NORMAL) -> None:
        self._undo.append(self.server.events.hook(name, func, priority))

    def hook_iq(self, iq_type: str, xmlns: str, name: str, func: Callable,
                to: tuple[str, ...] = ("host",), priority: int = ev.NORMAL, *,
                own_account: bool | str = False) -> None:
        """Handle ``<iq type=iq_type><name xmlns=xmlns/></iq>`` sent to ``to`` kinds
        (``host``, ``bare``).

        ``func(event)`` returns the payload of the result (an Element), None for an
        empty result, a whole ``<iq/>`` element, or ``HANDLED`` when it answers
        itself; or raises StanzaError. ``own_account``: the request must come from
        the addressed account over one of this host's client sessions, else the
        error ``forbidden`` (or the condition given instead of True).
        """
        condition = own_account if isinstance(own_account, str) else "forbidden"
        host = self.host

        async def handler(sev):
            ie = IQEvent(sev, sev.payload)
            if own_account and not ie.own:
                raise StanzaError(condition, "only the account itself may do this")
            reply = func(ie)
            if asyncio.iscoroutine(reply):
                reply = await reply
            if reply is ev.HANDLED:
                return ev.HANDLED  # the handler sent (or will send) the reply itself
            if reply is not None and st.kind_of(reply) == "iq":
                out = reply
            else:
                out = st.iq_result(sev.stanza, reply)
            await host.server.router.route(out, host)
            return ev.HANDLED
        for to_type in to:
            self.hook(ev.iq_event(iq_type, to_type, xmlns, name), handler, priority)

    # -- the contract between modules -----------------------------------------
    def provide(self, obj: Any) -> None:
        """What ``depends(<this module>)`` gives other modules."""
        self.provided = obj

    def depends(self, name: str, *, soft: bool = False):
        """Hard: load ``name`` first (same host) and return what it provides.
        Soft: a :class:`SoftDependency` whose ``get()`` returns it while loaded."""
        if soft:
            return SoftDependency(self.host, self.host.finder.resolve(name))
        api = self.host.load_module(name)
        if api is None:
            raise ModuleError(f"module {self.name} needs module {name}, which is not available")
        return api.provided

    def add_item(self, kind: str, value: Any) -> None:
        """Add to this host's items of ``kind`` (a global module: the server's)."""
        item = self.host.add_item(kind, value, self.name)
        self._undo.append(lambda: self.host.remove_item(item))

    def items(self, kind: str) -> list:
        """The items of ``kind`` on this host and on the server."""
        return self.host.items(kind)

    def handle_items(self, kind: str, added: Callable | None = None,
                     removed: Callable | None = None) -> None:
        """Follow the items of ``kind``: ``added(value)`` for those already there
        and each new one, ``removed(value)`` for each that goes."""
        if added is not None:
            for value in self.items(kind):
                added(value)
            self.hook(ev.item_event("added", kind), added)
            if self.host.events is not self.server.events:
                self.hook_global(ev.item_event("added", kind), added)
        if removed is not None:
            self.hook(ev.item_event("removed", kind), removed)
            if self.host.events is not self.server.events:
                self.hook_global(ev.item_event("removed", kind), removed)

    def add_control_command(self, name: str, func: Callable, *, read_only: bool = False,
                            doc: str = "") -> None:
        """A command of the control socket (server-wide; the same name registered by
        several hosts' instances is one command)."""
        item = self.server.add_item("control-command", ControlCommand(name, func, read_only, doc),
                                    self.name)
        self._undo.append(lambda: self.server.remove_item(item))

    def describe_session(self, func: Callable) -> None:
        """``func(session) -> dict | None``: what this module adds to the control
        socket's description of a client session (``xmppctl c2s``)."""
        self.add_item("session-describer", func)

    def session_slot(self, name: str | None = None) -> SessionSlot:
        """Per-session state of this module; emptied on every session at unload."""
        slot = SessionSlot(f"{self.name}.{name}" if name else self.name)
        self.keeps_session_state = True     # a reload would lose it (core/reload.py)

        def clear():
            for resources in list(getattr(self.host, "sessions", {}).values()):
                for sess in list(resources.values()):
                    slot.pop(sess)
        self._undo.append(clear)
        return slot

    # -- features -----------------------------------------------------------
    def add_feature(self, var: str, *, to: str = "host") -> None:
        """A disco#info feature of the server (``to="host"``) or of accounts (``"account"``)."""
        reg = self.host.features if to == "host" else self.host.account_features
        reg.append(var)
        self._undo.append(lambda: reg.remove(var))

    def add_identity(self, category: str, type_: str, name: str | None = None, *, to: str = "host") -> None:
        reg = self.host.identities if to == "host" else self.host.account_identities
        item = (category, type_, name)
        reg.append(item)
        self._undo.append(lambda: reg.remove(item))

    def add_extension(self, form: ET.Element) -> None:
        """A data form (XEP-0128) added to the host's disco#info."""
        self.host.disco_extensions.append(form)
        self._undo.append(lambda: self.host.disco_extensions.remove(form))

    def add_stream_feature(self, func: Callable, stage: str = "bound") -> None:
        """``func(session) -> Element | None`` adds a stream feature at ``stage``
        (``"pre-auth"`` before SASL, ``"bound"`` after authentication, ``"s2s"`` on
        incoming server streams)."""
        reg = self.host.stream_features.setdefault(stage, [])
        reg.append(func)
        self._undo.append(lambda: reg.remove(func))

    # -- options, storage, timers ------------------------------------------
    def get_option(self, name: str, default: Any = None) -> Any:
        opt = self._options.get(name)
        return self.host.get_option(name, opt.default if opt and default is None else default, opt)

    def option_error(self, name: str, message: str) -> Exception:
        """A configuration error about option ``name``, at its file:line:col."""
        from ..config.lexer import ConfigError
        setting = self.server.config.where(name, host=getattr(self.host, "config", None) and self.host.name)
        if setting is not None:
            return ConfigError(setting.file, setting.line, setting.col, f"{name}: {message}")
        return ConfigError("<config>", 0, 0, f"{name}: {message}")

    def open_store(self, name: str, kind: str = "keyval"):
        storage = self.server.storage
        if kind == "keyval":
            return storage.keyval(self.host.name, name)
        if kind == "map":
            return storage.map(self.host.name, name)
        if kind == "archive":
            return storage.archive(self.host.name, name)
        raise ValueError(f"unknown store kind {kind!r}")

    def add_timer(self, delay: float, func: Callable, *, repeat: bool = False) -> None:
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {}

        def fire():
            try:
                r = func()
                if asyncio.iscoroutine(r):
                    loop.create_task(r)
            except Exception:
                self.log.exception("timer failed")
            if repeat:
                state["h"] = loop.call_later(delay, fire)
        state["h"] = loop.call_later(delay, fire)
        self._undo.append(lambda: state["h"].cancel())

    def on_unload(self, func: Callable[[], None]) -> None:
        """Run ``func()`` when the module is unloaded (cancel timers, close tasks)."""
        self._undo.append(func)

    async def send(self, stanza: ET.Element) -> None:
        await self.server.router.route(stanza, self.host)

    def unload(self) -> None:
        while self._undo:
            try:
                self._undo.pop()()
            except Exception:
                self.log.exception("unload step failed")

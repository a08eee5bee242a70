"""Hosts: a VirtualHost (accounts, sessions, a roster service) or a Component."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import modules as modmgr
from .items import ItemRegistry

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("xmppd.host")


class Host:
    """One domain served here. Sessions are keyed by normalised node and resource."""

    def __init__(self, server: "Server", name: str, hostcfg):
        self.server = server
        self.name = name
        self.config = hostcfg
        self.kind = hostcfg.kind if hostcfg is not None else "virtualhost"
        self.component_module = getattr(hostcfg, "component_module", None)
        self.events = ev.EventBus(name)
        self.modules: dict[str, modmgr.ModuleAPI] = {}
        # user -> resource -> session (client sessions: protocol/c2s.py)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.features: list[str] = []
        self.account_features: list[str] = []
        self.identities: list[tuple[str, str, str | None]] = []
        self.account_identities: list[tuple[str, str, str | None]] = []
        self.disco_extensions: list[ET.Element] = []
        self.stream_features: dict[str, list] = {}
        self._items = ItemRegistry(self.events)
        self.roster = None
        if self.is_virtualhost:
            from .roster import RosterService
            self.roster = RosterService(self)

    @property
    def is_virtualhost(self) -> bool:
        return self.kind == "virtualhost"

    @property
    def finder(self) -> modmgr.ModuleFinder:
        return self.server.finder

    # -- options -----------------------------------------------------------
    def get_option(self, name: str, default: Any = None, opt=None) -> Any:
        cfg = self.server.config
        setting = cfg.where(name, host=self.name)
        if setting is None:
            return default
        if opt is not None:
            from ..config.options import coerce
            return coerce(opt, setting)
        return setting.value

    def is_admin(self, jid: str | None) -> bool:
        """Whether ``jid`` (full or bare) is an administrator of this host: listed in
        the global ``admins`` or in this host's own, or made one by a module (an
        ``admin-check`` item: ``func(bare_jid) -> bool``, e.g. an account registered
        with an administrator's invitation)."""
        from ..xmpp.jid import bare
        b = bare(jid)
        if not b or "@" not in b:
            return False
        cfg = self.server.config
        for listed in (cfg.get("admins"), cfg.get("admins", host=self.name)):
            for a in listed or ():
                if isinstance(a, str) and bare(a) == b:
                    return True
        return any(check(b) for check in self._items.values("admin-check"))

    # -- items (the module contract) ---------------------------------------------
    def add_item(self, kind: str, value: Any, module: str = "") -> modmgr.Item:
        return self._items.add(kind, value, module)

    def remove_item(self, item: modmgr.Item) -> None:
        self._items.remove(item)

    def items(self, kind: str) -> list:
        """This host's items of ``kind``, then the server's."""
        return self._items.values(kind) + self.server.items(kind)

    def provided(self, name: str) -> Any:
        """What module ``name`` provides on this host (None when not loaded)."""
        api = self.modules.get(self.finder.resolve(name))
        return api.provided if api is not None else None

    # -- modules -----------------------------------------------------------
    def wanted_modules(self) -> list[str]:
        cfg = self.server.config
        finder = self.finder
        default = cfg.get("modules_enabled")
        if self.kind == "component":
            # a component federates under its own name: it inherits the global
            # modules that authenticate s2s streams (as Prosody's components do),
            # and loads what its own section lists
            enabled = finder.default_modules if default is None else default
            disabled = set(cfg.get("modules_disabled") or ())
            names = [self.component_module or "component",
                     *(n for n in finder.component_inherited if n in enabled and n not in disabled)]
            own = cfg.where("modules_enabled", host=self.name)
            if own is not None and own is not cfg.where("modules_enabled") and isinstance(own.value, list):
                names.extend(n for n in own.value if isinstance(n, str))
            return _unique(finder.resolve(n) for n in names)
        enabled = cfg.get("modules_enabled", host=self.name)
        if enabled is None:
            enabled = list(finder.default_modules)
        disabled = {finder.resolve(n) for n in cfg.get("modules_disabled", host=self.name) or ()}
        names = list(finder.autoload)
        names += [mod for opt, mod in finder.enabled_by_option.items()
                  if cfg.get(opt, host=self.name) not in (None, False)]
        for n in enabled:
            n = finder.resolve(n)
            if n not in disabled:
                names.append(n)
        return _unique(names)

    def load_modules(self) -> None:
        for name in self.wanted_modules():
            self.load_module(name)

    def load_module(self, name: str) -> modmgr.ModuleAPI | None:
        """Load ``name`` (an alias loads its target); the module's API, or None when
        there is no such module (the core's own names included)."""
        name = self.finder.resolve(name)
        if name in self.modules:
            return self.modules[name]
        if name not in self.finder.available():
            if name not in self.finder.builtin:
                log.debug("%s: module %s is not available in xmppd; ignored", self.name, name)
            return None
        pymod = self.finder.load(name)
        if getattr(pymod, "SCOPE", "host") == "global":
            return self.server.load_global_module(name, pymod)
        for dep in getattr(pymod, "DEPENDS", ()):
            self.load_module(dep)
        api = modmgr.ModuleAPI(self, name, pymod)
        self.modules[name] = api
        try:
            pymod.setup(api)
        except Exception:
            api.unload()
            del self.modules[name]
            raise
        log.debug("%s: loaded module %s", self.name, name)
        return api

    def unload_module(self, name: str) -> None:
        api = self.modules.pop(name, None)
        if api is not None:
            teardown = getattr(api.pymod, "teardown", None)
            if teardown:
                teardown(api)
            api.unload()

    # -- sessions ----------------------------------------------------------
    def sessions_of(self, user: str) -> dict[str, Any]:
        return self.sessions.get(user) or {}

    def get_session(self, user: str, resource: str):
        res = self.sessions.get(user)
        return res.get(resource) if res else None

    def add_session(self, session) -> None:
        self.sessions.setdefault(session.username, {})[session.resource] = session

    def remove_session(self, session) -> None:
        res = self.sessions.get(session.username)
        if res and res.get(session.resource) is session:
            del res[session.resource]
            if not res:
                del self.sessions[session.username]

    def available_sessions(self, user: str) -> list:
        """The user's resources that sent available presence (RFC 6121 §4.2)."""
        return [s for s in self.sessions_of(user).values() if s.available and not s.closed]

    def deliverable_sessions(self, user: str) -> list:
        """Where a message to the bare JID goes (RFC 6121 §8.5.2.1.1): the available
        resources with the highest non-negative priority."""
        best = None
        out = []
        for sess in self.sessions_of(user).values():
            if not sess.available or sess.priority < 0:
                continue
            if best is None or sess.priority > best:
                best = sess.priority
                out = [sess]
            elif sess.priority == best:
                out.append(sess)
        return out

    def __repr__(self) -> str:
        return f"<Host {self.name} ({self.kind})>"


def _unique(names) -> list[str]:
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out

"""Hosts: a VirtualHost (accounts, sessions) or an internal Component (one module)."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import modules as modmgr

if TYPE_CHECKING:
    from .server import Server
    from .session import C2SSession

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
        # user -> resource -> session
        self.sessions: dict[str, dict[str, "C2SSession"]] = {}
        self.features: list[str] = []
        self.account_features: list[str] = []
        self.identities: list[tuple[str, str, str | None]] = []
        self.account_identities: list[tuple[str, str, str | None]] = []
        self.disco_extensions: list[ET.Element] = []
        self.stream_features: dict[str, list] = {}
        # host-wide state owned by modules and protocols (e.g. a component's connection)
        self.state: dict[str, object] = {}

    @property
    def is_virtualhost(self) -> bool:
        return self.kind == "virtualhost"

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

    # -- modules -----------------------------------------------------------
    def wanted_modules(self) -> list[str]:
        cfg = self.server.config
        if self.kind == "component":
            # a component federates under its own name: it inherits the global
            # modules that authenticate s2s streams (as Prosody's components do)
            enabled = cfg.get("modules_enabled")
            enabled = modmgr.DEFAULT_ENABLED if enabled is None else enabled
            disabled = set(cfg.get("modules_disabled") or ())
            return [self.component_module or "component",
                    *(n for n in modmgr.COMPONENT_INHERITED if n in enabled and n not in disabled)]
        enabled = cfg.get("modules_enabled", host=self.name)
        if enabled is None:
            enabled = list(modmgr.DEFAULT_ENABLED)
        disabled = set(cfg.get("modules_disabled", host=self.name) or ())
        names = list(modmgr.AUTOLOAD)
        for n in enabled:
            if n not in names and n not in disabled:
                names.append(n)
        return names

    def load_modules(self) -> None:
        available = set(modmgr.available_modules())
        for name in self.wanted_modules():
            self.load_module(name, available)

    def load_module(self, name: str, available: set[str] | None = None) -> None:
        if name in self.modules:
            return
        available = available or set(modmgr.available_modules())
        if name not in available:
            if name not in modmgr.BUILTIN:
                log.debug("%s: module %s is not available in xmppd; ignored", self.name, name)
            return
        pymod = modmgr.import_module(name)
        if getattr(pymod, "SCOPE", "host") == "global":
            self.server.load_global_module(name, pymod)
            return
        for dep in getattr(pymod, "DEPENDS", ()):
            self.load_module(dep, available)
        api = modmgr.ModuleAPI(self, name, pymod)
        self.modules[name] = api
        try:
            pymod.setup(api)
        except Exception:
            api.unload()
            del self.modules[name]
            raise
        log.debug("%s: loaded module %s", self.name, name)

    def unload_module(self, name: str) -> None:
        api = self.modules.pop(name, None)
        if api is not None:
            teardown = getattr(api.pymod, "teardown", None)
            if teardown:
                teardown(api)
            api.unload()

    # -- sessions ----------------------------------------------------------
    def sessions_of(self, user: str) -> dict[str, "C2SSession"]:
        return self.sessions.get(user) or {}

    def get_session(self, user: str, resource: str) -> "C2SSession | None":
        res = self.sessions.get(user)
        return res.get(resource) if res else None

    def add_session(self, session: "C2SSession") -> None:
        self.sessions.setdefault(session.username, {})[session.resource] = session

    def remove_session(self, session: "C2SSession") -> None:
        res = self.sessions.get(session.username)
        if res and res.get(session.resource) is session:
            del res[session.resource]
            if not res:
                del self.sessions[session.username]

    def __repr__(self) -> str:
        return f"<Host {self.name} ({self.kind})>"

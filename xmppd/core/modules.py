"""The module loader and the module API (a module's whole surface).

A feature module is one file in ``xmppd/modules/`` that declares::

    PROTOCOLS = ["XEP-0199"]          # what it implements (docs, `xmppctl about`)
    DEPENDS = []                      # other modules it needs loaded first
    OPTIONS = [Option(...)]           # the options it reads, with type and default
    SCOPE = "host"                    # or "global": loaded once, on the server
    def setup(m: ModuleAPI) -> None   # registers everything through ``m``

Every hook, IQ handler, feature, store and timer goes through ``m``, so
unloading a module undoes all of it.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any, Callable

from ..config.options import DEFAULT_MODULES
from . import events as ev
from . import stanza as st

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger("xmppd.modules")

# Modules every host loads, whatever modules_enabled says: the RFC 6120/6121 core.
AUTOLOAD = ("message", "presence")
# Loaded when modules_enabled is not set at all.
DEFAULT_ENABLED = DEFAULT_MODULES   # declared with the option, in config/options.py
# Global modules a Component loads too (s2s authentication under the component's name).
COMPONENT_INHERITED = ("dialback", "s2s_bidi")
# Prosody module names whose job is done by xmppd's core: accepted silently.
BUILTIN = frozenset({
    "saslauth", "tls", "c2s", "posix", "auth_internal_hashed", "auth_internal_plain",
    "storage_internal", "storage_sql", "iq", "message", "presence", "bind", "session",
})


def available_modules() -> list[str]:
    import xmppd.modules as pkg
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def import_module(name: str):
    return importlib.import_module(f"xmppd.modules.{name}")


def all_declared_options() -> list:
    """Every option declared by the core and by every module (for `check config`)."""
    from ..config.options import CORE_OPTIONS
    opts = list(CORE_OPTIONS)
    for name in available_modules():
        try:
            opts.extend(getattr(import_module(name), "OPTIONS", ()))
        except Exception:  # pragma: no cover - a broken module is reported at load
            log.exception("module %s failed to import", name)
    return opts


class IQEvent:
    """What an IQ handler receives."""
    __slots__ = ("stanza", "origin", "host", "payload", "to_node", "to_resource", "from_jid", "from_bare")

    def __init__(self, sev, payload):
        self.stanza = sev.stanza
        self.origin = sev.origin
        self.host = sev.host
        self.payload = payload
        self.to_node = sev.to_node
        self.to_resource = sev.to_resource
        self.from_jid = sev.from_jid
        self.from_bare = sev.from_bare


class ModuleAPI:
    """A module's handle on its host; tracks every registration for unload."""

    def __init__(self, host: "Host", name: str, pymod):
        self.host = host
        self.server = host.server
        self.name = name
        self.pymod = pymod
        self.log = logging.getLogger(f"xmppd.mod.{name}")
        self._undo: list[Callable[[], None]] = []
        self._options = {o.name: o for o in getattr(pymod, "OPTIONS", ())}

    # -- events -------------------------------------------------------------
    def hook(self, name: str, func: Callable, priority: int = ev.NORMAL) -> None:
        self._undo.append(self.host.events.hook(name, func, priority))

    def hook_global(self, name: str, func: Callable, priority: int = ev.NORMAL) -> None:
        self._undo.append(self.server.events.hook(name, func, priority))

    def hook_iq(self, iq_type: str, xmlns: str, name: str, func: Callable,
                to: tuple[str, ...] = ("host",), priority: int = ev.NORMAL) -> None:
        """Handle ``<iq type=iq_type><name xmlns=xmlns/></iq>`` sent to ``to`` kinds.

        ``func(event)`` returns the payload of the result (an Element), None for an
        empty result, or a whole ``<iq/>`` element; or raises StanzaError.
        """
        async def handler(sev):
            ie = IQEvent(sev, sev.payload)
            reply = func(ie)
            if asyncio.iscoroutine(reply):
                reply = await reply
            if reply is ev.HANDLED:
                return ev.HANDLED  # the handler sent (or will send) the reply itself
            if reply is not None and st.kind_of(reply) == "iq":
                out = reply
            else:
                out = st.iq_result(sev.stanza, reply)
            await self.host.server.router.route(out, self.host)
            return ev.HANDLED
        for to_type in to:
            self.hook(ev.iq_event(iq_type, to_type, xmlns, name), handler, priority)

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
        (``"pre-auth"`` before SASL, ``"bound"`` after authentication)."""
        reg = self.host.stream_features.setdefault(stage, [])
        reg.append(func)
        self._undo.append(lambda: reg.remove(func))

    # -- options, storage, timers ------------------------------------------
    def get_option(self, name: str, default: Any = None) -> Any:
        opt = self._options.get(name)
        return self.host.get_option(name, opt.default if opt and default is None else default, opt)

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

    async def send(self, stanza: ET.Element) -> None:
        await self.server.router.route(stanza, self.host)

    def unload(self) -> None:
        while self._undo:
            try:
                self._undo.pop()()
            except Exception:
                self.log.exception("unload step failed")


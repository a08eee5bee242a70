"""Named events with priorities, Prosody style.

``fire`` runs handlers highest priority first and stops at the first one that
returns ``HANDLED``. ``notify`` runs every handler (return values ignored).
``fold`` threads a value through every handler. A handler may be a plain
function or a coroutine function; a crashing handler is logged and contained.

Event names are built here and only here (``stanza_event``, ``iq_event``, ...), never
by string concatenation in modules.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Callable

from ..storage.api import StorageError
from ..xmpp.errors import StanzaError, XMPPError

log = logging.getLogger("xmppd.events")

HANDLED = True

# Named priorities. Higher runs first.
FIRST = 1000
EARLY = 100
NORMAL = 0
LATE = -100
LAST = -1000


def stanza_event(kind: str, to_type: str, *, pre: bool = False) -> str:
    """``message/bare``, ``presence/full``, ``iq/host``; ``pre-`` variants run first."""
    return f"pre-{kind}/{to_type}" if pre else f"{kind}/{to_type}"


def element_event(xmlns: str, name: str, *, bound: bool = True) -> str:
    """A top-level stream element that is not a stanza (e.g. ``urn:xmpp:sm:3:r``)."""
    return f"stream-element/{xmlns}:{name}" if bound else f"stream-element-unbound/{xmlns}:{name}"


def iq_event(iq_type: str, to_type: str, xmlns: str, name: str) -> str:
    """``iq-get/host/urn:xmpp:ping:ping``: one event per IQ payload."""
    return f"iq-{iq_type}/{to_type}/{xmlns}:{name}"


def item_event(action: str, kind: str) -> str:
    """``item-added/external-service``: an item of ``kind`` was added or removed."""
    return f"item-{action}/{kind}"


def s2s_element_event(direction: str, xmlns: str, name: str) -> str:
    """``s2s-in-element/jabber:server:dialback:result``: a non-stanza element on an
    incoming (``in``) or outgoing (``out``) server-to-server stream."""
    return f"s2s-{direction}-element/{xmlns}:{name}"


class _Handler:
    __slots__ = ("func", "priority", "seq", "is_async")

    def __init__(self, func, priority, seq):
        self.func = func
        self.priority = priority
        self.seq = seq
        self.is_async = inspect.iscoroutinefunction(func)


class EventBus:
    """One bus per host, plus one global bus on the server."""

    def __init__(self, name: str = "global"):
        self.name = name
        self._handlers: dict[str, list[_Handler]] = {}
        self._seq = 0

    def hook(self, name: str, func: Callable, priority: int = NORMAL) -> Callable[[], None]:
        """Register ``func`` for ``name``; returns a function that unhooks it."""
        self._seq += 1
        h = _Handler(func, priority, self._seq)
        lst = self._handlers.setdefault(name, [])
        lst.append(h)
        # highest priority first; equal priorities in registration order
        lst.sort(key=lambda x: (-x.priority, x.seq))

        def unhook() -> None:
            cur = self._handlers.get(name)
            if cur and h in cur:
                cur.remove(h)
                if not cur:
                    del self._handlers[name]
        return unhook

    def has(self, name: str) -> bool:
        return name in self._handlers

    async def fire(self, name: str, event: Any) -> bool:
        """Run handlers until one returns HANDLED; True if one did."""
        handlers = self._handlers.get(name)
        if not handlers:
            return False
        for h in tuple(handlers):
            try:
                r = h.func(event)
                if r is HANDLED:
                    return True
                if r is not None and (h.is_async or inspect.isawaitable(r)):
                    r = await r
            except XMPPError:
                raise  # a stanza or stream error is an answer, not a crash
            except StorageError as exc:
                # the database is gone or full: nothing was stored, and the sender is
                # told so (never acknowledged, then dropped); the details are for the log
                log.error("%s: handler %r for %s: storage failed: %s", self.name, h.func,
                          name, exc)
                raise StanzaError("internal-server-error", STORAGE_FAILED, type="wait") from exc
            except Exception as exc:  # contained: one module never takes down the session
                log.exception("%s: handler %r for %s failed", self.name, h.func, name)
                raise HandlerCrashed(name) from exc
            if r is HANDLED:
                return True
        return False

    async def notify(self, name: str, event: Any) -> None:
        """Run every handler; errors are logged, never raised."""
        for h in tuple(self._handlers.get(name, ())):
            try:
                r = h.func(event)
                if h.is_async or inspect.isawaitable(r):
                    await r
            except Exception:
                log.exception("%s: handler %r for %s failed", self.name, h.func, name)

    def call(self, name: str, event: Any) -> None:
        """Run every handler now, synchronously (plain functions: a coroutine one
        would not be awaited); errors are logged, never raised."""
        for h in tuple(self._handlers.get(name, ())):
            try:
                h.func(event)
            except Exception:
                log.exception("%s: handler %r for %s failed", self.name, h.func, name)

    async def fold(self, name: str, value: Any, *args: Any) -> Any:
        """Thread ``value`` through every handler (each returns the new value)."""
        for h in tuple(self._handlers.get(name, ())):
            try:
                r = h.func(value, *args)
                if h.is_async or inspect.isawaitable(r):
                    r = await r
                value = r
            except Exception:
                log.exception("%s: fold handler %r for %s failed", self.name, h.func, name)
        return value


STORAGE_FAILED = "the server cannot store data right now; try again later"


class HandlerCrashed(Exception):
    """A handler raised something that is not an XMPP error: internal-server-error."""

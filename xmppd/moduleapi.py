"""Everything a feature module may use besides the protocol vocabulary (``xmppd.xmpp``).

A module imports from here and from ``xmppd.xmpp``, and never from another module,
the core, the protocols or the command line: what it needs of them reaches it
through ``m`` (the :class:`ModuleAPI` its ``setup(m)`` gets) or is named here::

    from xmppd.moduleapi import EARLY, HANDLED, Option, stanza_event
    from xmppd.xmpp import ns, forms
    from xmppd.xmpp.errors import StanzaError

    def setup(m):
        m.add_feature(ns.PING)
        m.hook_iq("get", ns.PING, "ping", lambda event: None)

See ``docs/architecture.md`` for the contract (provide/depends, items, session
slots, control and xmppctl commands).
"""
from __future__ import annotations

from .config.options import CORE_OPTIONS, Option, parse_period
from .core import roster
from .core.accounts import AccountError, AccountExists, NoSuchAccount
from .core.events import (EARLY, FIRST, HANDLED, LAST, LATE, NORMAL, element_event, iq_event,
                          item_event, s2s_element_event, stanza_event)
from .core.modules import (AdhocCommand, CliCommand, ControlCommand, HttpRoute, InlineFeature,
                           IQEvent, Listener, ModuleAPI, ModuleError, SaslMechanism, SessionSlot,
                           SoftDependency)
from .core.metrics import CONTENT_TYPE as OPENMETRICS_CONTENT_TYPE, MetricFamily
from .net.tls import write_private
from .storage.api import ItemNotFound, StorageError
from .stream import SharedContent, copy_of, serialize

__all__ = [
    "ModuleAPI", "IQEvent", "SessionSlot", "SoftDependency", "ModuleError", "ControlCommand",
    "CliCommand", "Listener", "HttpRoute", "AdhocCommand", "InlineFeature", "SaslMechanism", "Option", "parse_period", "core_option", "HANDLED", "FIRST", "EARLY", "NORMAL",
    "LATE", "LAST", "stanza_event", "iq_event", "element_event", "item_event",
    "s2s_element_event", "roster", "AccountError", "AccountExists", "NoSuchAccount",
    "ItemNotFound", "StorageError", "SharedContent", "copy_of", "serialize", "MetricFamily",
    "OPENMETRICS_CONTENT_TYPE", "write_private",
]

_CORE = {o.name: o for o in CORE_OPTIONS}


def core_option(name: str) -> Option:
    """The declaration of a core option (to read it typed: ``m.host.get_option(name,
    default, core_option(name))``)."""
    return _CORE[name]

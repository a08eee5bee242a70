"""Wiring: the one place where the core, the protocols and the modules meet.

``build_server(config)`` makes a :class:`~xmppd.core.server.Server` that finds its
modules in ``xmppd.modules`` (with Prosody's module names as aliases), and lets
each protocol register what it brings: client streams (c2s, and direct TLS),
external components, server-to-server federation. The daemon (``xmppd``), the
tests and the benchmarks all start servers through here.
"""
from __future__ import annotations

from .config.options import DEFAULT_MODULES
from .core.modules import ModuleFinder
from .core.server import Server

# Prosody module names whose job an xmppd module does under another name: the
# name in modules_enabled loads the module on the right.
ALIASES = {
    "register_ibr": "register",      # Prosody 0.12 split in-band registration out
    "csi_simple": "csi",             # client state indication
    "vcard_legacy": "vcard",         # vcard-temp (the vCard4 bridge is pep's job)
    "bookmarks": "pep",              # bookmarks 2 with the private-storage bridge
    "vcard4": "pep",                 # XEP-0292 profiles in PEP (and their IQs)
    "uptime": "lastactivity",        # the server's uptime through XEP-0012
    "muc_mam": "muc",                # the room archive is part of the MUC service
    "announce": "admin_adhoc",       # XEP-0133 announcements to online users
    "motd": "admin_adhoc",           # the message of the day (motd_text, XEP-0133 set-motd)
    "sasl2_fast": "fast",            # XEP-0484 tokens (prosody-modules' mod_sasl2_fast)
    "invites_groups": "invites_register",   # groups from invitations are invites_register's
}
# Prosody module names whose job is done by xmppd's core: accepted silently.
BUILTIN = frozenset({
    "saslauth", "tls", "c2s", "s2s", "posix", "auth_internal_hashed", "auth_internal_plain",
    "storage_internal", "storage_sql", "iq", "message", "presence", "bind", "session",
    "limits",                        # the limits table (core/limits.py)
    "http",                          # the HTTP service (xmppd/http), started by what uses it
    "sasl2", "sasl2_bind2", "sasl2_sm",  # prosody-modules' XEP-0388/0386: protocol/sasl2.py
})
# Modules every VirtualHost loads, whatever modules_enabled says: RFC 6120/6121.
AUTOLOAD = ("message", "presence")
# Global modules a Component loads too (s2s authentication under the component's name).
COMPONENT_INHERITED = ("dialback", "s2s_bidi")

# Options whose setting loads a module, as ejabberd's top-level `acme`.
ENABLED_BY_OPTION = {"acme": "acme"}

FINDER = ModuleFinder("xmppd.modules", aliases=ALIASES, builtin=BUILTIN, autoload=AUTOLOAD,
                      default_modules=DEFAULT_MODULES, component_inherited=COMPONENT_INHERITED,
                      enabled_by_option=ENABLED_BY_OPTION)


def build_server(config, *, storage=None) -> Server:
    """A server for ``config``, not yet started (``await server.start()``)."""
    from .http import server as http
    from .protocol import c2s, component, s2s
    server = Server(config, storage=storage, finder=FINDER)
    c2s.register(server)
    component.register(server)
    http.register(server)
    if "s2s" not in (config.get("modules_disabled") or ()):   # as in Prosody
        s2s.register(server)
    return server

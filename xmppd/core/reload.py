"""Live reload: ``xmppctl reload`` and SIGHUP apply a changed configuration to the
running server without dropping the sessions it does not concern.

What is applied at once:

- **hosts** added (their modules loaded, a certificate found or generated),
  removed or disabled (their sessions closed with ``host-gone``, modules unloaded),
  a Component whose module changed (unloaded, loaded as the new one);
- **modules** added to or removed from ``modules_enabled``/``modules_disabled``
  (per host), and modules whose own options changed (unloaded and loaded again, so
  they read them: a module that keeps live state it cannot rebuild — group-chat
  rooms (``RELOAD = "restart"``), per-session state (``m.session_slot``: stream
  management, carbons) — is reported instead);
- **options** the core reads when it uses them (``admins``, ``c2s_require_encryption``,
  ``s2s_secure_auth``...), the limits table and the stanza size and timeout limits
  for new connections, TLS settings (``ssl``, ``certificates``: the certificates are
  chosen again and loaded).

What needs a restart is reported, not applied: listening ports and addresses,
storage, ``data_path``, ``log``, ``pidfile``, ``umask``, ``control_socket``, and a
change that would start the HTTP service when it is not running.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..xmpp.errors import StreamError

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("xmppd.reload")

# core options read once, at start-up
RESTART_OPTIONS = frozenset({
    "interfaces", "c2s_interfaces", "s2s_interfaces", "component_interfaces",
    "http_interfaces", "https_interfaces", "c2s_ports", "c2s_direct_tls_ports", "s2s_ports",
    "s2s_direct_tls_ports", "component_ports", "http_ports", "https_ports",
    "data_path", "storage", "default_storage", "sql", "sqlite_tune", "control_socket",
    "log", "pidfile", "umask", "daemonize", "trusted_proxies", "modules_disabled_globally",
})


def changed_options(old, new) -> dict[str | None, set[str]]:
    """Option names whose value differs, per section (None: the global one)."""
    out: dict[str | None, set[str]] = {}

    def diff(a: dict, b: dict) -> set[str]:
        return {n for n in set(a) | set(b)
                if (a.get(n) is None) != (b.get(n) is None)
                or (a.get(n) is not None and a[n].value != b[n].value)}

    out[None] = diff(old.globals, new.globals)
    for name in set(old.hosts) | set(new.hosts):
        a, b = old.hosts.get(name), new.hosts.get(name)
        out[name] = diff(a.options if a else {}, b.options if b else {})
    return out


def _host_changes(old, new) -> tuple[list[str], list[str], list[str]]:
    """``(removed, added, kept)`` enabled host names."""
    def enabled(cfg):
        return {n: h for n, h in cfg.hosts.items() if h.enabled}
    a, b = enabled(old), enabled(new)
    removed = [n for n in a if n not in b
               or (a[n].kind, a[n].component_module) != (b[n].kind, b[n].component_module)]
    added = [n for n in b if n not in a or n in removed]
    kept = [n for n in b if n in a and n not in removed]
    return removed, added, kept


async def apply(server: "Server", new) -> dict[str, Any]:
    """Make ``new`` the running configuration. ``{"applied": [str], "restart": [str]}``,
    one line per change, for ``xmppctl reload`` and the log."""
    from .certificates import reload as reload_certificates
    from .host import Host
    old = server.config
    applied: list[str] = []
    restart: list[str] = []
    changed = changed_options(old, new)
    for name in sorted(changed[None] & RESTART_OPTIONS):
        restart.append(f"option {name} changed")
    removed, added, kept = _host_changes(old, new)

    # the new configuration is the one everything reads from now on
    server.config = new
    server.apply_settings()
    if changed[None] & {"limits", "c2s_stanza_size_limit", "c2s_timeout",
                        "c2s_max_auth_failures", "c2s_auth_ban_lifetime"}:
        applied.append("limits applied to new connections")

    for name in removed:
        desc = old.hosts[name].describe()
        await server.remove_host(name)
        applied.append(f"{desc} removed: its sessions closed, its modules unloaded")
    for name in kept:
        server.hosts[name].config = new.hosts[name]
    for name in added:
        server.hosts[name] = Host(server, name, new.hosts[name])
        await server.accounts.load_hash_state(name)

    # certificates: new hosts, and hosts whose ssl option or files changed
    for r in await reload_certificates(server):
        if r.get("error"):
            restart.append(f"certificate for {', '.join(r['names'])} not loaded: {r['error']}")
        elif r.get("changed"):
            applied.append(f"certificate for {', '.join(r['names'])}: {r['certificate']}")

    http_was_serving = server.http is not None and server.http.runner is not None
    for name in added:
        host = server.hosts[name]
        try:
            host.load_modules()
        except Exception as exc:
            log.exception("%s: loading its modules failed", name)
            restart.append(f"{host.config.describe()}: a module failed to load: {exc}")
        applied.append(f"{new.hosts[name].describe()} added, modules: "
                       f"{', '.join(sorted(host.modules)) or 'none'}")
    for name in kept:
        _reload_modules(server, server.hosts[name], changed, applied, restart)
    _reload_global_modules(server, changed[None], applied, restart)
    if server.http is not None and not http_was_serving and server.http.serving():
        restart.append("the HTTP service is needed now (a module serves HTTP): restart "
                       "xmppd to start its listeners")
    if applied or restart:
        await server.events.notify("config-reloaded", {"applied": applied, "restart": restart})
    return {"applied": applied, "restart": restart}


def _reload_modules(server, host, changed, applied: list[str], restart: list[str]) -> None:
    finder = host.finder
    wanted = [n for n in host.wanted_modules() if n in finder.available()]
    wanted_local = []
    for n in wanted:
        pymod = finder.load(n)
        if getattr(pymod, "SCOPE", "host") == "global":
            if n not in server.global_modules:
                host.load_module(n)
                applied.append(f"global module {n} loaded")
            continue
        wanted_local.append(n)
    for n in [n for n in host.modules if n not in wanted_local]:
        host.unload_module(n)
        applied.append(f"{host.name}: module {n} unloaded")
    opts = changed[None] | changed.get(host.name, set())
    for n in list(host.modules):
        pymod = host.modules[n].pymod
        own = {o.name for o in getattr(pymod, "OPTIONS", ())} & opts
        if not own:
            continue
        what = ", ".join(sorted(own))
        if getattr(pymod, "RELOAD", None) == "restart" or \
                getattr(host.modules[n], "keeps_session_state", False):
            restart.append(f"{host.name}: module {n}: option {what} changed (the module keeps "
                           f"live state a reload would lose; applied at the next restart)")
            continue
        host.unload_module(n)
        try:
            host.load_module(n)
            applied.append(f"{host.name}: module {n} reloaded for option {what}")
        except Exception as exc:
            log.exception("%s: reloading module %s failed", host.name, n)
            restart.append(f"{host.name}: module {n} failed to load with the new options: {exc}")
    for n in wanted_local:
        if n not in host.modules:
            try:
                if host.load_module(n) is not None:
                    applied.append(f"{host.name}: module {n} loaded")
            except Exception as exc:
                log.exception("%s: loading module %s failed", host.name, n)
                restart.append(f"{host.name}: module {n} failed to load: {exc}")


def _reload_global_modules(server, changed: set[str], applied: list[str], restart: list[str]) -> None:
    """Global modules (``SCOPE = "global"``): unloaded when no host wants them any
    more, reloaded when their options changed."""
    wanted = {n for h in server.hosts.values() for n in h.wanted_modules()}
    for n, api in list(server.global_modules.items()):
        own = {o.name for o in getattr(api.pymod, "OPTIONS", ())} & changed
        if n in wanted and not own:
            continue
        teardown = getattr(api.pymod, "teardown", None)
        if teardown:
            teardown(api)
        api.unload()
        del server.global_modules[n]
        if n not in wanted:
            applied.append(f"global module {n} unloaded")
            continue
        try:
            server.load_global_module(n, api.pymod)
            applied.append(f"global module {n} reloaded for option {', '.join(sorted(own))}")
        except Exception as exc:
            log.exception("reloading global module %s failed", n)
            restart.append(f"global module {n} failed to load with the new options: {exc}")


async def close_host_sessions(server: "Server", name: str) -> int:
    """Close every client session of a host that is going away (RFC 6120 host-gone)."""
    host = server.hosts.get(name)
    if host is None:
        return 0
    n = 0
    for sess in list(server.c2s_sessions):
        if getattr(sess, "host", None) is host:
            sess.stream_error(StreamError("host-gone", f"{name} is no longer served here"))
            n += 1
    return n

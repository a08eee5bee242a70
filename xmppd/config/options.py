"""Option declarations, type coercion and the ``check config`` warnings.

Options are declared by the code that reads them (the core here, each module in its
``OPTIONS``), with a type, a default, a scope and a doc string:

* scope ``"global"``: only meaningful before the first host; set inside a host it is
  reported by :func:`check` and has no effect.
* scope ``"host"`` / ``"both"``: per host, with the global value as the default
  (setting a host option globally sets it for every host, as in Prosody).

Types and what :func:`coerce` returns:

=========  ================================================================
string     ``str`` (a number is turned into its Lua text)
number     ``int`` or ``float``
integer    ``int`` (a float with an integral value is accepted)
boolean    ``bool`` (also the strings "true"/"yes"/"on"/"1" and
           "false"/"no"/"off"/"0", which ``ENV_`` values produce)
list       ``list`` (a Lua array; ``{}`` included)
set        ``set`` of the array's items
table      ``dict`` (``{}`` gives ``{}``)
path       ``str``; relative paths are resolved by ``Config.resolve_path``
ports      ``list[int]``: one port number or an array of them, 1..65535
any        the value as parsed
=========  ================================================================
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .lexer import ConfigError, ConfigWarning
from .loader import Config, HostConfig, Setting
from .parser import lua_tostring

__all__ = ["Option", "OptionRegistry", "coerce", "check", "lookup", "CORE_OPTIONS",
           "IGNORED_PROSODY_OPTIONS", "TYPES", "SCOPES", "core_registry"]

TYPES = frozenset({"string", "number", "integer", "boolean", "list", "table", "any",
                   "path", "set", "ports"})
SCOPES = frozenset({"global", "host", "both"})


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: Any = None
    scope: str = "both"
    doc: str = ""
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple | None = None
    limit: bool = False     # a limit (listed by `xmppctl check config`, docs/security.md)

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"option {self.name!r}: unknown type {self.type!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"option {self.name!r}: unknown scope {self.scope!r}")
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))

    def default_value(self) -> Any:
        """A fresh copy of the default (lists and dicts are never shared)."""
        return copy.deepcopy(self.default)


class OptionRegistry:
    """Every declared option, by name. Declaring the same name twice is fine only if
    both declarations are identical."""

    def __init__(self, options: Iterable[Option] = ()):
        self._options: dict[str, Option] = {}
        for opt in options:
            self.declare(opt)

    def declare(self, opt: Option) -> Option:
        old = self._options.get(opt.name)
        if old is not None:
            if old != opt:
                raise ValueError(f"option {opt.name!r} is already declared differently: "
                                 f"{old!r} vs {opt!r}")
            return old
        self._options[opt.name] = opt
        return opt

    def get(self, name: str) -> Option | None:
        return self._options.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def __len__(self) -> int:
        return len(self._options)

    def all(self) -> list[Option]:
        """All options, in declaration order."""
        return list(self._options.values())


_TRUE_STRINGS = {"true", "yes", "on", "1", "enabled"}
_FALSE_STRINGS = {"false", "no", "off", "0", "disabled"}


def _fail(option: Option, setting: Setting, what: str, key: Any = None) -> ConfigError:
    file, line, col = setting.item_where(key) if key is not None else \
        (setting.file, setting.line, setting.col)
    return ConfigError(file, line, col, f"{option.name}: {what}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _describe(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if _is_number(v):
        return lua_tostring(v)
    return "a table"


def coerce(option: Option, setting: Setting) -> Any:
    """Check ``setting`` against ``option``; return the Python value.

    Raises :class:`ConfigError` at the setting's file:line:col.
    """
    v = setting.value
    t = option.type
    if t == "any":
        out = v
    elif t in ("string", "path"):
        if _is_number(v) and t == "string":
            v = lua_tostring(v)
        if not isinstance(v, str):
            raise _fail(option, setting, f"expected a string, got {_describe(v)}")
        if t == "path" and not v:
            raise _fail(option, setting, "expected a path, got an empty string")
        out = v
    elif t in ("number", "integer"):
        if isinstance(v, str):
            try:
                v = int(v) if t == "integer" else float(v)
            except ValueError:
                pass
        if not _is_number(v):
            raise _fail(option, setting, f"expected a{'n integer' if t == 'integer' else ' number'}"
                        f", got {_describe(v)}")
        if t == "integer":
            if isinstance(v, float):
                if not v.is_integer():
                    raise _fail(option, setting, f"expected an integer, got {_describe(v)}")
                v = int(v)
        out = v
    elif t == "boolean":
        if isinstance(v, str) and v.lower() in _TRUE_STRINGS | _FALSE_STRINGS:
            v = v.lower() in _TRUE_STRINGS
        if not isinstance(v, bool):
            raise _fail(option, setting, f"expected true or false, got {_describe(v)}")
        out = v
    elif t in ("list", "set"):
        if isinstance(v, dict):
            raise _fail(option, setting, "expected a list like { \"a\", \"b\" }, got a table "
                        "with named fields")
        if not isinstance(v, list):
            raise _fail(option, setting, f"expected a list like {{ \"a\", \"b\" }}, got "
                        f"{_describe(v)}")
        if t == "set":
            for i, item in enumerate(v):
                if isinstance(item, (list, dict)) or item is None:
                    raise _fail(option, setting, f"expected a list of strings or numbers, got "
                                f"{_describe(item)} as item {i + 1}", i)
            out = set(v)
        else:
            out = list(v)
    elif t == "table":
        if v == []:
            v = {}
        if not isinstance(v, dict):
            raise _fail(option, setting, f"expected a table like {{ key = value }}, got "
                        f"{_describe(v) if not isinstance(v, list) else 'a list'}")
        out = v
    elif t == "ports":
        items = [v] if _is_number(v) else v
        if not isinstance(items, list):
            raise _fail(option, setting, f"expected a port number or a list of numbers, got "
                        f"{_describe(v)}")
        out = []
        for i, p in enumerate(items):
            if not _is_number(p) or (isinstance(p, float) and not p.is_integer()):
                raise _fail(option, setting, f"expected a list of numbers, got {_describe(p)} "
                            f"as item {i + 1}", i if isinstance(v, list) else None)
            if not 1 <= p <= 65535:
                raise _fail(option, setting, f"port {lua_tostring(p)} is out of range 1..65535",
                            i if isinstance(v, list) else None)
            out.append(int(p))
    else:  # pragma: no cover - Option.__post_init__ refuses unknown types
        raise AssertionError(t)

    if option.min is not None or option.max is not None:
        values = out if isinstance(out, list) and t == "ports" else [out]
        for x in values:
            if _is_number(x):
                if option.min is not None and x < option.min:
                    raise _fail(option, setting, f"{lua_tostring(x)} is below the minimum "
                                f"{lua_tostring(option.min)}")
                if option.max is not None and x > option.max:
                    raise _fail(option, setting, f"{lua_tostring(x)} is above the maximum "
                                f"{lua_tostring(option.max)}")
    if option.choices is not None:
        values = out if isinstance(out, (list, set)) else [out]
        for x in values:
            if x not in option.choices:
                allowed = ", ".join(_describe(c) for c in option.choices)
                raise _fail(option, setting, f"{_describe(x)} is not one of {allowed}")
    return out


def lookup(cfg: Config, option: Option, host: str | None = None) -> Any:
    """The typed value of ``option`` for ``host`` (host, else global, else default)."""
    s = cfg.where(option.name, host)
    if s is None:
        return option.default_value()
    return coerce(option, s)


def check(cfg: Config, registry: OptionRegistry, known_modules: set[str]) -> list[ConfigWarning]:
    """What ``xmppctl check config`` reports, beyond syntax.

    Returns warnings for unknown options, Prosody options xmppd ignores (level
    ``"info"``), global-only options set inside a host, modules in
    ``modules_enabled`` that xmppd lacks, and external components without a
    ``component_secret``. Type errors in declared options raise :class:`ConfigError`.
    """
    out: list[ConfigWarning] = []

    def warn(s: Setting, message: str, level: str = "warning", key: Any = None) -> None:
        file, line, col = s.item_where(key) if key is not None else (s.file, s.line, s.col)
        out.append(ConfigWarning(file, line, col, message, level))

    sections: list[tuple[HostConfig | None, dict[str, Setting]]] = [(None, cfg.globals)]
    sections += [(h, h.options) for h in cfg.hosts.values()]
    for host, options in sections:
        for name, s in options.items():
            opt = registry.get(name)
            if opt is None:
                if name in _IGNORED:
                    warn(s, f"option '{name}' is a Prosody option that xmppd does not use; "
                         f"ignored", "info")
                else:
                    warn(s, f"unknown option '{name}' (xmppd ignores it)")
                continue
            coerce(opt, s)
            if host is not None and opt.scope == "global":
                warn(s, f"option '{name}' is global-only: set it before the first VirtualHost "
                     f"or Component; inside {host.describe()} it has no effect")
            if name == "modules_enabled" and isinstance(s.value, list):
                for i, mod in enumerate(s.value):
                    if isinstance(mod, str) and mod not in known_modules:
                        warn(s, f"module '{mod}' is not available in xmppd; ignored", key=i)
    for host in cfg.hosts.values():
        if host.is_external and host.enabled and cfg.where("component_secret", host.name) is None:
            out.append(ConfigWarning(host.file, host.line, host.col,
                                     f"{host.describe()} has no component_secret; it cannot "
                                     f"connect"))
        if host.component_module and host.component_module not in known_modules \
                and host.enabled:
            out.append(ConfigWarning(host.file, host.line, host.col,
                                     f"component module '{host.component_module}' is not "
                                     f"available in xmppd; {host.describe()} will not work"))
    return out


def _o(name, type, default=None, scope="both", doc="", **kw) -> Option:
    return Option(name, type, default, scope, doc, **kw)


# The feature modules a host loads when modules_enabled is not set at all.
DEFAULT_MODULES = ("roster", "disco", "dialback", "offline", "vcard", "private", "blocklist",
                   "lastactivity", "register", "carbons", "mam", "pep", "smacks", "csi",
                   "cloud_notify", "ping", "version", "time", "admin_adhoc")

# Core options, with Prosody's names and defaults where the meaning is the same.
CORE_OPTIONS: list[Option] = [
    _o("admins", "list", [], "both", "JIDs of the server's administrators"),
    _o("modules_enabled", "list", list(DEFAULT_MODULES), "both",
       "modules to load (on every host if global); message and presence are always loaded"),
    _o("modules_disabled", "list", [], "both", "modules not to load, even if enabled globally "
       "or loaded by default"),
    _o("interfaces", "list", ["*", "::"], "global", "addresses to listen on ('*' = all IPv4, "
       "'::' = all IPv6)"),
    _o("c2s_interfaces", "list", None, "global", "addresses for client connections "
       "(default: interfaces)"),
    _o("s2s_interfaces", "list", None, "global", "addresses for server connections "
       "(default: interfaces)"),
    _o("c2s_ports", "ports", [5222], "global", "client ports (STARTTLS)"),
    _o("c2s_direct_tls_ports", "ports", [], "global", "client ports with TLS from the first "
       "byte (XEP-0368), usually 5223"),
    _o("s2s_ports", "ports", [5269], "global", "server-to-server ports (STARTTLS)"),
    _o("s2s_direct_tls_ports", "ports", [], "global", "server-to-server ports with direct TLS"),
    _o("component_ports", "ports", [5347], "global", "ports for external components (XEP-0114)"),
    # HTTP (xmppd/http): started when a module serves something over it
    _o("http_ports", "ports", [5280], "global", "plain HTTP ports (on http_interfaces: "
       "loopback, for a reverse proxy in front)"),
    _o("http_interfaces", "list", ["127.0.0.1", "::1"], "global", "addresses for plain HTTP "
       "(loopback by default, as in Prosody 0.12)"),
    _o("https_ports", "ports", [5281], "global", "HTTPS ports, with each host's certificate "
       "chosen by SNI"),
    _o("https_interfaces", "list", None, "global", "addresses for HTTPS (default: interfaces)"),
    _o("http_host", "string", None, "host", "the HTTP Host name this host's HTTP services "
       "answer to (default: the host's name)"),
    _o("http_default_host", "string", None, "global", "the host whose HTTP services answer "
       "requests for a Host name no host claims (default: the only host serving HTTP)"),
    _o("http_external_url", "string", None, "both", "the URL the world reaches HTTP "
       "services at, when a proxy is in front (default: https://<http_host>:<first "
       "https port>/)"),
    _o("http_paths", "table", None, "both", "paths of HTTP services by name, e.g. "
       "{ websocket = \"/ws\"; bosh = \"/bosh\" }"),
    _o("trusted_proxies", "list", ["127.0.0.1", "::1"], "global", "addresses (or networks) "
       "of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed"),
    _o("component_interfaces", "list", ["127.0.0.1", "::1"], "global",
       "addresses for external components"),
    _o("c2s_require_encryption", "boolean", True, "both", "refuse clients that do not use TLS"),
    _o("s2s_require_encryption", "boolean", True, "both", "refuse servers that do not use TLS"),
    _o("s2s_secure_auth", "boolean", True, "both", "require valid certificates from remote "
       "servers (no dialback-only authentication)"),
    _o("allow_registration", "boolean", False, "both", "let clients create accounts "
       "(XEP-0077)"),
    _o("ssl", "table", None, "both", "TLS settings: key, certificate, ..."),
    _o("certificates", "path", "certs", "global", "directory searched for certificates, "
       "relative to the main configuration file"),
    _o("certificate_check_interval", "number", 60, "global", "how often (seconds) the "
       "certificate and key files are checked for changes, which are then loaded without a "
       "restart (certbot renewed them); 0: only on xmppctl reload or SIGHUP", min=0),
    _o("data_path", "path", "var", "global", "where data lives (the SQLite database), relative "
       "to the main configuration file; /var/lib/xmppd when that file is under /etc"),
    _o("storage", "any", "sqlite", "both", "storage backend: \"sqlite\" (default; Prosody's "
       "\"internal\" means the same), \"sql\" (the database of the sql option: PostgreSQL) or "
       "\"memory\"; or Prosody's per-store table { archive = \"sql\"; muc_log = \"sql\" }, the "
       "other stores going to default_storage"),
    _o("sql", "table", None, "both", "the SQL database of storage = \"sql\", with Prosody's keys: "
       "{ driver = \"PostgreSQL\"; database = \"xmppd\"; host = \"localhost\"; port = 5432; "
       "username = \"xmppd\"; password = \"...\" } (host may be the directory of a Unix socket; "
       "driver = \"SQLite3\" means xmppd's own SQLite database)"),
    _o("sqlite_tune", "string", "normal", "global", "SQLite durability, with Prosody's names: "
       "\"normal\" (WAL, synchronous=NORMAL: an acknowledged write survives a crash of xmppd, "
       "not of the machine), \"safe\" (synchronous=FULL: an fsync per commit, survives power "
       "loss), \"fast\" (synchronous=OFF: no fsync at all, a machine crash may corrupt the "
       "database); \"default\" (Prosody's: SQLite's own synchronous=FULL) is as \"safe\"",
       choices=("normal", "safe", "fast", "default")),
    _o("umask", "any", "027", "global", "file mode mask for everything xmppd creates (the "
       "database, its WAL, logs, certificates), in octal as Prosody writes it: \"027\" makes "
       "files 0640 and directories 0750, \"077\" 0600 and 0700"),
    _o("log", "any", None, "global", "logging: a file name, \"*syslog\", \"*console\", or "
       "a table of level = destination"),
    _o("pidfile", "path", None, "global", "file the daemon writes its process id to"),
    _o("control_socket", "any", None, "global", "Unix socket through which xmppctl acts on "
       "the running server (mode 0600, for root and the daemon's user); default "
       "data_path/xmppd.sock, false: none"),
    _o("daemonize", "boolean", False, "global", "detach from the terminal (systemd does not "
       "need it)"),
    _o("c2s_stanza_size_limit", "integer", 262144, "global", "largest stanza a client may "
       "send, in bytes", min=10000, limit=True),
    _o("s2s_stanza_size_limit", "integer", 524288, "global", "largest stanza a server may "
       "send, in bytes", min=10000, limit=True),
    _o("c2s_timeout", "integer", 60, "global", "seconds a client has to authenticate and bind "
       "a resource", min=1, limit=True),
    _o("s2s_timeout", "integer", 90, "global", "seconds to establish a server connection",
       min=1),
    # s2s (federation, core/s2s.py)
    _o("s2s_insecure_domains", "set", [], "both", "remote domains allowed to authenticate "
       "with dialback alone, even when s2s_secure_auth is true"),
    _o("s2s_secure_domains", "set", [], "both", "remote domains that must present a valid "
       "certificate, even when s2s_secure_auth is false"),
    _o("s2s_idle_timeout", "integer", 300, "global", "seconds after which an idle server "
       "connection is closed (0: never)", min=0),
    _o("dns_nameservers", "list", None, "global", "DNS servers for SRV lookups, e.g. "
       "{ \"127.0.0.1:5353\" } (default: /etc/resolv.conf)"),
    _o("enabled", "boolean", True, "host", "false disables the host"),
    _o("component_secret", "string", None, "host", "shared secret of an external component"),
    _o("name", "string", None, "host", "the service's name in service discovery"),
    _o("default_storage", "string", None, "both", "backend for the stores that a storage table "
       "does not name (default \"sqlite\")"),
    _o("max_roster_items", "integer", 1000, "both", "Most items a user's roster may hold, "
       "whatever adds them (a roster set, a subscription, a pre-approval); more are refused "
       "with not-allowed.", min=1, limit=True),
    # limits (core/limits.py)
    _o("limits", "any", None, "global", "per connection kind (c2s, s2sin, s2sout, component): "
       "{ rate = \"10kb/s\"; burst = \"2s\"; connections_per_address = N; "
       "unauthenticated_per_address = N }; false turns every limit off. Default: c2s 10kb/s "
       "burst 2s, 200 connections and 20 not logged in per address; s2sin 30kb/s, 100 and 50"),
    _o("c2s_max_auth_failures", "integer", 20, "global", "failed logins from one address "
       "within c2s_auth_ban_lifetime that ban it from logging in (0: never)", min=0),
    _o("c2s_auth_ban_lifetime", "integer", 600, "global", "seconds a ban for failed logins "
       "lasts (and the window failures are counted in)", min=1),
]

# Prosody options that xmppd accepts and ignores (reported at level "info"); never one
# that a module declares (tests/unit/test_options.py checks).
IGNORED_PROSODY_OPTIONS: list[str] = [
    "plugin_paths", "use_libevent", "network_backend", "network_settings", "authentication",
    "welcome_message", "proxy65_ports", "proxy65_address", "http_files_dir",
    "legacy_ssl_ports",
    "archive_store", "statistics", "statistics_interval", "certificate", "key", "use_ipv6",
    "prosody_user", "prosody_group", "run_as_root", "gc", "lua_gc_stepmul",
    "lua_gc_pause", "ssl_compression", "tls_profile", "muc_log_presences",
    "muc_room_cache_size",            # xmppd keeps every room of a MUC service live
    "http_upload_file_size_limit", "http_upload_expire_after", "http_upload_quota",
    "log_auth_failures",
    "registration_whitelist", "registration_blacklist",
    "allow_unencrypted_plain_auth", "sasl_backend", "auth_append_host", "groups_file",
    "storage_path", "server_contact_info",
]
_IGNORED = frozenset(IGNORED_PROSODY_OPTIONS)


_EXPIRY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.I)
_UNITS = {"": 1, "d": 86400, "w": 7 * 86400, "m": 31 * 86400, "y": 365.2425 * 86400}
# Prosody's long forms too ("5 minutes", "31 days", "1 month")
_UNIT_WORDS = {w: n for n, words in (
    (1, ("s", "sec", "secs", "second", "seconds")),
    (60, ("min", "mins", "minute", "minutes")),
    (3600, ("h", "hour", "hours")),
    (86400, ("day", "days")),
    (7 * 86400, ("week", "weeks")),
    (31 * 86400, ("mon", "month", "months")),
    (365.2425 * 86400, ("year", "years"))) for w in words}


def parse_period(value) -> float | None:
    """A duration in Prosody's syntax (``"1w"``, ``"30d"``, ``"1y"``, seconds as a
    number) in seconds, or None for ``"never"`` (and false); ValueError when unreadable."""
    if value is None or value is False:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration like \"1w\" or \"never\"")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("expected a positive number of seconds")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like \"1w\", got {value!r}")
    if value.strip().lower() == "never":
        return None
    mt = _EXPIRY.match(value)
    word = mt.group(2).lower() if mt else ""
    unit = _UNITS.get(word, _UNIT_WORDS.get(word)) if mt else None
    if unit is None or float(mt.group(1)) <= 0:
        raise ValueError(f"expected a duration like \"1d\", \"2w\", \"1y\", \"5 minutes\" "
                         f"or \"never\", got {value!r}")
    return float(mt.group(1)) * unit


def umask_setting(cfg: Config) -> int:
    """``umask`` as a mode mask: an octal string (``"027"``) or a number written in
    octal digits (``027`` in Lua is 27); a ConfigError at the setting otherwise."""
    s = cfg.where("umask")
    if s is None:
        return 0o027
    text = str(s.value).strip()
    if isinstance(s.value, bool) or not text.isdigit() or any(c in "89" for c in text) \
            or int(text, 8) > 0o777:
        shown = f'"{s.value}"' if isinstance(s.value, str) else str(s.value).lower()
        raise ConfigError(s.file, s.line, s.col, f"umask: expected an octal mask such as "
                          f"\"027\" or \"077\", not {shown}")
    return int(text, 8)


def core_registry() -> OptionRegistry:
    """A fresh registry holding :data:`CORE_OPTIONS`."""
    return OptionRegistry(CORE_OPTIONS)

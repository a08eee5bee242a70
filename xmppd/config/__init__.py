"""Prosody-style configuration: a Lua-like file that is parsed, never executed.

    from xmppd.config import load_config
    cfg = load_config("/etc/xmppd/xmppd.cfg.lua")
    cfg.get("c2s_ports")                      # global value (or None)
    cfg.get("ssl", host="falcot.com")         # host value, else global
    cfg.where("admins")                       # Setting(value, file, line, col)

Layers: :mod:`.lexer` (tokens, ConfigError, ConfigWarning), :mod:`.parser`
(statements with constant values), :mod:`.loader` (sections, hosts, Include),
:mod:`.options` (declared options, typed lookup, ``check config`` warnings).
"""
from .lexer import ConfigError, ConfigWarning
from .loader import Config, HostConfig, Setting, load_config, parse_config_text
from .options import (
    CORE_OPTIONS,
    IGNORED_PROSODY_OPTIONS,
    Option,
    OptionRegistry,
    check,
    coerce,
    core_registry,
    lookup,
)

__all__ = [
    "ConfigError", "ConfigWarning", "Config", "HostConfig", "Setting",
    "load_config", "parse_config_text",
    "Option", "OptionRegistry", "coerce", "check", "lookup", "core_registry",
    "CORE_OPTIONS", "IGNORED_PROSODY_OPTIONS",
]

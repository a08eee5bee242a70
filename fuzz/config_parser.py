#!/usr/bin/env python3
"""Fuzz the configuration parser (Prosody's Lua-like syntax, parsed, never run).
Expected: a configuration, or a ConfigError that names file:line:col."""
import atheris

with atheris.instrument_imports(include=["xmppd"]):
    from _common import run
    from xmppd.config import parse_config_text
    from xmppd.config.lexer import ConfigError


def test_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        cfg = parse_config_text(text, filename="fuzz.cfg.lua")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.cfg.lua:"), str(exc)
        return
    for host in cfg.hosts.values():
        host.describe()


if __name__ == "__main__":
    run(test_one, corpus="config")

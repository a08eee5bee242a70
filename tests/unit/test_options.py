"""Option declarations, coercion and check()."""
from __future__ import annotations

import pytest

from xmppd.config import (
    CORE_OPTIONS,
    IGNORED_PROSODY_OPTIONS,
    ConfigError,
    Option,
    OptionRegistry,
    Setting,
    check,
    coerce,
    core_registry,
    lookup,
    parse_config_text,
)


def S(value, line=3, col=5, items=None):
    return Setting(value, "m.lua", line, col, items or {})


def test_registry_declare_get_contains_all():
    reg = OptionRegistry()
    a = Option("a", "string", "x", "host", "doc")
    reg.declare(a)
    reg.declare(Option("a", "string", "x", "host", "doc"))   # identical: fine
    with pytest.raises(ValueError, match="already declared differently"):
        reg.declare(Option("a", "string", "y", "host", "doc"))
    assert reg.get("a") is a and reg.get("b") is None
    assert "a" in reg and "b" not in reg
    assert reg.all() == [a] and len(reg) == 1


def test_option_refuses_unknown_type_and_scope():
    with pytest.raises(ValueError):
        Option("a", "str")
    with pytest.raises(ValueError):
        Option("a", "string", scope="everywhere")


def test_core_options_have_prosody_names_and_defaults():
    reg = core_registry()
    defaults = {o.name: o.default for o in reg.all()}
    assert defaults["c2s_ports"] == [5222] and defaults["s2s_ports"] == [5269]
    assert defaults["interfaces"] == ["*", "::"]
    assert defaults["component_ports"] == [5347]
    assert defaults["c2s_require_encryption"] is True and defaults["s2s_secure_auth"] is True
    assert defaults["allow_registration"] is False
    assert defaults["c2s_stanza_size_limit"] == 262144
    assert defaults["s2s_stanza_size_limit"] == 524288
    assert (defaults["certificates"], defaults["data_path"], defaults["storage"]) == \
        ("certs", "var", "sqlite")
    assert reg.get("c2s_ports").scope == "global" and reg.get("enabled").scope == "host"
    assert all(o.doc for o in CORE_OPTIONS)
    assert not set(IGNORED_PROSODY_OPTIONS) & set(defaults)
    # defaults are copied, never shared
    opt = reg.get("admins")
    opt.default_value().append("x")
    assert opt.default == []


@pytest.mark.parametrize("type_, value, expected", [
    ("string", "x", "x"), ("string", 5, "5"), ("path", "/a", "/a"),
    ("number", 1.5, 1.5), ("number", 2, 2), ("integer", 7, 7), ("integer", 2.0 ** 18, 262144),
    ("integer", "12", 12),
    ("boolean", True, True), ("boolean", "yes", True), ("boolean", "0", False),
    ("list", ["a"], ["a"]), ("list", [], []), ("set", ["a", "a", "b"], {"a", "b"}),
    ("table", {"k": 1}, {"k": 1}), ("table", [], {}),
    ("ports", 5222, [5222]), ("ports", [5222, 5223.0], [5222, 5223]), ("ports", [], []),
    ("any", {"x": [1]}, {"x": [1]}),
])
def test_coerce_accepts(type_, value, expected):
    out = coerce(Option("o", type_), S(value))
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("type_, value, message", [
    ("string", True, "o: expected a string, got true"),
    ("path", "", "o: expected a path"),
    ("number", "abc", 'o: expected a number, got "abc"'),
    ("integer", 1.5, "o: expected an integer, got 1.5"),
    ("boolean", "maybe", 'o: expected true or false, got "maybe"'),
    ("boolean", 1, "o: expected true or false, got 1"),
    ("list", "a", 'o: expected a list like { "a", "b" }, got "a"'),
    ("list", {"a": 1}, "got a table with named fields"),
    ("set", [["x"]], "got a table as item 1"),
    ("table", ["a"], "o: expected a table like { key = value }, got a list"),
    ("ports", "5222", 'o: expected a port number or a list of numbers, got "5222"'),
    ("ports", [5222, "x"], 'o: expected a list of numbers, got "x" as item 2'),
    ("ports", [70000], "port 70000 is out of range"),
])
def test_coerce_refuses_at_the_setting_position(type_, value, message):
    with pytest.raises(ConfigError) as info:
        coerce(Option("o", type_), S(value))
    assert (info.value.file, info.value.line, info.value.col) == ("m.lua", 3, 5)
    assert message in info.value.message


def test_coerce_points_at_the_bad_list_item():
    cfg = parse_config_text('c2s_ports = {\n  5222,\n  "5223" }', "m.lua")
    with pytest.raises(ConfigError) as info:
        coerce(core_registry().get("c2s_ports"), cfg.where("c2s_ports"))
    assert str(info.value) == 'm.lua:3:3: c2s_ports: expected a list of numbers, got "5223" as item 2'


def test_coerce_bounds_and_choices():
    opt = Option("n", "integer", 5, min=1, max=10)
    assert coerce(opt, S(10)) == 10
    with pytest.raises(ConfigError, match="n: 0 is below the minimum 1"):
        coerce(opt, S(0))
    with pytest.raises(ConfigError, match="above the maximum 10"):
        coerce(opt, S(11))
    ch = Option("s", "string", "a", choices=["a", "b"])
    assert ch.choices == ("a", "b") and coerce(ch, S("b")) == "b"
    with pytest.raises(ConfigError, match='s: "c" is not one of "a", "b"'):
        coerce(ch, S("c"))


def test_lookup_typed_with_defaults_and_host_override():
    cfg = parse_config_text('c2s_ports = 5000\nVirtualHost "a.example"\n'
                            '  allow_registration = true\nVirtualHost "b.example"')
    reg = core_registry()
    assert lookup(cfg, reg.get("c2s_ports")) == [5000]
    assert lookup(cfg, reg.get("s2s_ports")) == [5269]
    assert lookup(cfg, reg.get("allow_registration"), "a.example") is True
    assert lookup(cfg, reg.get("allow_registration"), "b.example") is False


def test_check_reports_unknown_misplaced_and_missing_modules():
    cfg = parse_config_text("""\
modules_enabled = {
    "roster";
    "bosh"; -- not in xmppd
}
frobnicate = 1
plugin_paths = { "/usr/local/lib/prosody/modules" }
VirtualHost "a.example"
    c2s_ports = { 5222 }
    allow_registration = true
    modules_enabled = { "ping", "smacks" }
Component "conference.a.example" "muc"
Component "gw.a.example"
Component "gw2.a.example"
    component_secret = "x"
""", "m.lua")
    warnings = check(cfg, core_registry(), known_modules={"roster", "ping"})
    got = [(w.line, w.col, w.level, w.message) for w in warnings]
    assert got == [
        (3, 5, "warning", "module 'bosh' is not available in xmppd; ignored"),
        (5, 1, "warning", "unknown option 'frobnicate' (xmppd ignores it)"),
        (6, 1, "info", "option 'plugin_paths' is a Prosody option that xmppd does not use; "
                       "ignored"),
        (8, 5, "warning", "option 'c2s_ports' is global-only: set it before the first "
                          "VirtualHost or Component; inside VirtualHost 'a.example' it has "
                          "no effect"),
        (10, 33, "warning", "module 'smacks' is not available in xmppd; ignored"),
        (11, 1, "warning", "component module 'muc' is not available in xmppd; Component "
                           "'conference.a.example' \"muc\" will not work"),
        (12, 1, "warning", "Component 'gw.a.example' (external) has no component_secret; "
                           "it cannot connect"),
    ]
    assert all(w.file == "m.lua" for w in warnings)
    assert str(warnings[0]) == "m.lua:3:5: module 'bosh' is not available in xmppd; ignored"


def test_check_raises_on_type_errors():
    cfg = parse_config_text('s2s_secure_auth = "sometimes"', "m.lua")
    with pytest.raises(ConfigError) as info:
        check(cfg, core_registry(), set())
    assert str(info.value) == 'm.lua:1:1: s2s_secure_auth: expected true or false, got "sometimes"'


def test_check_accepts_module_declared_options():
    cfg = parse_config_text("archive_expires_after = \"1w\"\nmy_opt = 3")
    reg = core_registry()
    reg.declare(Option("my_opt", "integer", 1, "both", "a module's option"))
    reg.declare(Option("archive_expires_after", "string", "1w", "both", "mam"))
    assert check(cfg, reg, set()) == []


def test_ignored_prosody_options_are_not_declared_by_any_module():
    from xmppd.app import FINDER
    declared = {o.name for o in FINDER.declared_options(CORE_OPTIONS)}
    assert not set(IGNORED_PROSODY_OPTIONS) & declared


def test_parse_period_reads_prosodys_short_and_long_forms():
    from xmppd.config.options import parse_period
    assert parse_period("1w") == 7 * 86400
    assert parse_period("3m") == 3 * 31 * 86400
    # Prosody's get_option_period words: muc_tombstone_expiry = "31 days" and the like
    assert parse_period("31 days") == 31 * 86400
    assert parse_period("5 minutes") == 300
    assert parse_period("2 hours") == 7200
    assert parse_period("1 month") == 31 * 86400
    assert parse_period("30 seconds") == 30
    assert parse_period("never") is None
    for bad in ("1 fortnight", "1 dayss", "0d", "days"):
        with pytest.raises(ValueError):
            parse_period(bad)

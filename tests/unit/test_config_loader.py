"""Sections, hosts, Include and conf.d symlinks; the handbook's and Debian's files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from xmppd.config import (
    Config,
    ConfigError,
    ConfigWarning,
    HostConfig,
    Setting,
    check,
    core_registry,
    load_config,
    parse_config_text,
)

# rtc-services-handbook section 11.8.4, verbatim
HANDBOOK_HOST = """\
VirtualHost "falcot.com"
        enabled = true
        ssl = {
                key = "/etc/ssl/private/falcot.com-key.pem";
                certificate = "/etc/ssl/public/falcot.com.pem";
                }

-- Set up a MUC (multi-user chat) room server on conference.example.com:
Component "conference.falcot.com" "muc"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_handbook_hosts(cfg: Config, file: str) -> None:
    assert list(cfg.hosts) == ["falcot.com", "conference.falcot.com"]
    host = cfg.hosts["falcot.com"]
    assert isinstance(host, HostConfig)
    assert (host.kind, host.component_module, host.enabled) == ("virtualhost", None, True)
    assert (host.file, host.line, host.col) == (file, 1, 1)
    assert cfg.get("ssl", "falcot.com") == {
        "key": "/etc/ssl/private/falcot.com-key.pem",
        "certificate": "/etc/ssl/public/falcot.com.pem",
    }
    assert cfg.where("ssl", "falcot.com") == Setting(cfg.get("ssl", "falcot.com"), file, 3, 9)
    muc = cfg.hosts["conference.falcot.com"]
    assert (muc.kind, muc.component_module, muc.enabled) == ("component", "muc", True)
    assert (muc.line, muc.col) == (9, 1)
    assert [h.name for h in cfg.virtual_hosts()] == ["falcot.com"]
    assert [h.name for h in cfg.components()] == ["conference.falcot.com"]


def test_handbook_file_verbatim_from_text():
    cfg = parse_config_text(HANDBOOK_HOST, "falcot.com.cfg.lua")
    assert_handbook_hosts(cfg, "falcot.com.cfg.lua")
    assert cfg.globals == {} and cfg.warnings == []


def test_main_file_with_conf_d_symlink(tmp_path):
    avail = write(tmp_path / "conf.avail" / "falcot.com.cfg.lua", HANDBOOK_HOST)
    (tmp_path / "conf.d").mkdir()
    link = tmp_path / "conf.d" / "falcot.com.cfg.lua"
    link.symlink_to(Path("..") / "conf.avail" / "falcot.com.cfg.lua")
    write(tmp_path / "conf.d" / ".hidden.cfg.lua", 'VirtualHost "hidden.example"')
    main = write(tmp_path / "xmppd.cfg.lua",
                 'admins = { "joe@falcot.com" }\nInclude "conf.d/*.cfg.lua"\n')

    cfg = load_config(main)
    assert cfg.path == str(main)
    assert cfg.globals["admins"] == Setting(["joe@falcot.com"], str(main), 1, 1)
    assert cfg.get("admins", "falcot.com") == ["joe@falcot.com"]   # global seen from a host
    # errors and locations name the link, not its target
    assert_handbook_hosts(cfg, str(link))
    assert str(avail) not in cfg.files and str(link) in cfg.files
    assert cfg.warnings == []

    # an error inside the linked file is reported at the link path
    avail.write_text(HANDBOOK_HOST + "  oops\n")
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert (info.value.file, info.value.line) == (str(link), 11)


def test_include_forms_and_sorting(tmp_path):
    write(tmp_path / "conf.d" / "b.cfg.lua", 'VirtualHost "b.example"')
    write(tmp_path / "conf.d" / "a.cfg.lua", 'VirtualHost "a.example"')
    write(tmp_path / "conf.d" / "notes.txt", 'this is not lua')
    absolute = write(tmp_path / "elsewhere" / "c.lua", 'Component "c.example"\n'
                     '  component_secret = "s3cret"')
    main = write(tmp_path / "main.cfg.lua",
                 f'Include "conf.d/*.cfg.lua"\ninclude("{absolute}")\nInclude "none/*.lua"\n')
    cfg = load_config(main)
    assert list(cfg.hosts) == ["a.example", "b.example", "c.example"]
    assert cfg.hosts["c.example"].component_module is None   # external component
    assert cfg.get("component_secret", "c.example") == "s3cret"
    assert cfg.warnings == [ConfigWarning(str(main), 3, 1,
                                          'Include "none/*.lua" matches no file')]


def test_included_file_starts_global_like_prosody(tmp_path):
    write(tmp_path / "extra.lua", 'allow_registration = true\nVirtualHost "x.example"\n'
          '  storage = "memory"\n')
    main = write(tmp_path / "main.lua", 'VirtualHost "m.example"\nInclude "extra.lua"\n'
                 'c2s_require_encryption = false\n')
    cfg = load_config(main)
    assert cfg.globals["allow_registration"].value is True
    assert cfg.hosts["x.example"].options["storage"].value == "memory"
    # after the Include, the main file carries on in its own section
    assert cfg.hosts["m.example"].options["c2s_require_encryption"].value is False
    assert [(w.line, w.file) for w in cfg.warnings] == [(1, str(tmp_path / "extra.lua"))]
    assert "included file starts in the global section" in cfg.warnings[0].message


def test_include_relative_to_base_dir_for_text(tmp_path):
    write(tmp_path / "h.lua", 'VirtualHost "h.example"')
    cfg = parse_config_text('Include "h.lua"', base_dir=str(tmp_path))
    assert list(cfg.hosts) == ["h.example"]


def test_sections_and_host_over_global_lookup():
    cfg = parse_config_text("""
        storage = "sqlite"
        c2s_require_encryption = true
        VirtualHost "a.example"
            storage = "memory"
            c2s_require_encryption = false
        VirtualHost "b.example"
        Component "conference.a.example" "muc" { name = "Rooms" }
        allow_registration = true -- back in the global section after a table form
    """)
    assert cfg.get("storage") == "sqlite"
    assert cfg.get("storage", "a.example") == "memory"
    assert cfg.get("storage", "b.example") == "sqlite"
    assert cfg.get("c2s_require_encryption", "a.example") is False
    assert cfg.get("missing", "a.example", default=7) == 7
    assert cfg.where("missing") is None
    assert cfg.where("storage", "b.example").line == 2
    assert cfg.get("name", "conference.a.example") == "Rooms"
    assert cfg.get("allow_registration") is True
    with pytest.raises(KeyError):
        cfg.get("storage", "undeclared.example")


def test_disabled_host():
    cfg = parse_config_text('VirtualHost "on.example"\nVirtualHost "off.example"\n'
                            '  enabled = false\nComponent "c.off.example" "muc"\n  enabled = false')
    assert cfg.hosts["off.example"].enabled is False
    assert cfg.hosts["c.off.example"].enabled is False
    assert [h.name for h in cfg.virtual_hosts()] == ["on.example"]
    assert cfg.components() == []
    assert list(cfg.hosts) == ["on.example", "off.example", "c.off.example"]


def test_global_enabled_false_applies_to_hosts_without_their_own():
    cfg = parse_config_text('enabled = false\nVirtualHost "a.example"\n'
                            'VirtualHost "b.example"\n  enabled = true')
    assert [h.name for h in cfg.virtual_hosts()] == ["b.example"]


def test_enabled_must_be_boolean():
    with pytest.raises(ConfigError) as info:
        parse_config_text('VirtualHost "a.example"\n  enabled = "no"', "m.lua")
    assert str(info.value) == "m.lua:2:3: enabled: expected true or false"


def test_duplicate_host_with_options_is_an_error_naming_both_places(tmp_path):
    write(tmp_path / "conf.d" / "dup.cfg.lua", '\nVirtualHost "falcot.com"\n  storage = "memory"')
    main = write(tmp_path / "main.lua", 'VirtualHost "falcot.com"\n  enabled = true\n'
                 'Include "conf.d/*.cfg.lua"')
    with pytest.raises(ConfigError) as info:
        load_config(main)
    err = info.value
    assert (err.file, err.line, err.col) == (str(tmp_path / "conf.d" / "dup.cfg.lua"), 2, 1)
    assert f"declared twice with options: here and at {main}:1:1" in err.message


def test_redeclared_host_without_options_merges_with_a_warning():
    # Debian's prosody.cfg.lua + conf.d/localhost.cfg.lua do exactly this
    cfg = parse_config_text('VirtualHost "localhost"\nVirtualHost "localhost"\n  storage = "memory"',
                            "m.lua")
    assert list(cfg.hosts) == ["localhost"]
    assert cfg.get("storage", "localhost") == "memory"
    assert [(w.line, w.message) for w in cfg.warnings] == [
        (2, "VirtualHost 'localhost' is already declared at m.lua:1:1; "
            "the two declarations are merged")]


@pytest.mark.parametrize("text, line, message", [
    ('VirtualHost "a.example"\nComponent "a.example" "muc"', 2,
     "Component 'a.example' \"muc\" clashes with VirtualHost 'a.example' declared at m.lua:1:1"),
    ('Component "a.example" "muc"\nComponent "a.example" "pubsub"', 2, "clashes with"),
    ('VirtualHost "a.example" "muc"', 1, "VirtualHost does not take a module name"),
    ("VirtualHost", 1, "expected a host name string after 'VirtualHost'"),
    ("VirtualHost(42)", 1, "expected a host name string"),
    ('VirtualHost "bad host"', 1, "'bad host' is not a valid host name"),
    ('Include { "x" }', 1, "expected one file name or pattern string"),
    ('Include "missing.lua"', 1, "cannot read included file"),
    ('RunScript "x.lua"', 1, "'RunScript' is not supported"),
    ('input { type = "internal" }', 1, "unknown directive 'input'"),
])
def test_directive_errors(tmp_path, text, line, message):
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "m.lua", base_dir=str(tmp_path))
    assert info.value.file == "m.lua" and info.value.line == line
    assert message in info.value.message


def test_host_names_are_nameprepped():
    cfg = parse_config_text('VirtualHost "Falcot.COM"')
    assert list(cfg.hosts) == ["falcot.com"]


def test_include_cycle_is_an_error(tmp_path):
    a = tmp_path / "a.lua"
    b = write(tmp_path / "sub" / "b.lua", 'admins = { }\nInclude "../a.lua"\n')
    write(a, 'Include "sub/b.lua"\n')
    with pytest.raises(ConfigError) as info:
        load_config(a)
    err = info.value
    assert (err.file, err.line, err.col) == (str(b), 2, 1)
    assert err.message == f"include cycle: {a} -> {b} -> {tmp_path / 'sub' / '../a.lua'}"


def test_self_include_is_a_cycle(tmp_path):
    a = write(tmp_path / "a.lua", 'Include "*.lua"')
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(a)


def test_file_included_twice_is_loaded_once(tmp_path):
    write(tmp_path / "conf.avail" / "h.lua", 'VirtualHost "h.example"\n  storage = "memory"')
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "h.lua").symlink_to("../conf.avail/h.lua")
    main = write(tmp_path / "m.lua", 'Include "conf.avail/h.lua"\nInclude "conf.d/*.lua"')
    cfg = load_config(main)
    assert list(cfg.hosts) == ["h.example"]
    assert len(cfg.warnings) == 1 and "already loaded" in cfg.warnings[0].message


def test_broken_symlink_in_conf_d(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "gone.cfg.lua").symlink_to("../conf.avail/gone.cfg.lua")
    main = write(tmp_path / "m.lua", 'Include "conf.d/*.cfg.lua"')
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert (info.value.file, info.value.line) == (str(main), 1)
    assert "broken symbolic link" in info.value.message


def test_unreadable_main_file_is_a_config_error_at_line_0(tmp_path):
    missing = tmp_path / "nope.cfg.lua"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert (info.value.file, info.value.line, info.value.col) == (str(missing), 0, 0)
    assert str(info.value).startswith(f"{missing}: cannot read configuration file")


def test_invalid_utf8_file(tmp_path):
    p = tmp_path / "m.lua"
    p.write_bytes(b'admins = { }\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert (info.value.line, info.value.col) == (2, 12)


def test_bom_and_shebang_are_accepted(tmp_path):
    p = tmp_path / "m.lua"
    p.write_bytes(b'\xef\xbb\xbf#!/usr/bin/env lua\nadmins = { }\n')
    assert load_config(p).globals["admins"].line == 2


def test_duplicate_option_and_nil_assignment():
    cfg = parse_config_text('storage = "a"\nstorage = "b"\nlog = "x"\nlog = nil', "m.lua")
    assert cfg.get("storage") == "b" and "log" not in cfg.globals
    assert [(w.line, w.message) for w in cfg.warnings][0] == (
        2, "option 'storage' is set again globally; this replaces the value set at m.lua:1:1")


def test_resolve_path(tmp_path):
    main = write(tmp_path / "m.lua", 'certificates = "certs"')
    cfg = load_config(main)
    assert cfg.resolve_path(cfg.get("certificates")) == str(tmp_path / "certs")
    assert cfg.resolve_path("/abs/x") == "/abs/x"


DEBIAN_MAIN = Path("/etc/prosody/prosody.cfg.lua")


@pytest.mark.external("prosody")
def test_debian_prosody_config_loads_and_checks():
    if not DEBIAN_MAIN.exists():
        pytest.skip("Debian's prosody package is not installed")
    if not os.access(DEBIAN_MAIN, os.R_OK):
        pytest.skip(f"{DEBIAN_MAIN} is not readable by this user")
    cfg = load_config(DEBIAN_MAIN)
    assert "localhost" in cfg.hosts and cfg.hosts["localhost"].enabled
    assert cfg.get("admins") == []
    assert cfg.get("s2s_secure_auth") is True
    assert cfg.get("log")[1] == {"levels": ["error"], "to": "syslog"}
    assert cfg.get("limits") == {"c2s": {"rate": "10kb/s"}, "s2sin": {"rate": "30kb/s"}}
    # the options of every module are declared, as `check config` declares them
    from xmppd.app import FINDER
    from xmppd.config.options import CORE_OPTIONS
    reg = core_registry()
    for opt in FINDER.declared_options(CORE_OPTIONS):
        if reg.get(opt.name) is None:
            reg.declare(opt)
    warnings = check(cfg, reg, known_modules={"disco", "roster", "ping"})
    messages = [w.message for w in warnings]
    assert "module 'saslauth' is not available in xmppd; ignored" in messages
    assert "module 'disco' is not available in xmppd; ignored" not in messages
    saslauth = next(w for w in warnings if "'saslauth'" in w.message)
    assert (saslauth.file, saslauth.col) == (str(DEBIAN_MAIN), 3)   # the item's own line
    assert any(w.level == "info" and "'plugin_paths'" in w.message for w in warnings)
    assert not any(m.startswith("unknown option") for m in messages)


@pytest.mark.external("prosody")
@pytest.mark.parametrize("name", ["example.com.cfg.lua", "localhost.cfg.lua"])
def test_debian_conf_avail_files_load(name):
    path = Path("/etc/prosody/conf.avail") / name
    if not path.exists():
        pytest.skip(f"{path} is absent (Debian's prosody package is not installed)")
    cfg = load_config(path)
    assert cfg.hosts
    if name == "example.com.cfg.lua":
        assert cfg.hosts["example.com"].enabled is False
        assert cfg.get("ssl", "example.com")["key"] == "/etc/prosody/certs/example.com.key"
        assert cfg.hosts["conference.example.com"].component_module == "muc"

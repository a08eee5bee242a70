"""Tokenizer and parser of the Lua-like configuration (no files involved)."""
from __future__ import annotations

import pytest

from xmppd.config import ConfigError
from xmppd.config.lexer import tokenize
from xmppd.config.parser import Assign, Call, lua_tostring, parse


def values(text: str) -> dict:
    return {st.name: st.value.value for st in parse(text) if isinstance(st, Assign)}


def error_of(text: str, filename: str = "t.cfg.lua") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, filename)
    return info.value


# -- tokens ------------------------------------------------------------------

def test_token_positions_are_one_based_lines_and_columns():
    toks = tokenize('a = 1\n  bb = "x"\n')
    assert [(t.kind, t.value, t.line, t.col) for t in toks] == [
        ("name", "a", 1, 1), ("op", "=", 1, 3), ("number", 1, 1, 5),
        ("name", "bb", 2, 3), ("op", "=", 2, 6), ("string", "x", 2, 8),
        ("eof", None, 3, 1),
    ]


def test_comments_are_skipped_and_lines_counted():
    text = "-- line\n--[[ block\nstill ]] a = 1\n--[==[ x ]] \n ]==] b = 2 --[ not long\nc = 3"
    toks = tokenize(text)
    names = [(t.value, t.line, t.col) for t in toks if t.kind == "name"]
    assert names == [("a", 3, 10), ("b", 5, 7), ("c", 6, 1)]


@pytest.mark.parametrize("src, expected", [
    (r'"a\nb"', "a\nb"),
    (r'"tab\there"', "tab\there"),
    (r'"back\\slash"', "back\\slash"),
    (r'"q\"q"', 'q"q'),
    (r"'it\'s'", "it's"),
    (r'"\65\066\0671"', "ABC1"),
    (r'"\x41\x62"', "Ab"),
    (r'"\xc3\xa9t\195\169"', "été"),
    (r'"\u{e9}"', "é"),
    ('"a\\z   \n   b"', "ab"),
    ('"line\\\nnext"', "line\nnext"),
    ("[[long\nstring]]", "long\nstring"),
    ("[[\nfirst newline dropped]]", "first newline dropped"),
    ("[==[with ]] inside]==]", "with ]] inside"),
    ("'double \" inside single'", 'double " inside single'),
])
def test_string_literals(src, expected):
    assert values(f"x = {src}") == {"x": expected}


@pytest.mark.parametrize("src, expected", [
    ("42", 42), ("3.5", 3.5), (".5", 0.5), ("1e3", 1000.0), ("2E-2", 0.02),
    ("0xff", 255), ("0X10", 16), ("0x1p4", 16.0), ("-7", -7), ("- 2.5", -2.5),
    ("--[[c]] 9", 9),
])
def test_numbers(src, expected):
    v = values(f"x = {src}")["x"]
    assert v == expected and type(v) is type(expected)


def test_booleans_nil_and_concat_and_arithmetic():
    assert values('a = true b = false c = nil d = "x" .. "y" .. 1 .. 2.0') == {
        "a": True, "b": False, "c": None, "d": "xy12.0"}
    assert values("e = 60 * 60 * 24 * 7; f = 2^10; g = -2^2; h = (1 + 2) * 3; i = 7 // 2")\
        == {"e": 604800, "f": 1024.0, "g": -4.0, "h": 9, "i": 3}


def test_lua_tostring():
    assert [lua_tostring(x) for x in (1, 1.0, 0.5, 1e100)] == ["1", "1.0", "0.5", "1e+100"]


# -- tables ------------------------------------------------------------------

def test_tables_array_keyed_mixed_nested_and_separators():
    v = values("""
        empty = { }
        arr = { "a", "b"; "c", }
        keyed = { key = "/k.pem"; ["certificate"] = "/c.pem", [5] = true }
        mixed = { info = "/var/log/x.log"; { levels = { "error" }; to = "syslog"; }; }
        nested = { c2s = { rate = "10kb/s"; }; s2sin = { rate = "30kb/s" } }
    """)
    assert v["empty"] == []
    assert v["arr"] == ["a", "b", "c"]
    assert v["keyed"] == {"key": "/k.pem", "certificate": "/c.pem", 5: True}
    assert v["mixed"] == {"info": "/var/log/x.log", 1: {"levels": ["error"], "to": "syslog"}}
    assert v["nested"] == {"c2s": {"rate": "10kb/s"}, "s2sin": {"rate": "30kb/s"}}


def test_table_item_positions_are_kept():
    (st,) = parse('m = {\n  "disco";\n    "roster";\n}')
    assert st.value.items == {0: (2, 3), 1: (3, 5)}
    (st,) = parse('ssl = { key = "k",\n certificate = "c" }')
    assert st.value.items == {"key": (1, 9), "certificate": (2, 2)}


# -- statements --------------------------------------------------------------

def test_directive_call_forms():
    sts = parse('VirtualHost "d"\nVirtualHost("e")\nHost "f"\nComponent "conference.d" "muc"\n'
                'Component("x.d")\nInclude "conf.d/*.cfg.lua"; VirtualHost "g" { enabled = false }')
    assert [(s.func, [[a.value for a in g] for g in s.groups], s.line, s.col) for s in sts] == [
        ("VirtualHost", [["d"]], 1, 1),
        ("VirtualHost", [["e"]], 2, 1),
        ("Host", [["f"]], 3, 1),
        ("Component", [["conference.d"], ["muc"]], 4, 1),
        ("Component", [["x.d"]], 5, 1),
        ("Include", [["conf.d/*.cfg.lua"]], 6, 1),
        ("VirtualHost", [["g"], [{"enabled": False}]], 6, 29),
    ]
    assert all(isinstance(s, Call) for s in sts)


def test_env_names_read_the_environment():
    sts = parse("a = ENV_XMPPD_TEST_A b = ENV_XMPPD_TEST_MISSING", environ={"XMPPD_TEST_A": "v"})
    assert [(s.name, s.value.value) for s in sts] == [("a", "v"), ("b", None)]


# -- errors: message, line AND column --------------------------------------

@pytest.mark.parametrize("text, line, col, message", [
    ('a = "abc\nb = 1', 1, 5, "unterminated string"),
    ("x = 1\n  y = [[never closed", 2, 7, "unterminated long string"),
    ("--[[ open\ncomment", 1, 1, "unterminated long comment"),
    ("admins = { }\n}", 2, 1, "unexpected '}'"),
    ('foo\nbar = 1', 2, 1, "expected '=' or a string after name 'foo'"),
    ("foo 42", 1, 5, "expected '=' or a string after name 'foo', found a number"),
    ('m = { "a", "b"\n  "c" }', 2, 3, "expected ',' or ';' or '}' in the table opened at 1:5"),
    ('m = { "a",\n', 2, 1, "expected '}' to close the table opened at 1:5"),
    ("p = 12ab", 1, 5, "malformed number near '12ab'"),
    ("p = 0x", 1, 5, "malformed number near '0x'"),
    ('s = "bad \\q escape"', 1, 10, "invalid escape sequence '\\q'"),
    ('s = "\\x4"', 1, 6, "'\\x' needs two hexadecimal digits"),
    ('s = "\\300"', 1, 6, "'\\300' is above 255"),
    ("a = 1\n  b = @", 2, 7, "unexpected character '@'"),
    ("  local x = 1", 1, 3, "'local' is not supported"),
    ("if true then end", 1, 1, "'if' is not supported"),
    ("for i = 1, 2 do end", 1, 1, "'for' is not supported"),
    ("function f() end", 1, 1, "'function' is not supported"),
    ("x =\n", 2, 1, "expected a value after 'x =', found end of file"),
    ("x = data_path", 1, 5, "unknown name 'data_path'"),
    ('x = os.getenv("A")', 1, 5, "calling 'os' in a value is not supported"),
    ("a.b = 1", 1, 2, "(fields and methods) is not supported"),
    ("a, b = 1, 2", 1, 2, "multiple assignment"),
    ("x = 1 or 2", 1, 7, "operator 'or' is not supported"),
    ('x = "a" .. true', 1, 9, "cannot concatenate a boolean value"),
    ('x = "a" + 1', 1, 9, "cannot do arithmetic ('+') on a string value"),
    ("x = 1 // 0", 1, 7, "division by zero"),
    ("x = { [nil] = 1 }", 1, 7, "table keys must be strings, numbers or booleans"),
    ('VirtualHost("a" "b")', 1, 17, "expected ',' or ')' to close the '(' at 1:12"),
    ('"x" = 1', 1, 1, "unexpected a string; expected an option name"),
    ("x = 1 2", 1, 7, "unexpected a number; expected a new line"),
])
def test_syntax_errors_name_file_line_and_column(text, line, col, message):
    err = error_of(text)
    assert (err.file, err.line, err.col) == ("t.cfg.lua", line, col), str(err)
    assert message in err.message
    assert str(err) == f"t.cfg.lua:{line}:{col}: {err.message}"


def test_columns_count_characters_not_bytes():
    err = error_of('name = "été" ; x = @')
    assert (err.line, err.col) == (1, 20)


def test_string_must_be_utf8():
    err = error_of('s = "\\xff"')
    assert (err.line, err.col) == (1, 5) and "UTF-8" in err.message


def test_config_error_pickles():
    import pickle
    err = pickle.loads(pickle.dumps(ConfigError("f", 1, 2, "m")))
    assert (err.file, err.line, err.col, err.message, str(err)) == ("f", 1, 2, "m", "f:1:2: m")

"""Regression tests for what the fuzzers found (fuzz/): each input that once made
the code under test fail in a way it should not, with the answer it gets now."""
import pytest

from xmppd.config import parse_config_text
from xmppd.config.lexer import ConfigError


def test_config_include_with_a_nul_byte_is_a_config_error():
    # fuzz/config_parser.py: os.path.realpath raised ValueError ("embedded null byte")
    text = 'modules_enabled = { "roster" }\nInclude "conf.d/\\0\\0\\0x"\n'
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, filename="fuzz.cfg.lua")
    assert str(exc.value).startswith("fuzz.cfg.lua:2:1: ")
    assert "NUL" in str(exc.value)


def test_config_hex_float_too_large_is_a_config_error():
    # fuzz/config_parser.py: float.fromhex raised OverflowError
    with pytest.raises(ConfigError) as exc:
        parse_config_text("x = 0x1P777770\n", filename="fuzz.cfg.lua")
    assert str(exc.value).startswith("fuzz.cfg.lua:1:5: ")


@pytest.mark.parametrize("text", ["x = " + "{" * 2000 + "}" * 2000, "x = " + "(" * 2000 + "1" + ")" * 2000,
                                  "x = " + "- " * 5000 + "1", "x = " + " .. ".join(['"a"'] * 3000)])
def test_config_deep_nesting_is_a_config_error(text):
    # fuzz/config_parser.py: RecursionError in the expression parser
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text + "\n", filename="fuzz.cfg.lua")
    assert "nested more than 100 deep" in str(exc.value)


def test_jid_normalisation_is_a_fixpoint():
    # fuzz/jid.py: slixmpp turned the domain "Ϲ9" into "Σ9", and "Σ9" into "σ9"
    from xmppd.xmpp import jid
    assert jid.split("\u03f99") == jid.split("\u03a39") == jid.split("\u03c39") == ("", "\u03c39", "")
    assert jid.bare("user@\u03f99/r") == "user@\u03c39"

"""The reader of Prosody's Lua-serialized data (xmppd/cli/luadata.py): what
util/serialization.lua writes, and what it must refuse (it never executes anything)."""
from __future__ import annotations

import math

import pytest

from xmppd.cli.import_prosody import Skip, decode_name, encode_name, scram_credentials
from xmppd.cli.luadata import FALSE, TRUE, LuaError, Table, parse_dat, parse_list, to_element

# as Prosody 0.12 writes a roster (mod_roster via datamanager)
ROSTER = '''return {
\t[false] = {
\t\t["pending"] = {};
\t\t["version"] = 3;
\t};
\t["bob@prosody.example"] = {
\t\t["subscription"] = "none";
\t\t["ask"] = "subscribe";
\t\t["groups"] = {
\t\t\t["Friends"] = true;
\t\t};
\t\t["name"] = "Bob";
\t};
};
'''


def test_roster_file():
    t = parse_dat(ROSTER)
    assert isinstance(t, Table)
    assert t[FALSE] == {"pending": {}, "version": 3}
    bob = t["bob@prosody.example"]
    assert bob["ask"] == "subscribe" and bob["groups"] == {"Friends": True}


def test_scalars_and_escapes():
    t = parse_dat(r'return { "a\"b\\c\n", 1, -2.5, 1e3, 0x1F, true, false, (1/0), '
                  r'"\195\169t\195\169", "\x41\u{263A}", [[long]]; n = nil, k = "v" };')
    assert t.array()[:5] == ['a"b\\c\n', 1, -2.5, 1000, 31]
    assert t[6] is True and t[7] is False and t[8] == math.inf
    assert t[9] == "été" and t[10] == "A☺" and t[11] == "long"
    assert t["k"] == "v" and "n" not in t


def test_old_style_backslash_newline():
    # Lua 5.1's %q (Prosody before 0.10) writes a newline as backslash + newline
    assert parse_dat('return "one\\\ntwo";') == "one\ntwo"


def test_boolean_keys_do_not_collide_with_numbers():
    t = parse_dat('return { "first", [false] = "f", [true] = "t" };')
    assert t[1] == "first" and t[FALSE] == "f" and t[TRUE] == "t"


def test_list_file():
    items = parse_list('item({ ["key"] = "k1"; ["when"] = 5; });\nitem({ ["key"] = "k2" });\n')
    assert [i["key"] for i in items] == ["k1", "k2"]
    assert parse_list("") == []


@pytest.mark.parametrize("text", [
    "return os.execute('rm -rf /');",       # a call: code, not data
    "return { a = b };",                     # a variable
    "return { 1 + 2 };",                     # an expression
    "return { broken",                       # truncated
    'return "unterminated;',
    "return { [nil] = 1 };",
    "return 1; print(1)",                    # text after the data
    'return "\\q";',                         # unknown escape
    'return "\\255";',                       # not UTF-8
    "local x = 1",
    "return (function() end)",
])
def test_refused(text):
    with pytest.raises(LuaError):
        parse_dat(text)


def test_error_has_line_and_column():
    with pytest.raises(LuaError, match=r"line 3, column \d+"):
        parse_dat('return {\n\t["a"] = 1;\n\t["b"] = oops;\n};')


def test_nesting_is_bounded():
    with pytest.raises(LuaError):
        parse_dat("return " + "{" * 1000 + "}" * 1000)


def test_stanza_table_to_element():
    t = parse_dat('''return { name = "message", attr = { type = "chat", ["xml:lang"] = "en",
        ["urn:x\\1a"] = "1" }, { name = "body", attr = {}, "hi" },
        { name = "x", attr = { xmlns = "urn:y" }, { name = "c", attr = {} }, "tail?" } };''')
    el = to_element(t)
    assert el.tag == "{jabber:client}message" and el.get("type") == "chat"
    assert el.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert el.get("{urn:x}a") == "1"
    assert el.findtext("{jabber:client}body") == "hi"
    x = el.find("{urn:y}x")
    assert x.find("{urn:y}c") is not None and x.find("{urn:y}c").tail == "tail?"
    with pytest.raises(LuaError):
        to_element(parse_dat('return { attr = {} };'))


def test_names():
    assert encode_name("prosody.example") == "prosody%2eexample"
    assert decode_name("prosody%2eexample") == "prosody.example"
    assert encode_name("é") == "%c3%a9" and decode_name("%c3%a9") == "é"


def test_scram_sha1_credentials_log_in():
    """Prosody's keys (hex, the salt a UUID string) verify with xmppd's SCRAM code:
    RFC 5802's example password under Prosody's derivation."""
    import hashlib
    import hmac
    from xmppd.core.credentials import scram_auth_info, verify_password
    salt, iterations = "4b7bc59a-68d4-49e6-8291-56d1ebee7bcf", 4096
    salted = hashlib.pbkdf2_hmac("sha1", b"pencil", salt.encode(), iterations)
    stored = hashlib.sha1(hmac.new(salted, b"Client Key", "sha1").digest()).hexdigest()
    server = hmac.new(salted, b"Server Key", "sha1").hexdigest()
    rec = parse_dat(f'return {{ ["salt"] = "{salt}"; ["stored_key"] = "{stored}"; '
                    f'["server_key"] = "{server}"; ["iteration_count"] = {iterations}; }};')
    creds = scram_credentials(rec)
    assert verify_password(creds, "pencil") and not verify_password(creds, "eraser")
    assert scram_auth_info(creds, "scram-sha-256") is None
    with pytest.raises(Skip):
        scram_credentials(Table(salt="s", stored_key="zz", server_key="00", iteration_count=4096))


def test_scram_sha256_credentials_of_prosody_13():
    """Prosody 13 with password_hash = "SHA-256": same fields, 32-byte keys."""
    import hashlib
    import hmac
    from xmppd.core.credentials import scram_auth_info, verify_password
    salt = "2f4a4e38-6c0a-4b0e-9b43-3f5f4f1c2d10"
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt.encode(), 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).hexdigest()
    server = hmac.new(salted, b"Server Key", "sha256").hexdigest()
    creds = scram_credentials(Table(salt=salt, stored_key=stored, server_key=server,
                                    iteration_count=4096, disabled=True))
    assert scram_auth_info(creds, "scram-sha-1") is None
    assert scram_auth_info(creds, "scram-sha-256") is not None
    assert verify_password(creds, "pencil") and creds["disabled"] is True

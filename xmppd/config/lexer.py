"""Tokenizer for the Lua-like configuration language.

The configuration is *read*, never executed: this module turns text into tokens
and nothing else. Every token carries its 1-based line and column (columns count
characters; a tab is one column), and every error is a :class:`ConfigError`
naming ``file:line:col``.

Accepted lexical syntax (a subset of Lua 5.4):

* ``-- line comments``, ``--[[ block comments ]]``, ``--[==[ ... ]==]``
* strings ``"..."`` / ``'...'`` with Lua escapes (``\\n \\t \\\\ \\" \\' \\a \\b \\f
  \\r \\v``, ``\\ddd``, ``\\xXX``, ``\\u{XXX}``, ``\\z``, backslash-newline) and long
  strings ``[[...]]`` / ``[==[...]==]`` (a newline right after the opening bracket
  is dropped). Escapes produce bytes; the string must be valid UTF-8.
* numbers: ``42``, ``3.5``, ``.5``, ``1e3``, ``0xff``, ``0x1p4``
* names, keywords and punctuation. A first line starting with ``#`` is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ConfigError", "ConfigWarning", "Token", "tokenize", "KEYWORDS"]


class ConfigError(Exception):
    """A configuration error at ``file:line:col`` (1-based; line 0 = the whole file)."""

    def __init__(self, file: str, line: int, col: int, message: str):
        self.file = file
        self.line = line
        self.col = col
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (type(self), (self.file, self.line, self.col, self.message))


@dataclass(frozen=True)
class ConfigWarning:
    """Something worth telling the admin; collected, never printed by the library.

    ``level`` is ``"warning"`` or ``"info"`` (e.g. a Prosody option xmppd ignores).
    """

    file: str
    line: int
    col: int
    message: str
    level: str = "warning"

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


KEYWORDS = frozenset({
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
    "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
    "true", "until", "while",
})

# longest first, so that ".." wins over "." and "..." over ".."
_OPERATORS = (
    "...", "..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>",
    "=", ",", ";", "{", "}", "[", "]", "(", ")", ".", "+", "-", "*", "/",
    "%", "^", "#", "<", ">", ":", "&", "|", "~",
)

_SIMPLE_ESCAPES = {
    "n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f",
    "v": b"\v", "\\": b"\\", '"': b'"', "'": b"'", "\n": b"\n",
}

_HEX = "0123456789abcdefABCDEF"


class Token(NamedTuple):
    kind: str      # "name", "keyword", "string", "number", "op", "eof"
    value: object  # str for name/keyword/op/string, int|float for number, None for eof
    line: int
    col: int

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind == "eof":
            return "end of file"
        if self.kind == "string":
            return "a string"
        if self.kind == "number":
            return "a number"
        return f"'{self.value}'"


class _Lexer:
    def __init__(self, text: str, filename: str):
        self.text = text
        self.file = filename
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []

    # -- position helpers -------------------------------------------------
    def col_of(self, i: int) -> int:
        return i - self.line_start + 1

    def error(self, line: int, col: int, message: str) -> ConfigError:
        return ConfigError(self.file, line, col, message)

    def newline_at(self, i: int) -> None:
        """Record that text[i] is a newline (called when consuming it)."""
        self.line += 1
        self.line_start = i + 1

    def advance_over(self, start: int, end: int) -> None:
        """Move to ``end``, counting the newlines in text[start:end]."""
        text = self.text
        j = text.find("\n", start, end)
        while j != -1:
            self.newline_at(j)
            j = text.find("\n", j + 1, end)
        self.i = end

    # -- main loop --------------------------------------------------------
    def run(self) -> list[Token]:
        text = self.text
        n = len(text)
        if text.startswith("#"):  # shebang line, as Lua does
            end = text.find("\n")
            self.i = n if end == -1 else end
        while True:
            # skip whitespace and comments
            while self.i < n:
                c = text[self.i]
                if c == "\n":
                    self.newline_at(self.i)
                    self.i += 1
                elif c in " \t\r\f\v":
                    self.i += 1
                elif text.startswith("--", self.i):
                    self.skip_comment()
                else:
                    break
            if self.i >= n:
                self.tokens.append(Token("eof", None, self.line, self.col_of(self.i)))
                return self.tokens
            self.lex_one()

    def skip_comment(self) -> None:
        text = self.text
        start_line, start_col = self.line, self.col_of(self.i)
        self.i += 2
        level = self.long_bracket_level(self.i)
        if level >= 0:
            close = "]" + "=" * level + "]"
            body = self.i + level + 2
            end = text.find(close, body)
            if end == -1:
                raise self.error(start_line, start_col, "unterminated long comment (missing '"
                                 + close + "')")
            self.advance_over(self.i, end + len(close))
            return
        end = text.find("\n", self.i)
        self.i = len(text) if end == -1 else end

    def long_bracket_level(self, i: int) -> int:
        """If text[i:] opens a long bracket ``[==[``, return its level, else -1."""
        text = self.text
        if i >= len(text) or text[i] != "[":
            return -1
        j = i + 1
        while j < len(text) and text[j] == "=":
            j += 1
        if j < len(text) and text[j] == "[":
            return j - i - 1
        return -1

    def lex_one(self) -> None:
        text = self.text
        i = self.i
        c = text[i]
        line, col = self.line, self.col_of(i)
        if c.isalpha() or c == "_":
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if not word.isascii():
                raise self.error(line, col, f"unexpected character '{c}'"
                                 if not c.isascii() else f"invalid name '{word}'")
            kind = "keyword" if word in KEYWORDS else "name"
            self.tokens.append(Token(kind, word, line, col))
            self.i = j
        elif c.isdigit() or (c == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            self.lex_number()
        elif c in "\"'":
            self.lex_string(c)
        elif c == "[" and self.long_bracket_level(i) >= 0:
            self.lex_long_string()
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    self.tokens.append(Token("op", op, line, col))
                    self.i = i + len(op)
                    return
            shown = c if c.isprintable() else repr(c)[1:-1]
            raise self.error(line, col, f"unexpected character '{shown}'")

    def lex_number(self) -> None:
        text = self.text
        i = start = self.i
        line, col = self.line, self.col_of(i)
        n = len(text)
        if text.startswith(("0x", "0X"), i):
            i += 2
            exp_chars = "pP"
            digits = _HEX
        else:
            exp_chars = "eE"
            digits = "0123456789"
        while i < n:
            ch = text[i]
            if ch in digits or ch == ".":
                i += 1
            elif ch in exp_chars:
                i += 1
                if i < n and text[i] in "+-":
                    i += 1
            else:
                break
        # anything glued to the number makes it malformed (Lua does the same)
        end = i
        while end < n and (text[end].isalnum() or text[end] in "_."):
            end += 1
        raw = text[start:end]
        value = _parse_number(raw) if end == i else None
        if value is None:
            raise self.error(line, col, f"malformed number near '{raw}'")
        self.tokens.append(Token("number", value, line, col))
        self.i = end

    def lex_string(self, quote: str) -> None:
        text = self.text
        n = len(text)
        line, col = self.line, self.col_of(self.i)
        i = self.i + 1
        out = bytearray()
        while True:
            if i >= n or text[i] == "\n":
                raise self.error(line, col, "unterminated string")
            ch = text[i]
            if ch == quote:
                i += 1
                break
            if ch != "\\":
                j = i
                while j < n and text[j] not in (quote, "\\", "\n"):
                    j += 1
                out += text[i:j].encode("utf-8", "surrogatepass")
                i = j
                continue
            # escape sequence
            esc_col = self.col_of(i)
            i += 1
            if i >= n:
                raise self.error(line, col, "unterminated string")
            e = text[i]
            if e in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[e]
                if e == "\n":
                    self.newline_at(i)
                i += 1
            elif e == "x":
                hx = text[i + 1:i + 3]
                if len(hx) != 2 or any(h not in _HEX for h in hx):
                    raise self.error(self.line, esc_col, "invalid escape sequence: '\\x' needs "
                                     "two hexadecimal digits")
                out.append(int(hx, 16))
                i += 3
            elif e.isdigit() and e.isascii():
                j = i
                while j < n and j < i + 3 and text[j].isdigit() and text[j].isascii():
                    j += 1
                code = int(text[i:j])
                if code > 255:
                    raise self.error(self.line, esc_col, f"invalid escape sequence: "
                                     f"'\\{text[i:j]}' is above 255")
                out.append(code)
                i = j
            elif e == "z":  # skip following whitespace, including newlines
                i += 1
                while i < n and text[i] in " \t\r\n\f\v":
                    if text[i] == "\n":
                        self.newline_at(i)
                    i += 1
            elif e == "u":
                close = text.find("}", i)
                digits = text[i + 2:close] if text.startswith("u{", i) and close != -1 else ""
                if not digits or any(h not in _HEX for h in digits) or int(digits, 16) > 0x7FFFFFFF:
                    raise self.error(self.line, esc_col, "invalid escape sequence: expected "
                                     "'\\u{XXX}' with hexadecimal digits")
                out += chr(int(digits, 16)).encode("utf-8", "surrogatepass") \
                    if int(digits, 16) <= 0x10FFFF else b"?"
                i = close + 1
            else:
                shown = e if e.isprintable() else repr(e)[1:-1]
                raise self.error(self.line, esc_col, f"invalid escape sequence '\\{shown}'")
        try:
            value = out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(line, col, "string is not valid UTF-8 (check its \\x and \\ddd "
                             "escapes)") from None
        self.tokens.append(Token("string", value, line, col))
        self.i = i

    def lex_long_string(self) -> None:
        text = self.text
        line, col = self.line, self.col_of(self.i)
        level = self.long_bracket_level(self.i)
        close = "]" + "=" * level + "]"
        body = self.i + level + 2
        end = text.find(close, body)
        if end == -1:
            raise self.error(line, col, f"unterminated long string (missing '{close}')")
        value = text[body:end]
        if value.startswith("\r\n"):
            value = value[2:]
        elif value.startswith("\n"):
            value = value[1:]
        self.advance_over(self.i, end + len(close))
        self.tokens.append(Token("string", value, line, col))


def _parse_number(raw: str) -> int | float | None:
    """Lua numeral -> int or float; None if malformed."""
    try:
        low = raw.lower()
        if low.startswith("0x"):
            body = low[2:]
            if not body or body in (".",) or body[0] == "p":
                return None
            if "." in body or "p" in body:
                mant = body if "p" in body else body + "p0"
                return float.fromhex("0x" + mant)
            return int(body, 16)
        if any(ch in low for ch in ".e"):
            if low.endswith(("e", "+", "-")) or low.startswith("e"):
                return None
            return float(low)
        return int(low, 10)
    except (ValueError, OverflowError):   # OverflowError: a hex float beyond a double
        return None


def tokenize(text: str, filename: str = "<string>") -> list[Token]:
    """Split ``text`` into tokens, ending with one ``eof`` token."""
    return _Lexer(text, filename).run()

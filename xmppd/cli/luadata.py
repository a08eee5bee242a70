"""A reader for Prosody's flat-file data (``util/serialization.lua``,
``util/datamanager.lua``), sans I/O: text in, Python values out. Nothing is ever
executed: only the data subset of Lua is accepted — ``return <value>;`` (a ``.dat``
file) and ``item(<value>);`` lines (a ``.list`` file), where a value is ``nil``,
``true``, ``false``, a number, a string or a table constructor.

A table becomes a :class:`Table` (a dict): positional entries get the keys 1, 2, ...
as in Lua; ``[false]``/``[true]`` keys become :data:`FALSE`/:data:`TRUE` (Python's
``False == 0`` would otherwise collide with numeric keys). Strings are byte strings
in Lua: escapes (``\\n``, ``\\ddd``, ``\\xXX``, ``\\u{...}``, backslash-newline)
are decoded to bytes, and the result to UTF-8 (invalid UTF-8 is a :class:`LuaError`).
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

__all__ = ["FALSE", "TRUE", "LuaError", "Table", "parse_dat", "parse_list", "to_element"]


class LuaError(ValueError):
    """The text is not Prosody data; the message gives line and column."""


class _BoolKey:
    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self):
        return f"[{str(self.value).lower()}]"


FALSE = _BoolKey(False)
TRUE = _BoolKey(True)


class Table(dict):
    """A Lua table: a dict whose positional entries have the keys 1..n."""

    def array(self) -> list:
        out = []
        i = 1
        while i in self:
            out.append(self[i])
            i += 1
        return out


_ESCAPES = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t",
            "v": b"\v", "\\": b"\\", '"': b'"', "'": b"'", "\n": b"\n"}
_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME = _NAME_START + "0123456789"
_KEYWORDS = {"nil", "true", "false"}
MAX_DEPTH = 200


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def error(self, msg: str, at: int | None = None) -> LuaError:
        at = self.i if at is None else at
        line = self.s.count("\n", 0, at) + 1
        col = at - (self.s.rfind("\n", 0, at) + 1) + 1
        return LuaError(f"line {line}, column {col}: {msg}")

    def skip(self) -> None:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r\n\f\v":
                self.i += 1
            elif s.startswith("--", self.i):
                if s.startswith("--[[", self.i):
                    end = s.find("]]", self.i)
                    if end < 0:
                        raise self.error("unfinished comment")
                    self.i = end + 2
                else:
                    end = s.find("\n", self.i)
                    self.i = n if end < 0 else end + 1
            else:
                break

    def peek(self) -> str:
        self.skip()
        return self.s[self.i:self.i + 1]

    def expect(self, tok: str) -> None:
        self.skip()
        if not self.s.startswith(tok, self.i):
            raise self.error(f"expected {tok!r}")
        self.i += len(tok)

    def name(self) -> str:
        self.skip()
        start = self.i
        if self.i < len(self.s) and self.s[self.i] in _NAME_START:
            while self.i < len(self.s) and self.s[self.i] in _NAME:
                self.i += 1
        return self.s[start:self.i]

    def value(self, depth: int = 0):
        if depth > MAX_DEPTH:
            raise self.error("tables nested too deep")
        c = self.peek()
        if c == "{":
            return self.table(depth + 1)
        if c in ("'", '"'):
            return self.string()
        if c == "[" and self.s[self.i:self.i + 2] in ("[[", "[="):
            return self.long_string()
        if c == "(":   # (1/0), (-1/0), (0/0): how Prosody writes inf and nan
            for text, v in (("(1/0)", math.inf), ("(-1/0)", -math.inf), ("(0/0)", math.nan)):
                if self.s.startswith(text, self.i):
                    self.i += len(text)
                    return v
            raise self.error("an expression is not data")
        if c and (c in "0123456789.-+"):
            return self.number()
        start = self.i
        word = self.name()
        if word == "nil":
            return None
        if word == "true":
            return True
        if word == "false":
            return False
        raise self.error(f"unexpected {word or self.s[start:start + 1] or 'end of file'!r}", start)

    def number(self):
        start = self.i
        s = self.s
        j = self.i
        if j < len(s) and s[j] in "+-":
            j += 1
        if s[j:j + 2].lower() == "0x":
            j += 2
            while j < len(s) and s[j] in "0123456789abcdefABCDEF":
                j += 1
            self.i = j
            try:
                return int(s[start:j], 16)
            except ValueError:
                raise self.error("bad number", start) from None
        while j < len(s) and (s[j] in "0123456789.eE" or (s[j] in "+-" and s[j - 1] in "eE")):
            j += 1
        text = s[start:j]
        self.i = j
        try:
            if any(ch in text for ch in ".eE"):
                f = float(text)
                return int(f) if f.is_integer() and abs(f) < 2 ** 53 else f
            return int(text)
        except ValueError:
            raise self.error(f"bad number {text!r}", start) from None

    def string(self) -> str:
        s = self.s
        quote = s[self.i]
        start = self.i
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= len(s):
                raise self.error("unfinished string", start)
            c = s[self.i]
            if c == quote:
                self.i += 1
                break
            if c == "\n":
                raise self.error("unfinished string", start)
            if c != "\\":
                out += c.encode("utf-8")
                self.i += 1
                continue
            self.i += 1
            e = s[self.i:self.i + 1]
            if e in _ESCAPES:
                out += _ESCAPES[e]
                self.i += 1
            elif e == "\r":   # backslash, CR LF
                out += b"\n"
                self.i += 2 if s[self.i + 1:self.i + 2] == "\n" else 1
            elif e.isdigit():
                j = self.i
                while j < len(s) and j < self.i + 3 and s[j].isdigit():
                    j += 1
                code = int(s[self.i:j])
                if code > 255:
                    raise self.error("bad escape", self.i - 1)
                out.append(code)
                self.i = j
            elif e == "x":
                try:
                    out.append(int(s[self.i + 1:self.i + 3], 16))
                except ValueError:
                    raise self.error("bad escape", self.i - 1) from None
                self.i += 3
            elif e == "z":
                self.i += 1
                while self.i < len(s) and s[self.i] in " \t\r\n\f\v":
                    self.i += 1
            elif e == "u" and s[self.i + 1:self.i + 2] == "{":
                end = s.find("}", self.i)
                try:
                    out += chr(int(s[self.i + 2:end], 16)).encode("utf-8")
                except ValueError:
                    raise self.error("bad escape", self.i - 1) from None
                self.i = end + 1
            else:
                raise self.error("bad escape", self.i - 1)
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("string is not UTF-8", start) from None

    def long_string(self) -> str:
        s = self.s
        start = self.i
        j = self.i + 1
        while j < len(s) and s[j] == "=":
            j += 1
        if s[j:j + 1] != "[":
            raise self.error("bad long string", start)
        close = "]" + "=" * (j - self.i - 1) + "]"
        end = s.find(close, j + 1)
        if end < 0:
            raise self.error("unfinished long string", start)
        text = s[j + 1:end]
        if text.startswith("\r\n"):
            text = text[2:]
        elif text.startswith("\n"):
            text = text[1:]
        self.i = end + len(close)
        return text

    def table(self, depth: int) -> Table:
        self.expect("{")
        t = Table()
        n = 0
        while True:
            c = self.peek()
            if c == "}":
                self.i += 1
                return t
            if c == "[" and self.s[self.i:self.i + 2] not in ("[[", "[="):
                self.i += 1
                key = self.value(depth)
                self.expect("]")
                self.expect("=")
                if key is None or (isinstance(key, float) and key != key):
                    raise self.error("a nil or NaN key")
                if isinstance(key, bool):
                    key = TRUE if key else FALSE
                v = self.value(depth)
                if v is not None:
                    t[key] = v
            else:
                save = self.i
                word = self.name()
                if word and word not in _KEYWORDS and self.peek() == "=":
                    self.i += 1
                    v = self.value(depth)
                    if v is not None:
                        t[word] = v
                else:
                    self.i = save
                    n += 1
                    v = self.value(depth)
                    if v is not None:
                        t[n] = v
            c = self.peek()
            if c in (",", ";"):
                self.i += 1
            elif c != "}":
                raise self.error("expected ',', ';' or '}'")

    def end(self) -> None:
        self.skip()
        if self.i != len(self.s):
            raise self.error("unexpected text after the data")


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LuaError(f"not UTF-8 at byte {e.start}") from None
    return data


def parse_dat(data: str | bytes):
    """The value of a ``.dat`` file: ``return <value>;``."""
    p = _Parser(_text(data))
    if p.name() != "return":
        raise p.error("expected 'return'")
    v = p.value()
    if p.peek() == ";":
        p.i += 1
    p.end()
    return v


def parse_list(data: str | bytes) -> list:
    """The items of a ``.list`` file: ``item(<value>);`` repeated."""
    p = _Parser(_text(data))
    items = []
    while p.peek():
        if p.name() != "item":
            raise p.error("expected 'item('")
        p.expect("(")
        items.append(p.value())
        p.expect(")")
        if p.peek() == ";":
            p.i += 1
    return items


XML_NS = "http://www.w3.org/XML/1998/namespace"


def to_element(t, parent_ns: str = "jabber:client", depth: int = 0) -> ET.Element:
    """A stanza stored by Prosody (``st.preserialize``: ``{name=, attr={}, [1]=child
    or text, ...}``) as an ElementTree element, namespaces in Clark notation; a child
    without ``xmlns`` inherits its parent's. LuaError if the table is not one."""
    if depth > MAX_DEPTH:
        raise LuaError("XML nested too deep")
    if not isinstance(t, Table) or not isinstance(t.get("name"), str) or not t["name"]:
        raise LuaError("not a stored XML element")
    attr = t.get("attr") or Table()
    if not isinstance(attr, Table):
        raise LuaError("element attributes are not a table")
    xmlns = attr.get("xmlns", parent_ns)
    if not isinstance(xmlns, str):
        raise LuaError("bad xmlns")
    name = t["name"]
    if ":" in name:   # a prefixed name Prosody kept as is
        name = name.split(":", 1)[1]
    el = ET.Element(f"{{{xmlns}}}{name}" if xmlns else name)
    for k, v in attr.items():
        if k == "xmlns" or not isinstance(k, str) or not isinstance(v, str):
            continue
        if k.startswith("xmlns:"):
            continue
        if "\x01" in k:
            ns_, _, local = k.partition("\x01")
            el.set(f"{{{ns_}}}{local}", v)
        elif k.startswith("xml:"):
            el.set(f"{{{XML_NS}}}{k[4:]}", v)
        else:
            el.set(k, v)
    last = None
    for child in t.array():
        if isinstance(child, str):
            if last is None:
                el.text = (el.text or "") + child
            else:
                last.tail = (last.tail or "") + child
        else:
            last = to_element(child, xmlns, depth + 1)
            el.append(last)
    return el

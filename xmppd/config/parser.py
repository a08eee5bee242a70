"""Parser: tokens -> a flat list of statements with constant values.

Two statement forms exist, as in a Prosody configuration:

* ``name = value`` (:class:`Assign`)
* ``Directive "arg" "arg2" { table }`` / ``Directive("arg")`` (:class:`Call`);
  what a directive means is decided by the loader, not here.

Values are constants, folded at parse time: strings, numbers, ``true``/``false``/
``nil``, tables, ``..`` concatenation, arithmetic (``60 * 60 * 24``) and
``ENV_NAME`` (the environment variable ``NAME``, or nil, as Prosody does).
Nothing else is evaluated: ``local``, ``if``, ``for``, ``function``, variables and
function calls inside values are refused with a clear error.

Lua tables become Python values:

* only positional items (or ``{}``) -> ``list``
* only keyed items -> ``dict``
* both -> ``dict`` whose positional items sit under integer keys ``1..n``
  (Lua's own numbering), next to the named keys.

Items whose value is ``nil`` are dropped from keyed tables (Lua semantics) and kept
as ``None`` in arrays.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from .lexer import ConfigError, Token, tokenize

__all__ = ["Value", "Assign", "Call", "parse", "lua_tostring"]

Pos = tuple[int, int]


@dataclass(frozen=True)
class Value:
    """A constant with its position; ``items`` gives the positions of a table's items
    (``list`` index or ``dict`` key -> (line, col)), empty for scalars."""

    value: Any
    line: int
    col: int
    items: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Assign:
    name: str
    value: Value
    line: int
    col: int


@dataclass(frozen=True)
class Call:
    """``func`` applied to one or more argument groups: ``Component "a" "muc"`` is
    ``Call("Component", ((Value("a"),), (Value("muc"),)))``."""

    func: str
    groups: tuple[tuple[Value, ...], ...]
    line: int
    col: int


_UNSUPPORTED = "is not supported: xmppd reads its configuration as data and does not run " \
               "Lua (no variables, conditions, loops or functions)"


_DIRECTIVE_ARG = {
    "VirtualHost": "host name", "Host": "host name", "host": "host name",
    "Component": "host name", "component": "host name",
    "Include": "file name", "include": "file name",
}


def lua_tostring(v: int | float) -> str:
    """A number as Lua 5.4 prints it (used by ``..``)."""
    if isinstance(v, int):
        return str(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if math.isnan(v):
        return "nan"
    s = "%.14g" % v
    if all(ch in "-0123456789" for ch in s):
        s += ".0"
    return s


def _type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "table"


MAX_DEPTH = 100   # nested expressions (tables, parentheses, operators): plenty for a config


class _Parser:
    def __init__(self, tokens: list[Token], filename: str, environ):
        self.toks = tokens
        self.pos = 0
        self.file = filename
        self.environ = environ
        self.depth = 0

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(tok, f"expressions nested more than {MAX_DEPTH} deep")

    # -- helpers -----------------------------------------------------------
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def is_op(self, tok: Token, *ops: str) -> bool:
        return tok.kind == "op" and tok.value in ops

    def error(self, tok: Token, message: str) -> ConfigError:
        return ConfigError(self.file, tok.line, tok.col, message)

    def unexpected(self, tok: Token, expected: str | None = None) -> ConfigError:
        msg = f"unexpected {tok.describe()}"
        if expected:
            msg += f"; expected {expected}"
        return self.error(tok, msg)

    # -- statements --------------------------------------------------------
    def parse_chunk(self) -> list[Assign | Call]:
        out: list[Assign | Call] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                return out
            if self.is_op(tok, ";"):
                self.next()
                continue
            if tok.kind == "keyword":
                if tok.value in ("true", "false", "nil", "not"):
                    raise self.unexpected(tok, "an option name or a directive such as VirtualHost")
                raise self.error(tok, f"'{tok.value}' {_UNSUPPORTED}")
            if tok.kind != "name":
                raise self.unexpected(tok, "an option name or a directive such as VirtualHost")
            out.append(self.parse_statement())
            after = self.peek()
            if not (after.kind in ("eof", "name", "keyword") or self.is_op(after, ";")):
                raise self.unexpected(after, "a new line with an option or a directive")

    def parse_statement(self) -> Assign | Call:
        name = self.next()
        tok = self.peek()
        if self.is_op(tok, "="):
            self.next()
            if self.peek().kind == "eof" or self.is_op(self.peek(), ";", "}", ")", "]"):
                raise self.error(self.peek(), f"expected a value after '{name.value} =', "
                                 f"found {self.peek().describe()}")
            value = self.parse_expr()
            return Assign(name.value, value, name.line, name.col)
        if tok.kind == "string" or self.is_op(tok, "{", "("):
            groups = []
            while True:
                tok = self.peek()
                if tok.kind == "string":
                    self.next()
                    groups.append((Value(tok.value, tok.line, tok.col),))
                elif self.is_op(tok, "{"):
                    groups.append((self.parse_table(),))
                elif self.is_op(tok, "("):
                    groups.append(self.parse_args())
                else:
                    break
            return Call(name.value, tuple(groups), name.line, name.col)
        if self.is_op(tok, ".", "[", ":"):
            raise self.error(tok, f"'{name.value}{tok.value}...' (fields and methods) "
                             f"{_UNSUPPORTED}; write 'name = value'")
        if self.is_op(tok, ","):
            raise self.error(tok, "multiple assignment 'a, b = ...' is not supported; "
                             "write one 'name = value' per option")
        if name.value in _DIRECTIVE_ARG:
            raise self.error(tok, f"expected a {_DIRECTIVE_ARG[name.value]} string after "
                             f"'{name.value}', found {tok.describe()}")
        if self.is_op(tok, "=="):
            raise self.error(tok, f"expected '=' after name '{name.value}', found '=='")
        raise self.error(tok, f"expected '=' or a string after name '{name.value}', "
                         f"found {tok.describe()}")

    def parse_args(self) -> tuple[Value, ...]:
        open_tok = self.next()  # "("
        args: list[Value] = []
        if self.is_op(self.peek(), ")"):
            self.next()
            return ()
        while True:
            args.append(self.parse_expr())
            tok = self.next()
            if self.is_op(tok, ")"):
                return tuple(args)
            if not self.is_op(tok, ","):
                raise self.error(tok, f"expected ',' or ')' to close the '(' at "
                                 f"{open_tok.line}:{open_tok.col}, found {tok.describe()}")

    # -- expressions (precedence climbing, Lua's order) --------------------
    # lowest: '..' (right assoc), then '+ -', then '* / // %', then unary '-',
    # then '^' (right assoc, binds tighter than unary minus on its left)
    def parse_expr(self) -> Value:
        self.enter(self.peek())
        try:
            left = self.parse_additive()
            tok = self.peek()
            if self.is_op(tok, ".."):
                self.next()
                right = self.parse_expr()
                return Value(self.concat(tok, left.value, right.value), left.line, left.col)
            if tok.kind == "keyword" and tok.value in ("and", "or") or \
                    self.is_op(tok, "==", "~=", "<", ">", "<=", ">="):
                raise self.error(tok, f"operator '{tok.value}' {_UNSUPPORTED}")
            return left
        finally:
            self.depth -= 1

    def parse_additive(self) -> Value:
        left = self.parse_multiplicative()
        while self.is_op(self.peek(), "+", "-"):
            op = self.next()
            right = self.parse_multiplicative()
            left = Value(self.arith(op, left.value, right.value), left.line, left.col)
        return left

    def parse_multiplicative(self) -> Value:
        left = self.parse_unary()
        while self.is_op(self.peek(), "*", "/", "//", "%"):
            op = self.next()
            right = self.parse_unary()
            left = Value(self.arith(op, left.value, right.value), left.line, left.col)
        return left

    def parse_unary(self) -> Value:
        tok = self.peek()
        if self.is_op(tok, "-"):
            self.next()
            self.enter(tok)
            try:
                operand = self.parse_unary()
            finally:
                self.depth -= 1
            v = operand.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(tok, f"cannot negate a {_type_name(v)} value")
            return Value(-v, tok.line, tok.col)
        if tok.kind == "keyword" and tok.value == "not" or self.is_op(tok, "#", "~"):
            raise self.error(tok, f"operator '{tok.value}' {_UNSUPPORTED}")
        return self.parse_power()

    def parse_power(self) -> Value:
        base = self.parse_primary()
        if self.is_op(self.peek(), "^"):
            op = self.next()
            exponent = self.parse_unary()  # right associative; 2^-1 is allowed
            return Value(self.arith(op, base.value, exponent.value), base.line, base.col)
        return base

    def parse_primary(self) -> Value:
        tok = self.peek()
        if tok.kind in ("string", "number"):
            self.next()
            return Value(tok.value, tok.line, tok.col)
        if tok.kind == "keyword":
            if tok.value in ("true", "false", "nil"):
                self.next()
                return Value({"true": True, "false": False, "nil": None}[tok.value],
                             tok.line, tok.col)
            raise self.error(tok, f"'{tok.value}' {_UNSUPPORTED}")
        if self.is_op(tok, "{"):
            return self.parse_table()
        if self.is_op(tok, "("):
            self.next()
            inner = self.parse_expr()
            close = self.next()
            if not self.is_op(close, ")"):
                raise self.error(close, f"expected ')' to close the '(' at {tok.line}:{tok.col}, "
                                 f"found {close.describe()}")
            return Value(inner.value, tok.line, tok.col, inner.items)
        if tok.kind == "name":
            self.next()
            if tok.value.startswith("ENV_") and not (
                    self.is_op(self.peek(), "(", "{", ".", "[", ":") or self.peek().kind == "string"):
                return Value(self.environ.get(tok.value[4:]), tok.line, tok.col)
            nxt = self.peek()
            if self.is_op(nxt, "(", ".", ":", "[") or nxt.kind == "string" or self.is_op(nxt, "{"):
                raise self.error(tok, f"calling '{tok.value}' in a value {_UNSUPPORTED}")
            raise self.error(tok, f"unknown name '{tok.value}': variables are not supported "
                             f"(write the value itself, or quote it if it is a string)")
        raise self.error(tok, f"expected a value, found {tok.describe()}")

    def parse_table(self) -> Value:
        open_tok = self.next()  # "{"
        array: list[Any] = []
        array_pos: list[Pos] = []
        keyed: dict[Any, Any] = {}
        keyed_pos: dict[Any, Pos] = {}
        while True:
            tok = self.peek()
            if self.is_op(tok, "}"):
                self.next()
                break
            if tok.kind == "eof":
                raise self.error(tok, f"expected '}}' to close the table opened at "
                                 f"{open_tok.line}:{open_tok.col}, found end of file")
            if self.is_op(tok, "["):
                self.next()
                key = self.parse_expr()
                close = self.next()
                if not self.is_op(close, "]"):
                    raise self.error(close, f"expected ']' after table key, found {close.describe()}")
                eq = self.next()
                if not self.is_op(eq, "="):
                    raise self.error(eq, f"expected '=' after '[...]' in table, found {eq.describe()}")
                k = key.value
                if k is None or not isinstance(k, (str, int, float, bool)):
                    raise self.error(tok, f"table keys must be strings, numbers or booleans, "
                                     f"not {_type_name(k)}")
                if isinstance(k, float) and k.is_integer():
                    k = int(k)
                self.add_keyed(keyed, keyed_pos, k, self.parse_expr(), tok)
            elif tok.kind == "name" and self.is_op(self.peek(1), "="):
                self.next()
                self.next()
                self.add_keyed(keyed, keyed_pos, tok.value, self.parse_expr(), tok)
            else:
                item = self.parse_expr()
                array.append(item.value)
                array_pos.append((item.line, item.col))
            sep = self.peek()
            if self.is_op(sep, ",", ";"):
                self.next()
            elif not self.is_op(sep, "}"):
                if sep.kind == "eof":
                    raise self.error(sep, f"expected '}}' to close the table opened at "
                                     f"{open_tok.line}:{open_tok.col}, found end of file")
                raise self.error(sep, f"expected ',' or ';' or '}}' in the table opened at "
                                 f"{open_tok.line}:{open_tok.col}, found {sep.describe()}")
        if not keyed:
            return Value(array, open_tok.line, open_tok.col, dict(enumerate(array_pos)))
        if array:
            merged: dict[Any, Any] = {}
            merged_pos: dict[Any, Pos] = {}
            for k, v in keyed.items():
                merged[k] = v
                merged_pos[k] = keyed_pos[k]
            for n, (v, p) in enumerate(zip(array, array_pos), start=1):
                merged[n] = v  # positional items win over [n] = ..., as in Lua
                merged_pos[n] = p
            return Value(merged, open_tok.line, open_tok.col, merged_pos)
        return Value(keyed, open_tok.line, open_tok.col, keyed_pos)

    def add_keyed(self, keyed: dict, keyed_pos: dict, key: Any, value: Value, tok: Token) -> None:
        if value.value is None:
            keyed.pop(key, None)
            keyed_pos.pop(key, None)
            return
        keyed[key] = value.value
        keyed_pos[key] = (tok.line, tok.col)

    # -- constant folding --------------------------------------------------
    def concat(self, op: Token, a: Any, b: Any) -> str:
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise self.error(op, f"cannot concatenate a {_type_name(v)} value with '..'")
        sa = a if isinstance(a, str) else lua_tostring(a)
        sb = b if isinstance(b, str) else lua_tostring(b)
        return sa + sb

    def arith(self, op: Token, a: Any, b: Any) -> int | float:
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(op, f"cannot do arithmetic ('{op.value}') on a "
                                 f"{_type_name(v)} value")
        o = op.value
        try:
            if o == "+":
                return a + b
            if o == "-":
                return a - b
            if o == "*":
                return a * b
            if o == "/":
                return a / b
            if o == "//":
                return a // b if isinstance(a, int) and isinstance(b, int) else float(math.floor(a / b))
            if o == "%":
                return a % b
            if o == "^":
                return float(a) ** float(b)
        except ZeroDivisionError:
            raise self.error(op, "division by zero") from None
        except OverflowError:
            raise self.error(op, "number too large") from None
        raise AssertionError(o)


def parse(text: str, filename: str = "<string>", environ=None) -> list[Assign | Call]:
    """Parse configuration text into statements; raises :class:`ConfigError`.

    ``environ`` (default ``os.environ``) supplies ``ENV_NAME`` values.
    """
    tokens = tokenize(text, filename)
    return _Parser(tokens, filename, os.environ if environ is None else environ).parse_chunk()

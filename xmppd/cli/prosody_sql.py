"""A reader for Prosody's SQL storage in SQLite (``storage = "sql"``, ``sql = { driver =
"SQLite3", database = "prosody.sqlite" }``; ``mod_storage_sql``), giving the same values
the flat-file reader (:mod:`.luadata`) gives, so one importer serves both.

Prosody keeps keyval and map stores in the table ``prosody`` (``host, user, store, key,
type, value``): a string key of the stored Lua table is one row; the other keys (array
entries, ``[false]``) go together in one row with the key ``""``. ``type`` says how
``value`` is written: ``string``, ``number``, ``boolean``, ``json`` (Prosody's JSON,
with ``__array`` and ``__hash`` for what JSON objects cannot hold) or ``xml`` (a
stanza). Archives (offline messages, PEP items) are in ``prosodyarchive`` (``host,
user, store, key, when, with, type, value``), in ``sort_id`` order. The database is
opened read-only.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from .luadata import FALSE, TRUE, LuaError, Table

XML_NS = "http://www.w3.org/XML/1998/namespace"


class SqlError(ValueError):
    """The file is not a Prosody SQLite database, or a value cannot be read."""


def _key(k):
    if k is False:
        return FALSE
    if k is True:
        return TRUE
    if isinstance(k, float) and k.is_integer():
        return int(k)
    return k


def from_json(v):
    """Prosody's JSON (``util/json.lua``) as the flat-file reader's values."""
    if isinstance(v, list):
        return Table({i + 1: from_json(x) for i, x in enumerate(v)})
    if isinstance(v, dict):
        t = Table()
        for k, x in v.items():
            if k not in ("__array", "__hash"):
                t[k] = from_json(x)
        arr = v.get("__array")
        if isinstance(arr, list):
            n = len(t.array())
            for i, x in enumerate(arr):
                t[n + i + 1] = from_json(x)
        h = v.get("__hash")
        if isinstance(h, list):
            for i in range(0, len(h) - 1, 2):
                t[_key(h[i])] = from_json(h[i + 1])
        return t
    return v


def element_to_table(el, parent_ns: str = "") -> Table:
    """An ElementTree element as Prosody's ``st.preserialize`` table (what
    :func:`.luadata.to_element` reads)."""
    tag = el.tag
    ns, name = (tag[1:].split("}", 1) if tag.startswith("{") else ("", tag))
    attr = Table()
    if ns != (parent_ns or ""):     # a stanza without xmlns: jabber:client (to_element's default)
        attr["xmlns"] = ns
    for k, v in el.attrib.items():
        if k.startswith("{"):
            a_ns, local = k[1:].split("}", 1)
            attr["xml:" + local if a_ns == XML_NS else f"{a_ns}\x01{local}"] = v
        else:
            attr[k] = v
    t = Table(name=name, attr=attr)
    n = 0
    if el.text:
        n += 1
        t[n] = el.text
    for child in el:
        n += 1
        t[n] = element_to_table(child, ns)
        if child.tail:
            n += 1
            t[n] = child.tail
    return t


def parse_xml(text: str):
    """A stanza as Prosody serializes it (never a DTD, comment, PI or CDATA)."""
    import xml.etree.ElementTree as ET
    if "<!" in text or "<?" in text:
        raise ValueError("declarations and processing instructions are not stanza XML")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from None


def decode(type_: str, value: str):
    if type_ == "string":
        return value
    if type_ == "number":
        try:
            f = float(value)
        except ValueError:
            raise SqlError(f"bad number {value!r}") from None
        return int(f) if f.is_integer() and abs(f) < 2 ** 53 else f
    if type_ == "boolean":
        if value in ("true", "false"):
            return value == "true"
        raise SqlError(f"bad boolean {value!r}")
    if type_ == "json":
        try:
            return from_json(json.loads(value))
        except ValueError as exc:
            raise SqlError(f"bad JSON: {exc}") from None
    if type_ == "xml":
        try:
            return element_to_table(parse_xml(value))
        except ValueError as exc:
            raise SqlError(f"bad XML: {exc}") from None
    raise SqlError(f"unknown value type {type_!r}")


class ProsodySQL:
    """One Prosody SQLite database, read-only."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:
            raise SqlError(f"{path}: {exc}") from None
        if "prosody" not in tables:
            self.db.close()
            raise SqlError(f"{path}: not a Prosody database (no table 'prosody')")
        self.has_archive = "prosodyarchive" in tables

    def close(self) -> None:
        self.db.close()

    def hosts(self) -> set[str]:
        rows = self.db.execute('SELECT DISTINCT "host" FROM "prosody"').fetchall()
        if self.has_archive:
            rows += self.db.execute('SELECT DISTINCT "host" FROM "prosodyarchive"').fetchall()
        return {r[0] for r in rows}

    def keyval(self, host: str, store: str) -> dict[str, tuple[str, object]]:
        """user → (digest, the stored table or value) for a keyval/map store; a value
        that cannot be read gives ``(digest, SqlError)``."""
        rows = self.db.execute(
            'SELECT "user", "key", "type", "value" FROM "prosody" WHERE "host"=? AND "store"=? '
            'ORDER BY "user", "key"', (host, store)).fetchall()
        by_user: dict[str, list] = {}
        for user, key, type_, value in rows:
            if user:
                by_user.setdefault(user, []).append((key, type_, value))
        out = {}
        for user, rs in by_user.items():
            digest = hashlib.sha256(json.dumps(rs).encode()).hexdigest()
            try:
                t = Table()
                for key, type_, value in rs:
                    v = decode(type_, value)
                    if key != "":
                        t[key] = v
                    elif isinstance(v, Table):
                        t.update(v)
                out[user] = (digest, t)
            except (SqlError, LuaError) as exc:
                out[user] = (digest, SqlError(f"{store} key {key!r}: {exc}"))
        return out

    def archive(self, host: str, store: str, user: str | None = None) -> dict[str, tuple[str, object]]:
        """user → (digest, items) of an archive store, each item the flat-file shape
        (the stanza's table with ``key``, ``when``, ``with``)."""
        if not self.has_archive:
            return {}
        q = ('SELECT "user", "key", "when", "with", "type", "value" FROM "prosodyarchive" '
             'WHERE "host"=? AND "store"=?')
        args: tuple = (host, store)
        if user is not None:
            q += ' AND "user"=?'
            args += (user,)
        by_user: dict[str, list] = {}
        for row in self.db.execute(q + ' ORDER BY "user", "sort_id"', args):
            if row[0]:
                by_user.setdefault(row[0], []).append(row[1:])
        out = {}
        for u, rs in by_user.items():
            digest = hashlib.sha256(json.dumps(rs).encode()).hexdigest()
            items = []
            try:
                for key, when, with_, type_, value in rs:
                    v = decode(type_, value)
                    if not isinstance(v, Table):
                        raise SqlError(f"item {key!r} is not XML")
                    v["key"], v["when"] = key, when
                    if with_:
                        v["with"] = with_
                    items.append(v)
                out[u] = (digest, items)
            except SqlError as exc:
                out[u] = (digest, SqlError(f"{store}: {exc}"))
        return out

    def archive_stores(self, host: str, prefix: str) -> list[str]:
        if not self.has_archive:
            return []
        rows = self.db.execute('SELECT DISTINCT "store" FROM "prosodyarchive" WHERE "host"=?',
                               (host,)).fetchall()
        return sorted(r[0] for r in rows if r[0].startswith(prefix))

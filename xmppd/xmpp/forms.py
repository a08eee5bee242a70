"""Data forms (XEP-0004): the one helper every module builds and reads forms with.

Built on slixmpp's ``Form`` (registered in :mod:`.stanzas`)::

    x = forms.build(ns.MAM, [("with", "jid-single"), ("start", "text-single")])
    x = forms.build(FORM_TYPE, [forms.Field("muc#roomconfig_roomname", "text-single",
                                            "My room", label="Title")], type="form")

    sub = forms.read(payload.find(forms.X), form_type=ns.MAM, allowed={"with", "start"})
    sub.get("with")        # first value, stripped; None when absent or empty
    sub.all("ids")         # every non-empty value, stripped
    sub.boolean("muc#roomconfig_persistentroom")

A form that is not what was asked for (wrong ``type``, another ``FORM_TYPE``, a
field that is not allowed) raises ``StanzaError("bad-request")``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field as dc_field
from typing import Any, Iterable

from . import ns
from .errors import StanzaError
from .stanzas import Form

X = f"{{{ns.DATA}}}x"
TRUE = frozenset({"1", "true"})


@dataclass
class Field:
    """One field to build: its value may be a string, a bool, a number or a list."""
    var: str
    type: str | None = None
    value: Any = None
    label: str | None = None
    options: Iterable = ()          # values, or (value, label) pairs
    required: bool = False
    desc: str | None = None


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return "" if v is None else str(v)


def new(form_type: str | None = None, *, type: str = "form", title: str | None = None,
        instructions: str | None = None) -> Form:
    """An empty form (slixmpp ``Form``) with its hidden ``FORM_TYPE``."""
    f = Form()
    f["type"] = type
    if title:
        f["title"] = title
    if instructions:
        f["instructions"] = instructions
    if form_type:
        add(f, Field("FORM_TYPE", "hidden", form_type))
    return f


def add(form: Form, fld: Field) -> None:
    """Append one field; only ``form`` and ``result`` forms carry labels and options."""
    ff = form.add_field(var=fld.var, ftype=fld.type)
    describe = form["type"] in ("form", "result")
    if describe:
        if fld.label:
            ff["label"] = fld.label
        if fld.desc:
            ff["desc"] = fld.desc
        if fld.required:
            ff["required"] = True
        for opt in fld.options:
            value, label = opt if isinstance(opt, tuple) else (opt, None)
            ff.add_option(value=_value_text(value), label=label or "")
    v = fld.value
    if v is None:
        return
    values = list(v) if isinstance(v, (list, tuple, set, frozenset)) else [v]
    tag = f"{{{ns.DATA}}}value"
    for item in values:
        ET.SubElement(ff.xml, tag).text = _value_text(item)


def build(form_type: str | None, fields: Iterable[Field | tuple], *, type: str = "form",
          title: str | None = None, instructions: str | None = None) -> ET.Element:
    """The ``<x xmlns='jabber:x:data'/>`` element; a field may be given as a
    ``(var, type[, value])`` tuple."""
    f = new(form_type, type=type, title=title, instructions=instructions)
    for fld in fields:
        add(f, fld if isinstance(fld, Field) else Field(*fld))
    return f.xml


@dataclass
class Submission:
    """A form as received: its type, FORM_TYPE and the raw values of each field."""
    type: str
    form_type: str | None
    fields: dict[str, list[str]] = dc_field(default_factory=dict)

    def __contains__(self, var: str) -> bool:
        return var in self.fields

    def all(self, var: str) -> list[str]:
        """The field's non-empty values, stripped."""
        return [s for s in (v.strip() for v in self.fields.get(var, ())) if s]

    def get(self, var: str, default: str | None = None) -> str | None:
        """The field's first non-empty value, stripped."""
        values = self.all(var)
        return values[0] if values else default

    def raw(self, var: str) -> list[str]:
        """The field's values as sent (empty ones included)."""
        return list(self.fields.get(var, ()))

    def boolean(self, var: str, default: bool = False) -> bool:
        v = self.get(var)
        return default if v is None else v.lower() in TRUE


def read(el: ET.Element | None, *, form_type: str | None = None,
         allowed: Iterable[str] | None = None, types: Iterable[str] = ("submit",)) -> Submission:
    """Read a form a client sent. ``el`` None gives an empty submission; a form of
    another type, ``FORM_TYPE`` or with a field outside ``allowed`` is a bad request."""
    if el is None:
        return Submission("submit", None)
    form = Form(xml=el)
    ftype = el.get("type") or "submit"
    if ftype not in types:
        raise StanzaError("bad-request", f"a form of type {' or '.join(types)} is expected here")
    values: dict[str, list[str]] = {}
    for ff in form["fields"]:
        var = ff["var"]
        if not var:
            continue
        raw = ff.get_value(convert=False)
        values[var] = [] if raw is None else ([raw] if isinstance(raw, str) else list(raw))
    sub = Submission(ftype, None, values)
    sub.form_type = sub.get("FORM_TYPE")
    if form_type is not None and sub.form_type not in (None, form_type):
        raise StanzaError("bad-request", f"unknown FORM_TYPE {sub.form_type}")
    values.pop("FORM_TYPE", None)
    if allowed is not None:
        allowed = set(allowed)
        for var in values:
            if var not in allowed:
                raise StanzaError("bad-request", f"unknown field {var!r}")
    return sub

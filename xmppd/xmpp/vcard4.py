"""vCard4 (XEP-0292, RFC 6351) ↔ vcard-temp (XEP-0054): the field mapping of
Prosody's ``vcard_legacy``, sans I/O.

* :func:`temp_to_vcard4` and :func:`vcard4_to_temp` convert whole cards;
* :func:`merge_temp_into_vcard4` and :func:`merge_vcard4_into_temp` replace, in
  an existing card, only the fields the mapping covers (a field only one side
  knows — a vCard4 ``gender``, a vcard-temp ``PHOTO`` or ``ORGUNIT`` — is kept),
  so that a profile edited through one protocol loses nothing the other holds;
* :func:`nickname` / :func:`with_nickname` read and set the vcard-temp
  ``NICKNAME`` that XEP-0172's nickname mirrors.

The mapping (Prosody's): FN↔fn/text, N↔n (FAMILY↔surname, GIVEN↔given,
MIDDLE↔additional, PREFIX↔prefix, SUFFIX↔suffix), NICKNAME, TITLE, ROLE,
CATEGORIES ↔ …/text, URL↔url/uri, BDAY↔bday/date, DESC↔note/text,
EMAIL/USERID↔email/text, TEL/NUMBER↔tel/uri (``tel:``), ADR↔adr, JABBERID↔impp
(``xmpp:``), ORG/ORGNAME↔org/text; HOME/WORK ↔ parameters/type/text. Prosody
writes a vCard4 ``note`` back as a non-standard ``NOTE``; here it is ``DESC``,
the vcard-temp field it came from.
"""
from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"     # the element (XEP-0292)
NODE = "urn:xmpp:vcard4"                        # its PEP node
VT = "{vcard-temp}"
V4 = "{" + VCARD4 + "}"

# vCard4 element -> the child holding its value; vcard-temp name = upper case
_SIMPLE = {"nickname": "text", "title": "text", "role": "text", "categories": "text",
           "url": "uri", "bday": "date"}
_N = (("FAMILY", "surname"), ("GIVEN", "given"), ("MIDDLE", "additional"),
      ("PREFIX", "prefix"), ("SUFFIX", "suffix"))
_ADR = (("POBOX", "pobox"), ("EXTADD", "ext"), ("STREET", "street"),
        ("LOCALITY", "locality"), ("REGION", "region"), ("PCODE", "code"),
        ("CTRY", "country"))

# the fields the mapping covers, on each side
TEMP_FIELDS = frozenset({"FN", "N", "NICKNAME", "TITLE", "ROLE", "CATEGORIES", "URL", "BDAY",
                         "DESC", "NOTE", "EMAIL", "TEL", "ADR", "JABBERID", "ORG"})
V4_FIELDS = frozenset({"fn", "n", "note", "email", "tel", "adr", "impp", "org", *_SIMPLE})


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


def _local(tag: str, prefix: str) -> str | None:
    return tag[len(prefix):] if tag.startswith(prefix) else None


def _sub(parent: ET.Element, tag: str, text: str | None) -> None:
    if text:
        ET.SubElement(parent, tag).text = text


def _v4_kind(el: ET.Element) -> str | None:
    t = _text(el.find(f"{V4}parameters/{V4}type/{V4}text"))
    return t if t in ("home", "work") else None


def _temp_kind(el: ET.Element) -> str | None:
    for k in ("HOME", "WORK"):
        if el.find(VT + k) is not None:
            return k.lower()
    return None


def _v4_field(name: str, value_tag: str, value: str | None, kind: str | None = None
              ) -> ET.Element | None:
    if not value:
        return None
    el = ET.Element(V4 + name)
    if kind:
        p = ET.SubElement(ET.SubElement(ET.SubElement(el, V4 + "parameters"), V4 + "type"),
                          V4 + "text")
        p.text = kind
    _sub(el, V4 + value_tag, value)
    return el


# -- vcard-temp -> vCard4 -------------------------------------------------------------

def temp_fields_to_vcard4(vt: ET.Element) -> list[ET.Element]:
    """The vCard4 fields of a vcard-temp ``<vCard/>``, in its order."""
    out: list[ET.Element] = []
    for tag in vt:
        name = _local(tag.tag, VT)
        if name is None:
            continue
        low = name.lower()
        el: ET.Element | None = None
        if name == "FN":
            el = _v4_field("fn", "text", _text(tag))
        elif name == "N":
            parts = [(v4, _text(tag.find(VT + t))) for t, v4 in _N]
            if any(v for _, v in parts):
                el = ET.Element(V4 + "n")
                for v4, v in parts:
                    _sub(el, V4 + v4, v)
        elif low in _SIMPLE:
            el = _v4_field(low, _SIMPLE[low], _text(tag))
        elif name in ("DESC", "NOTE"):
            el = _v4_field("note", "text", _text(tag))
        elif name == "EMAIL":
            el = _v4_field("email", "text", _text(tag.find(VT + "USERID")), _temp_kind(tag))
        elif name == "TEL":
            num = _text(tag.find(VT + "NUMBER"))
            el = _v4_field("tel", "uri", f"tel:{num}" if num else None, _temp_kind(tag))
        elif name == "ADR":
            parts = [(v4, _text(tag.find(VT + t))) for t, v4 in _ADR]
            if any(v for _, v in parts):
                el = ET.Element(V4 + "adr")
                kind = _temp_kind(tag)
                if kind:
                    ET.SubElement(ET.SubElement(ET.SubElement(el, V4 + "parameters"),
                                                V4 + "type"), V4 + "text").text = kind
                for v4, v in parts:
                    _sub(el, V4 + v4, v)
        elif name == "JABBERID":
            jid = _text(tag)
            el = _v4_field("impp", "uri", f"xmpp:{jid}" if jid else None)
        elif name == "ORG":
            el = _v4_field("org", "text", _text(tag.find(VT + "ORGNAME")))
        if el is not None:
            out.append(el)
    return out


def temp_to_vcard4(vt: ET.Element) -> ET.Element:
    """A ``<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>`` from a vcard-temp."""
    out = ET.Element(V4 + "vcard")
    out.extend(temp_fields_to_vcard4(vt))
    return out


def merge_temp_into_vcard4(v4: ET.Element | None, vt: ET.Element) -> ET.Element:
    """``v4`` with the mapped fields replaced by those of ``vt`` (others kept)."""
    out = ET.Element(V4 + "vcard")
    if v4 is not None:
        out.extend(copy.deepcopy(c) for c in v4 if _local(c.tag, V4) not in V4_FIELDS)
    out.extend(temp_fields_to_vcard4(vt))
    return out


# -- vCard4 -> vcard-temp -------------------------------------------------------------

def vcard4_fields_to_temp(v4: ET.Element) -> list[ET.Element]:
    """The vcard-temp fields of a vCard4 ``<vcard/>``, FN and N first."""
    out: list[ET.Element] = []

    def child(el, name):
        return _text(el.find(V4 + name))

    def kind(src, dst):
        k = _v4_kind(src)
        if k:
            ET.SubElement(dst, VT + k.upper())

    fn = v4.find(V4 + "fn")
    if fn is not None and child(fn, "text"):
        e = ET.Element(VT + "FN")
        e.text = child(fn, "text")
        out.append(e)
    n = v4.find(V4 + "n")
    if n is not None and any(child(n, b) for _, b in _N):
        e = ET.Element(VT + "N")
        for a, b in _N:
            _sub(e, VT + a, child(n, b))
        out.append(e)
    for tag in v4:
        name = _local(tag.tag, V4)
        e = None
        if name in _SIMPLE and child(tag, _SIMPLE[name]):
            e = ET.Element(VT + name.upper())
            e.text = child(tag, _SIMPLE[name])
        elif name == "note" and child(tag, "text"):
            e = ET.Element(VT + "DESC")
            e.text = child(tag, "text")
        elif name == "email" and child(tag, "text"):
            e = ET.Element(VT + "EMAIL")
            ET.SubElement(e, VT + "INTERNET")
            kind(tag, e)
            _sub(e, VT + "USERID", child(tag, "text"))
        elif name == "tel" and child(tag, "uri"):
            uri = child(tag, "uri")
            e = ET.Element(VT + "TEL")
            kind(tag, e)
            _sub(e, VT + "NUMBER", uri[4:] if uri.startswith("tel:") else uri)
        elif name == "adr" and any(child(tag, b) for _, b in _ADR):
            e = ET.Element(VT + "ADR")
            kind(tag, e)
            for a, b in _ADR:
                _sub(e, VT + a, child(tag, b))
        elif name == "impp" and (child(tag, "uri") or "").startswith("xmpp:") \
                and child(tag, "uri")[5:]:
            e = ET.Element(VT + "JABBERID")
            e.text = child(tag, "uri")[5:]
        elif name == "org" and child(tag, "text"):
            e = ET.Element(VT + "ORG")
            _sub(e, VT + "ORGNAME", child(tag, "text"))
        if e is not None:
            out.append(e)
    return out


def vcard4_to_temp(v4: ET.Element, photo: tuple[str | None, str] | None = None) -> ET.Element:
    """A vcard-temp ``<vCard/>`` from a vCard4, with ``photo`` (type, base64) as its
    ``PHOTO`` when given."""
    out = ET.Element(VT + "vCard")
    out.extend(vcard4_fields_to_temp(v4))
    if photo is not None:
        set_photo(out, photo)
    return out


def merge_vcard4_into_temp(vt: ET.Element | None, v4: ET.Element) -> ET.Element:
    """``vt`` with the mapped fields replaced by those of ``v4`` (``PHOTO`` and the
    fields vCard4 has no place for are kept; ``ORG`` keeps its ``ORGUNIT``s)."""
    out = ET.Element(VT + "vCard")
    old_org = vt.find(VT + "ORG") if vt is not None else None
    if vt is not None:
        out.extend(copy.deepcopy(c) for c in vt if _local(c.tag, VT) not in TEMP_FIELDS)
    for f in vcard4_fields_to_temp(v4):
        if f.tag == VT + "ORG" and old_org is not None:
            f.extend(copy.deepcopy(u) for u in old_org.findall(VT + "ORGUNIT"))
        out.append(f)
    return out


# -- pieces ---------------------------------------------------------------------------

def set_photo(vt: ET.Element, photo: tuple[str | None, str] | None) -> None:
    """Replace ``vt``'s ``PHOTO`` by (type, base64 data); None removes it."""
    for old in vt.findall(VT + "PHOTO"):
        vt.remove(old)
    if photo is not None:
        p = ET.SubElement(vt, VT + "PHOTO")
        _sub(p, VT + "TYPE", photo[0])
        _sub(p, VT + "BINVAL", photo[1])


def nickname(card: ET.Element) -> str | None:
    """The nickname of a vcard-temp or of a vCard4."""
    if card.tag == V4 + "vcard":
        return _text(card.find(f"{V4}nickname/{V4}text"))
    return _text(card.find(VT + "NICKNAME"))


def with_nickname(vt: ET.Element | None, nick: str) -> ET.Element:
    """A copy of ``vt`` (or a new vcard-temp) whose ``NICKNAME`` is ``nick``."""
    out = copy.deepcopy(vt) if vt is not None else ET.Element(VT + "vCard")
    old = out.findall(VT + "NICKNAME")
    if old:
        old[0].text = nick
        for extra in old[1:]:
            out.remove(extra)
    else:
        ET.SubElement(out, VT + "NICKNAME").text = nick
    return out

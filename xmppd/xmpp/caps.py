"""Entity capabilities (XEP-0115) hashing, sans I/O: the §5 verification string
of a disco#info ``<query/>`` and its ``ver`` — what the server advertises of
itself (disco) and checks of others (pep)."""
from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

from . import ns

HASHES = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384",
          "sha-512": "sha512"}


def _form_string(form: ET.Element) -> tuple[str, str] | None:
    fields = {}
    form_type = None
    for f in form.findall(ns.q(ns.DATA, "field")):
        var = f.get("var")
        values = sorted(v.text or "" for v in f.findall(ns.q(ns.DATA, "value")))
        if var == "FORM_TYPE":
            form_type = values[0] if values else ""
            continue
        if var is not None:
            fields[var] = values
    if form_type is None:
        return None   # forms without FORM_TYPE are ignored (§5.4)
    s = form_type + "<"
    for var in sorted(fields):
        s += var + "<" + "".join(v + "<" for v in fields[var])
    return form_type, s


def verification_string(query: ET.Element) -> str:
    idents = []
    for i in query.findall(ns.q(ns.DISCO_INFO, "identity")):
        idents.append("/".join((i.get("category", ""), i.get("type", ""),
                                i.get(ns.XML_LANG, ""), i.get("name", ""))) + "<")
    s = "".join(sorted(idents))
    feats = sorted(f.get("var", "") for f in query.findall(ns.q(ns.DISCO_INFO, "feature")))
    s += "".join(f + "<" for f in feats)
    forms = [fs for fs in (_form_string(x) for x in query.findall(ns.q(ns.DATA, "x"))) if fs]
    for _t, fs in sorted(forms):
        s += fs
    return s


def compute_ver(query: ET.Element, algo: str = "sha-1") -> str:
    digest = hashlib.new(HASHES[algo], verification_string(query).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")

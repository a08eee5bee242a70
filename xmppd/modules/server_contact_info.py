"""Contact Addresses for XMPP Services (XEP-0157): a XEP-0128 data form in the
server's disco#info, from the ``contact_info`` option::

    contact_info = {
        admin = { "xmpp:joe@falcot.com", "mailto:joe@falcot.com" };
        abuse = "mailto:abuse@falcot.com";
    }

Keys are the XEP-0157 field names without ``-addresses`` (abuse, admin,
feedback, sales, security, status, support); a key may hold one URI or a list.
Without ``contact_info`` the ``admins`` are listed as ``xmpp:`` admin addresses.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import Option
from xmppd.xmpp import forms, ns

PROTOCOLS = ["XEP-0157", "XEP-0128"]
OPTIONS = [
    Option("contact_info", "table", None, "both",
           "Contact addresses shown in disco#info: { admin = { \"xmpp:...\", \"mailto:...\" }, "
           "abuse = ..., feedback = ..., sales = ..., security = ..., status = ..., support = ... }. "
           "Default: the admins' xmpp: addresses."),
]
KINDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")


def _uris(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):     # a Lua list read as a table
        return [str(value[k]) for k in sorted(value, key=str)]
    return [str(v) for v in value]


def build_form(info: dict) -> ET.Element:
    """The ``result`` form of XEP-0157: one ``list-multi`` field per kind given."""
    return forms.build(ns.SERVERINFO, [
        forms.Field(f"{kind}-addresses", "list-multi", _uris(info[kind]))
        for kind in KINDS if info.get(kind) is not None
    ], type="result")


def contact_info(m) -> dict:
    """The option, or the admins' ``xmpp:`` addresses without it."""
    info = m.get_option("contact_info")
    if info is None:
        admins = m.host.get_option("admins") or []
        info = {"admin": [f"xmpp:{a}" for a in admins]} if admins else {}
    return info


def setup(m) -> None:
    info = contact_info(m)
    unknown = sorted(str(k) for k in info if k not in KINDS)
    if unknown:
        m.log.warning("contact_info: unknown kinds %s ignored (known: %s)",
                      ", ".join(unknown), ", ".join(KINDS))
    m.add_extension(build_form(info))

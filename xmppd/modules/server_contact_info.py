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

from xmppd.config.options import Option

PROTOCOLS = ["XEP-0157", "XEP-0128"]
OPTIONS = [
    Option("contact_info", "table", None, "both",
           "Contact addresses shown in disco#info: { admin = { \"xmpp:...\", \"mailto:...\" }, "
           "abuse = ..., feedback = ..., sales = ..., security = ..., status = ..., support = ... }. "
           "Default: the admins' xmpp: addresses."),
]
NS_DATA = "jabber:x:data"
FORM_TYPE = "http://jabber.org/network/serverinfo"
KINDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")


def build_form(info: dict) -> ET.Element:
    x = ET.Element(f"{{{NS_DATA}}}x", {"type": "result"})
    f = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": "FORM_TYPE", "type": "hidden"})
    ET.SubElement(f, f"{{{NS_DATA}}}value").text = FORM_TYPE
    for kind in KINDS:
        uris = info.get(kind)
        if uris is None:
            continue
        if isinstance(uris, str):
            uris = [uris]
        elif isinstance(uris, dict):
            uris = [uris[k] for k in sorted(uris, key=str)]
        f = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": f"{kind}-addresses", "type": "list-multi"})
        for uri in uris:
            ET.SubElement(f, f"{{{NS_DATA}}}value").text = str(uri)
    return x


def setup(m) -> None:
    info = m.get_option("contact_info")
    if info is None:
        admins = m.host.get_option("admins") or []
        info = {"admin": [f"xmpp:{a}" for a in admins]} if admins else {}
    unknown = sorted(str(k) for k in info if k not in KINDS)
    if unknown:
        m.log.warning("contact_info: unknown kinds %s ignored (known: %s)",
                      ", ".join(unknown), ", ".join(KINDS))
    m.add_extension(build_form(info))

"""Software Version (XEP-0092): name, version and (unless hidden) the OS."""
from __future__ import annotations

import platform
import xml.etree.ElementTree as ET

from xmppd.moduleapi import Option
from xmppd.xmpp import ns

PROTOCOLS = ["XEP-0092"]
OPTIONS = [
    Option("hide_os_type", "boolean", False, "both", "Do not reveal the operating system in version replies."),
]


def version_query(version: str, *, hide_os: bool) -> ET.Element:
    q = ET.Element(ns.q(ns.VERSION, "query"))
    ET.SubElement(q, ns.q(ns.VERSION, "name")).text = "xmppd"
    ET.SubElement(q, ns.q(ns.VERSION, "version")).text = version
    if not hide_os:
        ET.SubElement(q, ns.q(ns.VERSION, "os")).text = f"{platform.system()} {platform.release()}".strip()
    return q


def setup(m) -> None:
    m.add_feature(ns.VERSION)
    m.hook_iq("get", ns.VERSION, "query",
              lambda event: version_query(m.server.version, hide_os=m.get_option("hide_os_type")))

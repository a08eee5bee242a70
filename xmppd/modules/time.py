"""Entity Time (XEP-0202): the server's time in UTC."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp import ns
from xmppd.xmpp.time import utc_stamp

PROTOCOLS = ["XEP-0202"]
OPTIONS: list = []


def entity_time(event) -> ET.Element:
    el = ET.Element(ns.q(ns.TIME, "time"))
    ET.SubElement(el, ns.q(ns.TIME, "tzo")).text = "Z"
    ET.SubElement(el, ns.q(ns.TIME, "utc")).text = utc_stamp()
    return el


def setup(m) -> None:
    m.add_feature(ns.TIME)
    m.hook_iq("get", ns.TIME, "time", entity_time)

"""Entity Time (XEP-0202): the server's time in UTC."""
import time as _time
import xml.etree.ElementTree as ET

PROTOCOLS = ["XEP-0202"]
OPTIONS: list = []
NS = "urn:xmpp:time"


def setup(m) -> None:
    m.add_feature(NS)

    def entity_time(event):
        el = ET.Element(f"{{{NS}}}time")
        ET.SubElement(el, f"{{{NS}}}tzo").text = "Z"
        ET.SubElement(el, f"{{{NS}}}utc").text = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime())
        return el

    m.hook_iq("get", NS, "time", entity_time)

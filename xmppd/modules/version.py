"""Software Version (XEP-0092): name, version and (unless hidden) the OS."""
import platform
import xml.etree.ElementTree as ET

from xmppd.config.options import Option

PROTOCOLS = ["XEP-0092"]
NS = "jabber:iq:version"
OPTIONS = [
    Option("hide_os_type", "boolean", False, "both", "Do not reveal the operating system in version replies."),
]


def setup(m) -> None:
    m.add_feature(NS)

    def version(event):
        q = ET.Element(f"{{{NS}}}query")
        ET.SubElement(q, f"{{{NS}}}name").text = "xmppd"
        ET.SubElement(q, f"{{{NS}}}version").text = m.server.version
        if not m.get_option("hide_os_type"):
            ET.SubElement(q, f"{{{NS}}}os").text = f"{platform.system()} {platform.release()}".strip()
        return q

    m.hook_iq("get", NS, "query", version)

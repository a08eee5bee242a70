"""XMPP Ping (XEP-0199): the server answers pings addressed to it."""
PROTOCOLS = ["XEP-0199"]
OPTIONS: list = []
NS = "urn:xmpp:ping"


def setup(m) -> None:
    m.add_feature(NS)
    m.hook_iq("get", NS, "ping", lambda event: None)

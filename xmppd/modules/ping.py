"""XMPP Ping (XEP-0199): the server answers pings addressed to it (an empty result).

A ping to an account's bare JID (or with no 'to') is not answered here: it gets
``service-unavailable``, as no module handles it (RFC 6120 would have the server
answer for the account: left to its own change).
"""
from xmppd.xmpp import ns

PROTOCOLS = ["XEP-0199"]
OPTIONS: list = []


def pong(event) -> None:
    return None


def setup(m) -> None:
    m.add_feature(ns.PING)
    m.hook_iq("get", ns.PING, "ping", pong)

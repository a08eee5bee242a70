"""XMPP Ping (XEP-0199): the server answers pings addressed to it, and, as Prosody
does, pings to an account's bare JID or with no 'to' (RFC 6120 §10.3.3: the
server handles those on behalf of the account; the answer comes from the bare JID,
or without a 'from' when the ping had no 'to'). Clients use the latter as a
keepalive; Profanity turns its keepalive off when it gets an error."""
from xmppd.xmpp import ns

PROTOCOLS = ["XEP-0199"]
OPTIONS: list = []


def pong(event) -> None:
    return None          # an empty result


def setup(m) -> None:
    m.add_feature(ns.PING)
    m.hook_iq("get", ns.PING, "ping", pong, to=("host", "bare"))

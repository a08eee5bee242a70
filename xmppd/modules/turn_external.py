"""A TURN server that shares a secret with this server (coturn's ``use-auth-secret``),
announced to clients through External Service Discovery (XEP-0215), with Prosody's
``turn_external`` options::

    modules_enabled = { ...; "turn_external" }
    turn_external_host = "turn-server.falcot.com"
    turn_external_secret = "the static-auth-secret of /etc/turnserver.conf"

Clients get STUN and TURN over UDP on ``turn_external_port`` (and TCP with
``turn_external_tcp``, TURNS with ``turn_external_tls_port``), the TURN entries with
credentials valid for ``turn_external_ttl`` seconds.

This module answers nothing itself: at load it adds one ``external-service`` item per
entry (``m.add_item``), a dict with the keys of an ``external_services`` entry and
``secret`` holding the secret itself; ``external_services`` (a dependency) reads the
items at every request and makes fresh credentials from them. Unloading the module
removes its items, and the services with them.
"""
from __future__ import annotations

from xmppd.moduleapi import Option

PROTOCOLS = ["XEP-0215"]
DEPENDS = ["external_services"]
OPTIONS = [
    Option("turn_external_secret", "string", None, "both",
           "the secret shared with the TURN server (coturn: static-auth-secret); required"),
    Option("turn_external_host", "string", None, "both",
           "the TURN server's host name (default: the VirtualHost's name)"),
    Option("turn_external_port", "integer", 3478, "both", "its STUN/TURN port", min=1, max=65535),
    Option("turn_external_user", "string", None, "both",
           "appended to the generated user names (<expiry>:<user>)"),
    Option("turn_external_ttl", "integer", 86400, "both",
           "seconds the credentials stay valid", min=60),
    Option("turn_external_tcp", "boolean", False, "both", "also offer STUN and TURN over TCP"),
    Option("turn_external_tls_port", "integer", None, "both",
           "offer TURN over TLS (turns) on this port", min=1, max=65535),
]
ITEM = "external-service"   # the item kind external_services reads


def services(*, host: str, secret: str, port: int, user: str | None, ttl: int, tcp: bool,
             tls_port: int | None) -> list[dict]:
    """The service entries (external_services items) for these options."""
    out = []
    for transport in ("udp", "tcp") if tcp else ("udp",):
        out.append({"type": "stun", "transport": transport, "host": host, "port": port})
        out.append({"type": "turn", "transport": transport, "host": host, "port": port,
                    "secret": secret, "ttl": ttl, "username": user})
    if tls_port:
        out.append({"type": "turns", "transport": "tcp", "host": host, "port": tls_port,
                    "secret": secret, "ttl": ttl, "username": user})
    return out


def setup(m) -> None:
    secret = m.get_option("turn_external_secret")
    if not secret:
        m.log.error("%s: turn_external_secret is not set: no TURN server is announced",
                    m.host.name)
        return
    for item in services(host=m.get_option("turn_external_host") or m.host.name, secret=secret,
                         port=m.get_option("turn_external_port"),
                         user=m.get_option("turn_external_user"),
                         ttl=m.get_option("turn_external_ttl"),
                         tcp=m.get_option("turn_external_tcp"),
                         tls_port=m.get_option("turn_external_tls_port")):
        m.add_item(ITEM, item)

"""The server's metrics for Prometheus, Prosody's ``mod_http_openmetrics``: ``GET
/metrics`` on the HTTP service answers with OpenMetrics text (connections, sessions,
stanzas in and out by kind, s2s links, storage latency, memory and CPU).

Only addresses in ``openmetrics_allow_ips`` (loopback by default) or the network
``openmetrics_allow_cidr`` may read it; anyone else gets 403. The address is the
client's as the HTTP service sees it: behind a reverse proxy listed in
``trusted_proxies``, the one the proxy names in ``X-Forwarded-For``.

A global module, as in Prosody: one ``/metrics`` for the whole server, which answers
under every host's name and under names of none (``http://127.0.0.1:5280/metrics``).
The numbers are read at each request (Prosody's ``statistics_interval = "manual"``):
nothing runs between scrapes. ``xmppctl status`` shows the same ones.
"""
from __future__ import annotations

import ipaddress

from aiohttp import web

from xmppd.moduleapi import OPENMETRICS_CONTENT_TYPE, HttpRoute, Option

SCOPE = "global"
PROTOCOLS: list = []

OPTIONS = [
    Option("openmetrics_allow_ips", "set", ["::1", "127.0.0.1"], "global",
           "addresses that may read /metrics"),
    Option("openmetrics_allow_cidr", "string", None, "global",
           "a network whose addresses may read /metrics too (\"192.168.0.0/24\")"),
]


def _address(text: str):
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped       # a dual-stack socket's view of an IPv4 client
    return ip


class Access:
    """Who may read the metrics."""

    def __init__(self, ips, cidr):
        self.ips = ips
        self.network = cidr

    def allows(self, remote: str) -> bool:
        try:
            ip = _address(remote)
        except ValueError:
            return False
        return ip in self.ips or (self.network is not None and ip.version == self.network.version
                                  and ip in self.network)


def access(m) -> Access:
    ips = set()
    for v in m.get_option("openmetrics_allow_ips") or ():
        try:
            ips.add(_address(str(v)))
        except ValueError:
            raise m.option_error("openmetrics_allow_ips", f"{v!r} is not an IP address") from None
    cidr = m.get_option("openmetrics_allow_cidr")
    network = None
    if cidr:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise m.option_error("openmetrics_allow_cidr",
                                 f"{cidr!r} is not a network such as \"192.168.0.0/24\"") from None
    return Access(ips, network)


def setup(m) -> None:
    allowed = access(m)
    metrics = m.server.metrics

    async def handle(request) -> web.StreamResponse:
        if request.raw.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        if not allowed.allows(request.remote):
            m.log.info("metrics refused to %s (openmetrics_allow_ips, openmetrics_allow_cidr)",
                       request.remote)
            return web.Response(status=403, text="Forbidden.\n", content_type="text/plain")
        return web.Response(body=metrics.exposition().encode(),
                            headers={"Content-Type": OPENMETRICS_CONTENT_TYPE})

    m.add_item("http-route", HttpRoute("http_openmetrics", "/metrics", handle))

"""The HTTP service (Prosody's ``mod_http``): one aiohttp server on the XMPP event
loop, started when a module serves something over HTTP.

Modules add :class:`~xmppd.core.modules.HttpRoute` items on their host; this layer
listens on ``http_ports`` (5280, loopback: for a reverse proxy in front) and
``https_ports`` (5281, every interface, each host's certificate by SNI, the same
certificates c2s uses), picks the host by the request's ``Host`` (``http_host``
renames it, ``http_default_host`` takes what no host claims) and the route by the
longest path prefix (``http_paths`` moves a route by name). A route of a global
module (``http_openmetrics``'s ``/metrics``) is every host's, and answers too where
the ``Host`` names none of them (``127.0.0.1:5280``), as in Prosody.

Requests from a ``trusted_proxies`` address are taken at the proxy's word: the
client's address from ``X-Forwarded-For`` and the scheme from
``X-Forwarded-Proto``, as Prosody does. ``/.well-known/host-meta`` (and ``.json``,
XEP-0156) lists the routes that are XMPP connection methods.

aiohttp, because it is the well-kept asyncio HTTP server with a C parser,
WebSocket and streamed bodies, and runs on the loop xmppd already has.
"""
from __future__ import annotations

import ipaddress
import json
import logging
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from aiohttp import web

from ..core.modules import HttpRoute, Listener

if TYPE_CHECKING:
    from ..core.host import Host
    from ..core.server import Server

log = logging.getLogger("xmppd.http")

SERVER_HEADER = "xmppd"
SHUTDOWN_TIMEOUT = 2.0
HOST_META = "/.well-known/host-meta"


class Request:
    """One HTTP request as a module sees it: the aiohttp request (``raw``), the
    host it is for (None: a global module's route asked under no host's name), the
    client's address and whether it came over HTTPS (both after trusted proxies),
    and the service (for URLs and WebSocket streams)."""
    __slots__ = ("raw", "host", "remote", "secure", "route", "service")

    def __init__(self, raw: web.BaseRequest, host: "Host | None", remote: str, secure: bool,
                 route: HttpRoute | None, service: "HttpService"):
        self.raw = raw
        self.host = host
        self.remote = remote
        self.secure = secure
        self.route = route
        self.service = service

    @property
    def path(self) -> str:
        """The path below the route's (``""`` for the route itself)."""
        base = self.service.path_of(self.host, self.route) if self.route else ""
        return self.raw.path[len(base):].lstrip("/")

    async def xmpp_websocket(self, **options: Any) -> web.StreamResponse:
        """Answer with an XMPP stream over WebSocket (RFC 7395)."""
        from .websocket import serve
        return await serve(self, **options)

    async def xmpp_bosh(self, **options: Any) -> web.StreamResponse:
        """Answer as a BOSH connection manager (XEP-0124, XEP-0206)."""
        return await self.service.bosh().handle(self, **options)


def _networks(values) -> list:
    nets = []
    for v in values or ():
        try:
            nets.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            log.warning("trusted_proxies: %r is not an address or network", v)
    return nets


def _in(addr: str, nets: list) -> bool:
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in nets)


class HttpService:
    """The routes of every host, and the aiohttp server that answers them."""

    def __init__(self, server: "Server"):
        self.server = server
        self.runner: web.AppRunner | None = None
        self._bosh = None
        self.trusted = _networks(server.config.get("trusted_proxies",
                                                   default=["127.0.0.1", "::1"]))

    def bosh(self):
        """The BOSH sessions (made when first asked for)."""
        if self._bosh is None:
            from .bosh import BoshManager
            self._bosh = BoshManager(self.server)
        return self._bosh

    # -- routes -------------------------------------------------------------
    def routes(self, host: "Host | None") -> list[HttpRoute]:
        """A host's routes (its modules' and the global ones); None: the global ones."""
        items = host.items("http-route") if host is not None else self.server.items("http-route")
        return [r for r in items if isinstance(r, HttpRoute)]

    def serving(self) -> bool:
        return any(self.routes(h) for h in self.server.hosts.values())

    def _own_routes(self, host: "Host") -> bool:
        """Does ``host`` serve routes of its own (not only the global ones)?"""
        shared = self.server.items("http-route")
        return any(isinstance(r, HttpRoute) and all(r is not g for g in shared)
                   for r in host.items("http-route"))

    def http_host(self, host: "Host") -> str:
        return (self.server.config.get("http_host", host=host.name) or host.name).lower()

    def path_of(self, host: "Host | None", route: HttpRoute) -> str:
        paths = self.server.config.get("http_paths", host=host.name if host else None) or {}
        path = paths.get(route.name, route.path) if isinstance(paths, dict) else route.path
        path = "/" + str(path).strip("/")
        return path

    def host_for(self, name: str) -> "Host | None":
        name = name.lower().rstrip(".")
        serving = [h for h in self.server.hosts.values() if self._own_routes(h)]
        for h in serving:
            if self.http_host(h) == name:
                return h
        default = self.server.config.get("http_default_host")
        if default:
            h = self.server.hosts.get(default)
            if h is not None:
                return h
        return serving[0] if len(serving) == 1 else None

    def route_for(self, host: "Host | None", path: str) -> HttpRoute | None:
        best, best_len = None, -1
        for r in self.routes(host):
            base = self.path_of(host, r)
            if (path == base or path.startswith(base.rstrip("/") + "/")) and len(base) > best_len:
                best, best_len = r, len(base)
        return best

    def url(self, host: "Host", route_name: str, tail: str = "") -> str:
        """``http_external_url`` (or https://<http_host>:<https port>) + the route's path."""
        route = next((r for r in self.routes(host) if r.name == route_name), None)
        path = self.path_of(host, route) if route else "/" + route_name
        base = self.server.config.get("http_external_url", host=host.name)
        if not base:
            ports = self.server.ports("https") or list(self.server.config.get(
                "https_ports", default=[5281]) or [])
            port = ports[0] if ports else 443
            base = f"https://{self.http_host(host)}" + ("" if port == 443 else f":{port}")
        url = base.rstrip("/") + path
        return url + ("/" + tail if tail else "")

    # -- requests -----------------------------------------------------------
    def _client(self, raw: web.BaseRequest) -> tuple[str, bool]:
        """The client's address and whether it used HTTPS, through trusted proxies."""
        peer = raw.transport.get_extra_info("peername") if raw.transport else None
        remote = str(peer[0]) if peer else "?"
        secure = raw.transport is not None and raw.transport.get_extra_info("sslcontext") is not None
        if self.trusted and _in(remote, self.trusted):
            forwarded = raw.headers.getall("X-Forwarded-For", [])
            hops = [a.strip() for v in forwarded for a in v.split(",") if a.strip()]
            while hops:
                hop = hops.pop()
                remote = hop
                if not _in(hop, self.trusted):
                    break
            proto = raw.headers.get("X-Forwarded-Proto")
            if proto:
                secure = proto.strip().lower() == "https"
        return remote, secure

    async def handle(self, raw: web.BaseRequest) -> web.StreamResponse:
        try:
            hostname = raw.url.host or ""
        except ValueError:
            hostname = ""
        host = self.host_for(hostname)
        path = raw.path
        if host is None:
            route = self.route_for(None, path)    # a global module's route, whatever the Host
            if route is None:
                return _text(404, f"No XMPP service here for {hostname or 'that host'}.\n")
        elif path in (HOST_META, HOST_META + ".json"):
            return self.host_meta(host, json_=path.endswith(".json"))
        else:
            route = self.route_for(host, path)
            if route is None:
                return _text(404, "Not found.\n")
        remote, secure = self._client(raw)
        req = Request(raw, host, remote, secure, route, self)
        try:
            return await route.handler(req)
        except web.HTTPException as exc:
            return exc
        except Exception:
            log.exception("%s %s: internal error", raw.method, path)
            return _text(500, "Internal error.\n")

    def host_meta(self, host: "Host", *, json_: bool) -> web.Response:
        """XEP-0156: the connection methods (WebSocket, BOSH) of this host."""
        links = []
        for r in self.routes(host):
            if r.alt_connection:
                href = self.url(host, r.name)
                if r.alt_connection.endswith(":websocket"):   # wss:// (ws:// for http://)
                    href = "ws" + href[4:] if href.startswith("http") else href
                links.append((r.alt_connection, href))
        headers = {"Access-Control-Allow-Origin": "*"}
        if json_:
            body = json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]})
            return web.Response(text=body, content_type="application/json", headers=headers)
        xml = ["<?xml version='1.0' encoding='utf-8'?>\n",
               "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"]
        for rel, href in links:
            xml.append(f"  <Link rel={quoteattr(rel)} href={quoteattr(href)}/>\n")
        xml.append("</XRD>\n")
        return web.Response(text="".join(xml), content_type="application/xrd+xml", headers=headers)

    # -- lifecycle ----------------------------------------------------------
    async def start(self, _server=None) -> None:
        if self.runner is not None or not self.serving():
            return
        app = web.Application(client_max_size=1024 ** 2)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_response_prepare.append(_server_header)
        # at a stop, requests still running (an upload) get SHUTDOWN_TIMEOUT seconds
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self.runner.setup()

    async def stop(self, _server=None) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    def protocol(self):
        """A connection's protocol object (for the listeners)."""
        return self.runner.server()


async def _server_header(_request, response) -> None:
    response.headers.setdefault("Server", SERVER_HEADER)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def register(server: "Server") -> None:
    """The HTTP listeners (used when a module added an HTTP route): ``http_ports``
    on ``http_interfaces`` (loopback) and ``https_ports`` on ``https_interfaces``
    (or ``interfaces``) with the hosts' certificates."""
    service = HttpService(server)
    server.http = service
    server.events.hook("server-started", service.start)
    server.events.hook("server-stopped", service.stop)
    server.add_item("listener", Listener(
        "http", service.protocol, "http_ports", [5280], interfaces_option="http_interfaces",
        default_interfaces=["127.0.0.1", "::1"], when=lambda srv: service.runner is not None))
    server.add_item("listener", Listener(
        "https", service.protocol, "https_ports", [5281], interfaces_option="https_interfaces",
        ssl_context=lambda srv: srv.certs.default_context(alpn=["http/1.1"]),
        when=lambda srv: service.runner is not None and bool(srv.certs)))

"""XMPP over WebSocket (RFC 7395), Prosody's ``mod_websocket``: web clients
(Converse.js, JSXC, Movim) connect to ``wss://HOST:5281/xmpp-websocket``.

A WebSocket connection is an ordinary client session: SASL, bind and every module
work as over TCP, and routing does not care which transport a resource uses. The
endpoint is listed in ``/.well-known/host-meta`` (XEP-0156) so clients find it.
Behind a reverse proxy that terminates TLS, set ``consider_websocket_secure``
(or let the proxy send ``X-Forwarded-Proto: https`` from a ``trusted_proxies``
address)."""
from xmppd.moduleapi import HttpRoute, Option

PROTOCOLS = ["RFC 7395", "XEP-0156"]
ALT_CONNECTION = "urn:xmpp:alt-connections:websocket"

OPTIONS = [
    Option("consider_websocket_secure", "boolean", False, "both",
           "treat WebSocket connections as encrypted although they arrive over plain HTTP "
           "(TLS ends at a reverse proxy in front)"),
    Option("cross_domain_websocket", "any", None, "both",
           "web pages from which origins may connect: true for any, a list of origins "
           "(\"https://example.com\"); default: pages served from this host's own name"),
    Option("websocket_get_response_text", "string", None, "both",
           "the text a plain GET of the endpoint returns (a browser opening the URL)"),
    Option("websocket_redirect", "string", None, "both",
           "send every WebSocket client to this URL instead (RFC 7395 see-other-uri), "
           "e.g. when the service moved"),
]


def setup(m) -> None:
    get = m.get_option

    async def handle(request):
        return await request.xmpp_websocket(
            secure=bool(get("consider_websocket_secure")),
            cross_domain=get("cross_domain_websocket"),
            get_text=get("websocket_get_response_text"), redirect=get("websocket_redirect"))

    m.add_item("http-route", HttpRoute("websocket", "/xmpp-websocket", handle,
                                       alt_connection=ALT_CONNECTION))

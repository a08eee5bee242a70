"""XMPP over BOSH (XEP-0124, XEP-0206), Prosody's ``mod_bosh``: web clients that
cannot use WebSocket (or sit behind proxies that break it) connect with long-polling
HTTP requests at ``https://HOST:5281/http-bind``.

A BOSH session is an ordinary client session: SASL, bind and every module work as
over TCP. The endpoint is listed in ``/.well-known/host-meta`` (XEP-0156)."""
from xmppd.moduleapi import HttpRoute, Option

PROTOCOLS = ["XEP-0124", "XEP-0206", "XEP-0156"]
ALT_CONNECTION = "urn:xmpp:alt-connections:xbosh"

OPTIONS = [
    Option("bosh_max_inactivity", "integer", 60, "both",
           "seconds a client may go without a request before its session is lost", min=1),
    Option("bosh_max_polling", "integer", 5, "both",
           "the shortest interval between polling requests the server asks for", min=0),
    Option("bosh_max_wait", "integer", 120, "both",
           "the longest a request is held waiting for something to answer", min=1),
    Option("consider_bosh_secure", "boolean", False, "both",
           "treat BOSH requests as encrypted although they arrive over plain HTTP (TLS "
           "ends at a reverse proxy in front)"),
    Option("cross_domain_bosh", "any", False, "both",
           "web pages from which origins may use the endpoint (CORS): true for any, a list "
           "of origins; default: none (same origin only)"),
    Option("bosh_get_response_text", "string", None, "both",
           "the text a plain GET of the endpoint returns"),
]


def setup(m) -> None:
    get = m.get_option

    async def handle(request):
        return await request.xmpp_bosh(
            secure=bool(get("consider_bosh_secure")), cross_domain=get("cross_domain_bosh"),
            get_text=get("bosh_get_response_text"), inactivity=int(get("bosh_max_inactivity")),
            polling=int(get("bosh_max_polling")), max_wait=int(get("bosh_max_wait")))

    m.add_item("http-route", HttpRoute("bosh", "/http-bind", handle,
                                       alt_connection=ALT_CONNECTION))

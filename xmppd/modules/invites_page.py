"""A web page for each invitation (prosody-modules' mod_invites_page), on the HTTP
service: ``https://HOST:5281/invites_page?TOKEN``.

When this module is loaded and ``invites_page`` is not set, the invitations that
allow registering get this page as their ``landing_page`` (what ``xmppctl invite
create`` and the ad-hoc commands give out first). The page says who invites to
what, links the ``xmpp:`` URI (a client that knows XEP-0401 takes it from there),
and suggests clients that do; an unknown, spent or expired token gets a 404 page.
``http_paths = { invites_page = "/join" }`` moves it; ``http_external_url`` is the
base of the links when xmppd is behind a proxy.
"""
from __future__ import annotations

import html

from aiohttp import web

from xmppd.moduleapi import HttpRoute, Option

PROTOCOLS: list = []
DEPENDS = ["invites"]
OPTIONS = [
    Option("site_name", "string", None, "both", "The name of the service on the page (default: the host)."),
]
ROUTE = "invites_page"
# Clients that open invitation URIs (XEP-0401), as mod_register_apps suggests.
CLIENTS = [
    ("Conversations", "Android", "https://conversations.im/"),
    ("Monal", "iOS, macOS", "https://monal-im.org/"),
    ("Siskin IM", "iOS", "https://siskin.im/"),
    ("Gajim", "Windows, Linux", "https://gajim.org/"),
    ("Dino", "Linux", "https://dino.im/"),
    ("Beagle IM", "macOS", "https://beagle.im/"),
]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5}}
a.button{{display:inline-block;padding:.6em 1.2em;background:#2a6;color:#fff;border-radius:.3em;text-decoration:none}}
code{{word-break:break-all}}</style></head>
<body>
<h1>{title}</h1>
{body}
</body></html>
"""


def invite_body(site: str, invite: dict) -> str:
    e = html.escape
    uri = invite["uri"]
    if invite["type"] == "roster":
        what = f"<p>{e(invite['jid'])} invites you to chat with them on {e(site)}.</p>"
    else:
        node = invite["jid"].rpartition("@")[0]
        what = (f"<p>You are invited to create an account on {e(site)}"
                + (f" as <b>{e(node)}</b>" if node else "") + ".</p>")
    clients = "\n".join(f'<li><a href="{e(link)}">{e(name)}</a> ({e(platforms)})</li>'
                        for name, platforms, link in CLIENTS)
    return (f"{what}\n<p>If you have an XMPP client that supports invitations, open this:</p>\n"
            f'<p><a class="button" href="{e(uri)}">Accept the invitation</a></p>\n'
            f"<p>Otherwise install one of these, then come back and open the link above:</p>\n"
            f"<ul>\n{clients}\n</ul>\n"
            f"<p>The invitation's address, to paste into a client: <code>{e(uri)}</code></p>")


def setup(m) -> None:
    invites = m.depends("invites")
    host = m.host

    def landing(invite: dict) -> str:
        return m.server.http.url(host, ROUTE) + "?" + invite["token"]

    async def serve(request) -> web.Response:
        if request.raw.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="Method not allowed.\n", headers={"Allow": "GET, HEAD"})
        site = m.get_option("site_name") or host.name
        try:
            invite = await invites.get(request.raw.query_string)
        except invites.Error:
            page = PAGE.format(title=html.escape(f"Invitation to {site}"),
                               body="<p>This invitation is invalid, already used or expired.</p>")
            return web.Response(status=404, text=page, content_type="text/html")
        page = PAGE.format(title=html.escape(f"Invitation to {site}"), body=invite_body(site, invite))
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    m.add_item("http-route", HttpRoute(ROUTE, "/" + ROUTE, serve))
    m.add_item("invite-landing-page", landing)

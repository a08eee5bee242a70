"""XMPP over BOSH (XEP-0124, XEP-0206): a client session carried by HTTP requests.

A BOSH session is a :class:`BoshSession` (an ordinary client session: SASL, bind
and every module work unchanged) whose transport is a :class:`BoshLink`: what the
session writes waits there for the client's next request, and each request's
``<body/>`` brings stanzas in. The link follows XEP-0124: requests are handled in
``rid`` order (a request ahead of a missing one waits for it), a repeated ``rid``
gets the response it had (so a request lost on the way is repaired by sending it
again), up to ``hold`` requests wait ``wait`` seconds for something to answer,
``xmpp:restart`` restarts the stream, ``pause`` and ``inactivity`` bound the time
without a request, and ``type='terminate'`` ends the session. When the session is
given up (inactivity, the server closing it), the connection is lost as for TCP:
stream management may keep the resource for a resumption.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from aiohttp import web

from ..protocol.c2s import C2SSession
from ..stream import serialize
from ..stream.serializer import escape_attr
from ..xmpp import ns
from .websocket import standalone

if TYPE_CHECKING:
    from .server import Request

log = logging.getLogger("xmppd.bosh")

NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
_BODY = f"{{{NS_BOSH}}}body"
_RESTART = f"{{{NS_XBOSH}}}restart"
_VERSION = f"{{{NS_XBOSH}}}version"
_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CONTENT_TYPE = "text/xml"

REQUESTS = 2          # requests the client may have open at once (hold + 1)
HOLD = 1              # requests the server keeps waiting
MAX_PAUSE = 120       # the longest pause a client may ask for


class BoshSession(C2SSession):
    """A client session over BOSH: no stream header or footer on the wire (the
    ``<body/>`` wrappers stand for them), every element a document of its own."""
    __slots__ = ()
    can_starttls = False
    framing = "bosh"

    def _stream_start(self, from_: str | None) -> str:
        return ""

    def _stream_end(self) -> str:
        return ""

    def _encode(self, out: list[str]) -> bytes:
        return "".join(standalone(s) for s in out if s).encode()


class BoshLink(asyncio.Transport):
    """One BOSH session's requests and responses (the session's transport)."""

    def __init__(self, manager: "BoshManager", sid: str, host: str, remote: str, *,
                 wait: int, hold: int, inactivity: int = 60, polling: int = 5, ssl_object=None):
        super().__init__()
        self.manager = manager
        self.inactivity = inactivity
        self.polling = polling
        self.sid = sid
        self.host = host
        self.remote = remote
        self.wait = wait
        self.hold = hold
        self.ssl_object = ssl_object
        self.rid = 0                           # the last rid handled
        self.pending: list[bytes] = []         # written, not yet sent in a response
        self.pending_size = 0
        self.held: collections.deque = collections.deque()   # (rid, future) waiting
        self.responses: collections.OrderedDict[int, str] = collections.OrderedDict()
        self.created = False                   # the creation response went out
        self.terminated = False
        self.condition: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.rid_changed = asyncio.Event()
        self.session: BoshSession | None = None
        self.paused_for: float | None = None

    # -- asyncio.Transport, as the session sees it ---------------------------
    def write(self, data: bytes) -> None:
        if self.terminated or not data:
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.held:
            asyncio.get_running_loop().call_soon(self.answer)

    def get_write_buffer_size(self) -> int:
        return self.pending_size

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return (self.remote, 0)
        if name == "ssl_object":
            return self.ssl_object
        return default

    def is_closing(self) -> bool:
        return self.terminated

    def close(self) -> None:
        """The session ended the stream: answer with what is left and terminate."""
        if self.terminated:
            return
        self.terminated = True
        self.condition = self.condition or ("remote-stream-error" if self.session is not None
                                            and self.session.closed_by_server else None)
        self.answer()
        self._forget_later()

    def abort(self) -> None:
        self.terminated = True
        self.answer()
        self._forget_later()

    def pause_reading(self) -> None:
        pass      # requests are answered one by one; the rate limit delays each

    def resume_reading(self) -> None:
        pass

    # -- responses ---------------------------------------------------------------
    def body(self, payload: str, *, terminate: bool = False) -> str:
        attrs = [f"xmlns='{NS_BOSH}'", f"xmlns:stream='{ns.STREAM}'"]
        if not self.created:
            self.created = True
            attrs += [f"sid='{self.sid}'", f"wait='{self.wait}'", f"requests='{REQUESTS}'",
                      f"hold='{self.hold}'", f"inactivity='{self.inactivity}'",
                      f"polling='{self.polling}'", f"maxpause='{MAX_PAUSE}'",
                      "ver='1.11'", f"from='{escape_attr(self.host)}'",
                      f"authid='{self.sid}'", f"xmlns:xmpp='{NS_XBOSH}'", "xmpp:version='1.0'",
                      "xmpp:restartlogic='true'"]
        if terminate:
            attrs.append("type='terminate'")
            if self.condition:
                attrs.append(f"condition='{self.condition}'")
        return f"<body {' '.join(attrs)}>{payload}</body>" if payload else f"<body {' '.join(attrs)}/>"

    def answer(self, *, all_: bool = False) -> None:
        """Answer the oldest waiting request with what is pending (every waiting
        one when terminating, or ``all_``)."""
        while self.held:
            if not (self.pending or self.terminated or all_):
                return
            self.release_oldest()
            if not (self.terminated or all_):
                break
        if not self.held and not self.terminated:
            self._idle()

    def release_oldest(self) -> None:
        """Answer the oldest waiting request now, with what is pending (maybe nothing)."""
        rid, fut = self.held.popleft()
        text = self.take(terminate=self.terminated)
        self.remember(rid, text)
        if not fut.done():
            fut.set_result(text)

    def take(self, *, terminate: bool = False) -> str:
        """A response body with everything pending."""
        payload = b"".join(self.pending).decode()
        self.pending.clear()
        self.pending_size = 0
        return self.body(payload, terminate=terminate)

    def remember(self, rid: int, text: str) -> None:
        self.responses[rid] = text
        while len(self.responses) > REQUESTS + 1:
            self.responses.popitem(last=False)

    # -- timers ------------------------------------------------------------------
    def _idle(self) -> None:
        """No request waiting: the client has ``inactivity`` (or its pause) to send one."""
        if self.timer is not None:
            self.timer.cancel()
        delay = self.paused_for or self.inactivity
        self.timer = asyncio.get_running_loop().call_later(delay, self._inactive)

    def _busy(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.paused_for = None

    def _inactive(self) -> None:
        self.timer = None
        if self.held or self.terminated:
            return
        log.info("BOSH session %s: no request for %s s; the connection is lost", self.sid,
                 self.paused_for or self.inactivity)
        self.terminated = True
        self.lost(None)
        self.manager.links.pop(self.sid, None)

    def _forget_later(self) -> None:
        # keep answering repeated rids of the last requests for a while, then forget
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.wait + 5, self._forget)
        self.lost(None)

    def _forget(self) -> None:
        self.manager.links.pop(self.sid, None)
        while self.held:
            self.release_oldest()

    def lost(self, exc) -> None:
        s = self.session
        if s is not None and not s.closed:
            s.connection_lost(exc)


class BoshManager:
    """Every BOSH session of the server, by sid, and the request handler."""

    def __init__(self, server):
        self.server = server
        self.links: dict[str, BoshLink] = {}

    async def handle(self, req: "Request", *, secure: bool = False, cross_domain=None,
                     get_text: str | None = None, inactivity: int = 60, polling: int = 5,
                     max_wait: int = 120) -> web.StreamResponse:
        raw = req.raw
        cors = _cors(raw.headers.get("Origin"), cross_domain)
        if raw.method == "OPTIONS":
            return web.Response(status=200, headers=cors)
        if raw.method == "GET":
            return web.Response(text=get_text or "XMPP over BOSH (XEP-0124, XEP-0206) is "
                                "served here.\n", content_type="text/plain", headers=cors)
        if raw.method != "POST":
            return web.Response(status=405, headers={"Allow": "GET, POST, OPTIONS", **cors})
        limit = self.server.c2s_stanza_size_limit + 16384
        if raw.content_length is not None and raw.content_length > limit:
            return self.reply(terminate("policy-violation"), cors, status=413)
        data = await raw.content.read(limit + 1)
        if len(data) > limit:
            return self.reply(terminate("policy-violation"), cors, status=413)
        if b"<!" in data:        # no DTD, entity or comment in a request
            return self.reply(terminate("bad-request"), cors, status=400)
        try:
            body = ET.fromstring(data)
        except ET.ParseError:
            return self.reply(terminate("bad-request"), cors, status=400)
        if body.tag != _BODY:
            return self.reply(terminate("bad-request"), cors, status=400)
        try:
            rid = int(body.get("rid", ""))
        except ValueError:
            return self.reply(terminate("bad-request"), cors, status=400)
        sid = body.get("sid")
        if sid is None:
            text = await self.create(req, body, rid, secure or req.secure,
                                     inactivity=inactivity, polling=polling, max_wait=max_wait)
            return self.reply(text, cors)
        link = self.links.get(sid)
        if link is None:
            return self.reply(terminate("item-not-found"), cors, status=404)
        text = await self.request(link, body, rid)
        return self.reply(text, cors)

    def reply(self, text: str, cors: dict, status: int = 200) -> web.Response:
        return web.Response(status=status, text=text, content_type=CONTENT_TYPE,
                            charset="utf-8", headers=cors)

    async def create(self, req: "Request", body: ET.Element, rid: int, secure: bool, *,
                     inactivity: int, polling: int, max_wait: int) -> str:
        to = (body.get("to") or "").lower()
        host = self.server.hosts.get(to)
        if host is None or not host.is_virtualhost:
            return terminate("host-unknown")
        try:
            wait = max(0, min(int(body.get("wait", "60")), max_wait))
            hold = max(0, min(int(body.get("hold", "1")), HOLD))
        except ValueError:
            return terminate("bad-request")
        sid = secrets.token_urlsafe(18)
        ssl_object = req.raw.transport.get_extra_info("ssl_object") if req.raw.transport else None
        link = BoshLink(self, sid, host.name, req.remote, wait=wait, hold=hold,
                        inactivity=inactivity, polling=polling, ssl_object=ssl_object)
        link.rid = rid
        self.links[sid] = link
        session = BoshSession(self.server)
        session.tls = bool(secure)
        link.session = session
        session.connection_made(link)
        lang = body.get(_LANG) or "en"
        log.info("BOSH session %s from %s for %s", sid, req.remote, host.name)
        session.data_received(self.header(host.name, lang))
        return await self.hold_request(link, rid)

    @staticmethod
    def header(host: str, lang: str) -> bytes:
        return (f"<stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAM}' "
                f"to='{escape_attr(host)}' version='1.0' xml:lang='{escape_attr(lang)}'>").encode()

    async def request(self, link: BoshLink, body: ET.Element, rid: int) -> str:
        if rid <= link.rid:
            old = link.responses.get(rid)
            if old is not None:
                return old            # a response lost on the way, asked for again
            if rid == link.rid and link.held:
                return link.body("")  # the current rid again, still waiting: nothing new
            return terminate("item-not-found")
        if rid > link.rid + REQUESTS:
            return terminate("item-not-found")
        # a request ahead of one still on its way waits for it (for a while)
        deadline = asyncio.get_running_loop().time() + link.wait + 5
        while rid > link.rid + 1:
            link.rid_changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or link.terminated:
                return terminate("item-not-found")
            try:
                await asyncio.wait_for(link.rid_changed.wait(), remaining)
            except asyncio.TimeoutError:
                return terminate("item-not-found")
        link.rid = rid
        link.rid_changed.set()
        link._busy()
        session = link.session
        if link.terminated:
            text = link.take(terminate=True)
            link.remember(rid, text)
            return text
        pause = body.get("pause")
        if pause is not None:
            try:
                link.paused_for = max(1, min(int(pause), MAX_PAUSE))
            except ValueError:
                pass
        if body.get(_RESTART) == "true":
            session.data_received(self.header(link.host, session.lang))
        chunks = [serialize(child) for child in body]
        if chunks:
            session.data_received("".join(chunks).encode())
        if body.get("type") == "terminate":
            # handled after the stanzas before it; the session's close() ends the link
            session.data_received(b"</stream:stream>")
        text = await self.hold_request(link, rid)
        if link.paused_for is not None:
            link.answer(all_=True)
        return text

    async def hold_request(self, link: BoshLink, rid: int) -> str:
        fut = asyncio.get_running_loop().create_future()
        link.held.append((rid, fut))
        # more waiting than 'hold' allows: the oldest goes back, empty if need be
        while len(link.held) > max(link.hold, 1):
            link.release_oldest()
        if link.pending or link.terminated:
            link.answer()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), link.wait)
        except asyncio.TimeoutError:
            if (rid, fut) in link.held:
                link.held.remove((rid, fut))
                text = link.body("")
                link.remember(rid, text)
                if not link.held:
                    link._idle()
                return text
            return await fut
        except asyncio.CancelledError:     # the client went away mid-request
            if (rid, fut) in link.held:
                link.held.remove((rid, fut))
                if not link.held and not link.terminated:
                    link._idle()
            raise


def terminate(condition: str) -> str:
    return f"<body xmlns='{NS_BOSH}' type='terminate' condition='{condition}'/>"


def _cors(origin: str | None, allowed) -> dict:
    """``cross_domain_bosh``: true for any origin, a list of origins, or none (default)."""
    if origin is None or not allowed:
        return {}
    if allowed is True or (isinstance(allowed, (list, tuple, set)) and
                           origin.rstrip("/") in {str(a).rstrip("/") for a in allowed}):
        return {"Access-Control-Allow-Origin": "*" if allowed is True else origin,
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "7200"}
    return {}

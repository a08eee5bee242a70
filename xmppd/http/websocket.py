"""XMPP over WebSocket (RFC 7395): an ordinary client session whose stream is
framed in WebSocket text messages.

The client opens with ``<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>``
and ends with ``<close/>``; every other message is one complete element. Here
they become the stream header and footer the c2s parser already knows, so SASL,
bind, stream management and every module work unchanged (Prosody does the same).
Out, each element is its own message, a standalone document: stanzas carry
``xmlns='jabber:client'``, ``stream:`` elements their prefix's declaration.

aiohttp does the handshake; then the connection is this module's: a sans-I/O
frame reader (:class:`FrameReader`) takes the client's masked frames, and every
text message that arrived in one read goes to the session's parser in one call,
as bytes from TCP do. Frames to the client are written straight to the connection
in the loop turn the session writes. So reading pauses, write backpressure, the
``send_buffer`` bound and the count of what the client took work as over TCP, and
a message costs little more than over TCP (``bench/run.py`` scenario ``msg_ws``).
"""
from __future__ import annotations

import asyncio
import logging
import re
import struct
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from ..protocol.c2s import C2SSession
from ..stream.serializer import escape_attr
from ..xmpp import ns
from ..xmpp.errors import StreamError

if TYPE_CHECKING:
    from .server import Request

log = logging.getLogger("xmppd.websocket")

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
_OPEN_TAG = f"{{{FRAMING}}}open"
_CLOSE_TAG = f"{{{FRAMING}}}close"
_CLIENT_NS = " xmlns='jabber:client'"
_STREAM_NS = f" xmlns:stream='{ns.STREAM}'"
_NAME = re.compile(r"<[^\s/>]+")
CLOSE_WAIT = 2.0     # seconds the client has to answer our close frame


def frame_header(n: int) -> bytes:
    """The header of an unmasked, final text frame of ``n`` bytes (RFC 6455 §5.2):
    what a server sends."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n)
    return struct.pack("!BBQ", 0x81, 127, n)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    payload = struct.pack("!H", code) + reason.encode()[:120]
    return bytes((0x88, len(payload))) + payload


def standalone(s: str) -> str:
    """An element as the c2s serializer wrote it (inside a jabber:client stream),
    made a document of its own: the namespaces it inherited declared on it."""
    c = s[1:2]
    if c == "m" and s.startswith("<message"):
        end = 8
    elif c == "p" and s.startswith("<presence"):
        end = 9
    elif c == "i" and s.startswith("<iq"):
        end = 3
    elif c == "s" and s.startswith("<stream:"):
        end = _NAME.match(s).end()
        return s[:end] + _STREAM_NS + s[end:]
    else:
        return s
    if s[end:end + 1] not in (" ", "/", ">") or s.startswith(" xmlns=", end):
        return s
    return s[:end] + _CLIENT_NS + s[end:]


def opening(text: str) -> str | None:
    """The stream header (or footer) an ``<open/>`` (``<close/>``) stands for; None
    for anything else."""
    if FRAMING not in text:
        return None
    try:
        el = ET.fromstring(text)
    except ET.ParseError:
        return None
    if el.tag == _CLOSE_TAG:
        return "</stream:stream>"
    if el.tag != _OPEN_TAG:
        return None
    attrs = "".join(f" {_attr(k)}='{escape_attr(v)}'" for k, v in el.attrib.items())
    return (f"<stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAM}'{attrs}>")


def _attr(key: str) -> str:
    if key.startswith("{http://www.w3.org/XML/1998/namespace}"):
        return "xml:" + key.split("}", 1)[1]
    return key.split("}", 1)[-1]


class FrameError(Exception):
    """The client broke RFC 6455 (or RFC 7395): close with ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


_ZERO_MASK = b"\0\0\0\0"


def unmask(mask: bytes, data) -> bytes:
    n = len(data)
    if not n or mask == _ZERO_MASK:
        return bytes(data)
    key = (mask * ((n + 3) // 4))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class FrameReader:
    """Client frames in, complete messages out (sans-I/O, RFC 6455 §5): ``feed(bytes)``
    returns ``[(opcode, payload)]`` for every message and control frame completed;
    a violation raises :class:`FrameError` with the close code to send."""

    def __init__(self, max_message: int):
        self.max = max_message
        self.buf = bytearray()
        self.parts: list[bytes] = []
        self.frag_op: int | None = None
        self.frag_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self.buf:
            self.buf += data
            buf = bytes(self.buf)
            self.buf.clear()
        else:
            buf = data          # the usual case: whole frames, read from the bytes as they are
        out = []
        pos, n = 0, len(buf)
        zero = _ZERO_MASK
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise FrameError(1002, "reserved bits set")
            if not b1 & 0x80:
                raise FrameError(1002, "client frames must be masked")
            length, i = b1 & 0x7F, pos + 2
            if length == 126:
                if n - i < 2:
                    break
                length, i = (buf[i] << 8) | buf[i + 1], i + 2
            elif length == 127:
                if n - i < 8:
                    break
                length, i = int.from_bytes(buf[i:i + 8], "big"), i + 8
            op = b0 & 0x0F
            if op >= 8 and (length > 125 or not b0 & 0x80):
                raise FrameError(1002, "bad control frame")
            if length > self.max:
                raise FrameError(1009, "message too large")
            end = i + 4 + length
            if end > n:
                break
            mask = buf[i:i + 4]
            payload = buf[i + 4:end] if mask == zero else unmask(mask, buf[i + 4:end])
            pos = end
            if op == 1 and b0 & 0x80 and self.frag_op is None:
                out.append((1, payload))
                continue
            fin = b0 & 0x80
            if op == 0:
                if self.frag_op is None:
                    raise FrameError(1002, "continuation of nothing")
                self.frag_size += length
                if self.frag_size > self.max:
                    raise FrameError(1009, "message too large")
                self.parts.append(payload)
                if fin:
                    out.append((self.frag_op, b"".join(self.parts)))
                    self.parts, self.frag_op, self.frag_size = [], None, 0
            elif op in (1, 2):
                if self.frag_op is not None:
                    raise FrameError(1002, "a new message inside a fragmented one")
                if fin:
                    out.append((op, payload))
                else:
                    self.frag_op, self.parts, self.frag_size = op, [payload], length
            elif op in (8, 9, 10):
                out.append((op, payload))
            else:
                raise FrameError(1002, "reserved opcode")
        if pos < n:
            self.buf += buf[pos:]
        return out


def control_frame(op: int, payload: bytes = b"") -> bytes:
    return bytes((0x80 | op, len(payload))) + payload


class _Transport(asyncio.Transport):
    """The session's transport: the HTTP connection's, with frames on it."""

    def __init__(self, raw: asyncio.Transport, remote: str):
        super().__init__()
        self.raw = raw
        self.remote = remote
        self.closed = False

    def write(self, data) -> None:
        if not self.closed:
            self.raw.write(data)

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return (self.remote, 0)
        return self.raw.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.closed or self.raw.is_closing()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake (RFC 6455 §7.1): a close frame, and the TCP
        connection closed when the client answers it (or ``CLOSE_WAIT`` later)."""
        if not self.closed:
            self.closed = True
            if not self.raw.is_closing():
                self.raw.write(close_frame(code, reason))
                asyncio.get_running_loop().call_later(CLOSE_WAIT, self.raw.close)

    def closed_by_client(self) -> None:
        """The client's close frame: the handshake is done."""
        if not self.raw.is_closing():
            self.raw.close()

    def abort(self) -> None:
        self.closed = True
        self.raw.abort()

    def pause_reading(self) -> None:
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()

    def is_reading(self) -> bool:
        return self.raw.is_reading()


class _Connection(asyncio.Protocol):
    """The HTTP connection's protocol once it is a WebSocket: frames to messages to
    the session."""

    def __init__(self, session: "WebSocketSession", transport: _Transport, max_message: int,
                 done: asyncio.Future):
        self.session = session
        self.transport = transport
        self.reader = FrameReader(max_message)
        self.done = done

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except FrameError as err:
            self.protocol_error(err)
            return
        texts = []
        for op, payload in messages:
            if op == 1:
                if payload.startswith((b"<open", b"<close")):
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError:
                        self.protocol_error(FrameError(1007, "not UTF-8"))
                        return
                    payload = (opening(text) or text).encode()
                texts.append(payload)
            elif op == 9:                       # ping: pong with the same data
                self.transport.write(control_frame(0xA, payload))
            elif op == 10:                      # pong
                continue
            elif op == 8:                       # the client closes the WebSocket
                if texts:
                    self.session.data_received(b"".join(texts))
                    texts = []
                if not self.transport.closed:   # the client began: answer, then done
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
                    self.transport.close(code if code in (1000, 1001) else 1000)
                self.transport.closed_by_client()
                return
            else:                               # binary: RFC 7395 §3.2, text only
                self.protocol_error(FrameError(1003, "text frames only (RFC 7395 3.2)"))
                return
        if texts:
            self.session.data_received(b"".join(texts) if len(texts) > 1 else texts[0])

    def protocol_error(self, err: FrameError) -> None:
        log.info("%s: WebSocket error %d: %s", self.session.id, err.code, err.reason)
        if err.code == 1009 and not self.session.closing:
            # as Prosody: end the stream, not just the connection (a resuming client
            # would send the same stanza again)
            self.session.stream_error(StreamError("policy-violation", "stanza too large"))
        else:
            self.transport.close(err.code, err.reason)

    def connection_lost(self, exc) -> None:
        self.transport.closed = True
        self.session.connection_lost(exc)
        if not self.done.done():
            self.done.set_result(None)

    def eof_received(self):
        return False

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()


class WebSocketSession(C2SSession):
    """A client session over WebSocket."""
    __slots__ = ("redirect",)
    can_starttls = False
    framing = "websocket"

    def __init__(self, server, *, redirect: str | None = None):
        super().__init__(server)
        self.redirect = redirect

    async def _on_stream_open(self, so) -> None:
        if self.redirect:
            # RFC 7395 §3.6.1: over WebSocket a redirection is <close see-other-uri/>,
            # never the see-other-host stream error
            self._send_header(None)
            self._write(f"<close xmlns='{FRAMING}' see-other-uri='{escape_attr(self.redirect)}'/>")
            self._flush(force=True)
            self.closing = True
            self._queue.clear()
            self._close_transport()
            return
        await super()._on_stream_open(so)

    def _stream_start(self, from_: str | None) -> str:
        attrs = [f"xmlns='{FRAMING}'", "version='1.0'", f"id='{self.id}'"]
        if from_:
            attrs.append(f"from='{escape_attr(from_)}'")
        if self.lang:
            attrs.append(f"xml:lang='{escape_attr(self.lang)}'")
        return f"<open {' '.join(attrs)}/>"

    def _stream_end(self) -> str:
        return f"<close xmlns='{FRAMING}'/>"

    def _encode(self, out: list[str]) -> bytes:
        parts = []
        add = parts.append
        for s in out:
            data = standalone(s).encode()
            n = len(data)
            add(bytes((0x81, n)) if n < 126 else frame_header(n))
            add(data)
        return b"".join(parts)


def origin_allowed(req: "Request", allowed) -> bool:
    """``cross_domain_websocket``: true allows every origin, a list those origins;
    by default a browser page may connect from this host's own origin only (a
    client that is not a browser sends no Origin)."""
    origin = req.raw.headers.get("Origin")
    if origin is None or allowed is True:
        return True
    if isinstance(allowed, (list, tuple, set)):
        return origin.rstrip("/") in {str(a).rstrip("/") for a in allowed}
    try:
        o = urlsplit(origin)
    except ValueError:
        return False
    return (o.hostname or "").lower() == (req.raw.url.host or "").lower()


async def serve(req: "Request", *, secure: bool = False, cross_domain=None,
                get_text: str | None = None, redirect: str | None = None) -> web.StreamResponse:
    """Upgrade ``req`` to an XMPP WebSocket and run a client session over it."""
    raw = req.raw
    if raw.method != "GET" or "Sec-WebSocket-Key" not in raw.headers:
        return web.Response(text=get_text or "XMPP over WebSocket (RFC 7395) is served here.\n",
                            content_type="text/plain")
    protocols = {p.strip() for v in raw.headers.getall("Sec-WebSocket-Protocol", [])
                 for p in v.split(",")}
    if "xmpp" not in protocols:
        return web.Response(status=501, text="This endpoint speaks the 'xmpp' WebSocket "
                            "subprotocol (RFC 7395) only.\n", content_type="text/plain")
    if not origin_allowed(req, cross_domain):
        log.info("websocket from %s: origin %s not allowed", req.remote, raw.headers.get("Origin"))
        return web.Response(status=403, text="Cross-domain WebSocket not allowed from this "
                            "origin (cross_domain_websocket).\n", content_type="text/plain")
    server = req.service.server
    ws = web.WebSocketResponse(protocols=("xmpp",), compress=False, autoping=False)
    await ws.prepare(raw)
    raw_transport = raw.transport
    if raw_transport is None or raw_transport.is_closing():
        return ws
    done = asyncio.get_running_loop().create_future()
    transport = _Transport(raw_transport, req.remote)
    session = WebSocketSession(server, redirect=redirect)
    session.tls = bool(secure or req.secure)
    conn = _Connection(session, transport, server.c2s_stanza_size_limit + 1024, done)
    raw_transport.set_protocol(conn)       # the connection is the session's from here
    session.connection_made(transport)
    try:
        await done
    except asyncio.CancelledError:         # the HTTP service is going away
        transport.abort()
        raise
    return ws

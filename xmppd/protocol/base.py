"""What every XMPP stream connection shares, client, server or component.

Bytes go to the sans-I/O ``StreamParser``; its events are queued and handled in
order by one drain task per connection (never a task per stanza), and reading
pauses while the queue is long. Writes are coalesced per event-loop turn.
Subclasses say what an event means (``_handle``) and how the stream ends
(``stream_error``, ``close``).

A connection with a read rate limit (``limits``, ``core/limits.py``) holds what it
received beyond its token bucket and stops reading until the bucket allows it:
a flooding peer is slowed down, not dropped.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket

from ..xmpp.errors import StreamError

log = logging.getLogger("xmppd.stream")

QUEUE_HIGH = 64          # pause reading above this many queued events


class XMLStreamProtocol(asyncio.Protocol):
    __slots__ = ()

    # set by subclasses' __init__: parser, transport, peer, address, closing, _queue,
    # _drainer, _out, _flush_scheduled, _paused, _bucket, _held

    def _init_io(self) -> None:
        self.transport = None
        self.peer = "?"
        self.address = "?"
        self.closing = False
        self._queue = collections.deque()
        self._drainer = None
        self._out = []
        self._flush_scheduled = False
        self._paused = False
        self._bucket = None      # a TokenBucket when reading is rate-limited
        self._held = None        # bytes received beyond the bucket, waiting

    def _connected(self, transport) -> None:
        """Keep the transport, note the peer, and switch Nagle off (small stanzas
        must not wait for an ACK)."""
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
            self.address = str(peer[0])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass

    # -- input ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        bucket = self._bucket
        if bucket is not None:
            if self._held is not None:
                self._held.append(data)   # already waiting: keep the order
                bucket.take(len(data))
                return
            wait = bucket.take(len(data))
            if wait > 0:
                self._held = [data]
                if self.transport is not None:
                    self.transport.pause_reading()
                asyncio.get_running_loop().call_later(wait, self._release_held)
                return
        self._feed(data)

    def _release_held(self) -> None:
        """The bucket has paid for what was held: handle it and read again."""
        held, self._held = self._held, None
        if held is None or self.closing:
            return
        self._feed(b"".join(held))
        if self.transport is not None and not self.closing and not self._paused:
            self.transport.resume_reading()

    def _feed(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except StreamError as err:
            self._queue.append(err)
            events = ()
        if events:
            self._queue.extend(events)
        if self._queue:
            if self._drainer is None:
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            if len(self._queue) > QUEUE_HIGH and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()

    def eof_received(self):
        return False

    async def _drain(self) -> None:
        try:
            while self._queue and not self.closing:
                item = self._queue.popleft()
                try:
                    if isinstance(item, StreamError):
                        self.stream_error(item)
                    else:
                        await self._handle(item)
                except StreamError as err:
                    self.stream_error(err)
                except Exception:
                    log.exception("%r: internal error", self)
                    self.stream_error(StreamError("internal-server-error"))
                if self._paused and len(self._queue) < QUEUE_HIGH // 2 and not self.closing:
                    self._paused = False
                    if self._held is None:   # else the rate limit resumes it
                        self.transport.resume_reading()
        finally:
            self._drainer = None

    async def _handle(self, item) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def stream_error(self, err: StreamError) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- output -----------------------------------------------------------------
    def _write(self, data: str) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write("".join(self._out).encode())
        self._out.clear()

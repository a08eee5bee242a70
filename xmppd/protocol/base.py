"""What every XMPP stream connection shares, client, server or component.

Bytes go to the sans-I/O ``StreamParser``; its events are queued and handled in
order by one drain task per connection (never a task per stanza), and reading
pauses while the queue is long. Writes are coalesced per event-loop turn.
Subclasses say what an event means (``_handle``) and how the stream ends
(``stream_error``, ``close``).

A connection with a read rate limit (``limits``, ``core/limits.py``) holds what it
received beyond its token bucket and stops reading until the bucket allows it:
a flooding peer is slowed down, not dropped.

Writing is bounded too (``send_buffer`` in ``limits``): what the peer has not taken
(not acknowledged by its TCP: what waits here, in the transport's buffer and in the
kernel's send queue) may exceed the limit only for a while (a burst: offline
messages at login, an archive page) and never by much. While the transport's buffer
is over its high-water mark, what is written next waits here. A connection that
stays over the limit for ``SEND_GRACE`` seconds, or goes over ``HARD_FACTOR`` times
it, *overflows*: the subclass closes it with a stream error and hands what the peer
never took to where it would go had the peer gone offline (:meth:`_overflow`).
To know what the peer took, the stanzas that matter are tracked with their offset
in the output until TCP has acknowledged them: a check a second later (or after
every ``PRUNE_EVERY`` new ones) drops them, so an idle connection keeps none.
"""
from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import socket
import termios

from ..xmpp.errors import StreamError

log = logging.getLogger("xmppd.stream")

QUEUE_HIGH = 64          # pause reading above this many queued events
WRITE_HIGH = 256 * 1024  # the transport's buffer high-water mark: the peer is not reading
CLOSE_GRACE = 5.0        # seconds a closed transport may take to flush, then it is aborted
PRUNE_AFTER = 1.0        # seconds between checks of what TCP has acknowledged
PRUNE_EVERY = 256        # ... or after this many tracked stanzas
SEND_GRACE = 10.0        # seconds a peer may stay over its send limit (it is reading slowly)
HARD_FACTOR = 4          # never more than this times the send limit


class XMLStreamProtocol(asyncio.Protocol):
    __slots__ = ()

    # set by subclasses' __init__: parser, transport, peer, address, closing, _queue,
    # _drainer, _out, _flush_scheduled, _paused, _bucket, _held, _out_size, _written,
    # _write_paused, _send_limit, _track, _prune_handle, _since_check, _over_since

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
        self._out_size = 0       # characters waiting in _out
        self._written = 0        # characters handed to the transport so far
        self._write_paused = False
        self._send_limit = None  # characters that may wait while the peer does not read
        self._track = None       # deque of (end offset, stanza) not yet acknowledged by TCP
        self._prune_handle = None
        self._since_check = 0    # stanzas written since the last check
        self._over_since = None  # when the peer went over its send limit

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

    def _limit_sending(self, limit: int | None) -> None:
        """Bound what may wait for a peer that does not read (None: unbounded)."""
        self._send_limit = limit
        if limit is not None:
            self._track = collections.deque()
            try:
                self.transport.set_write_buffer_limits(high=WRITE_HIGH)
            except (AttributeError, NotImplementedError, ValueError):
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
        self._out_size += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self, force: bool = False) -> None:
        """Hand what waits to the transport, unless the peer is not reading (then
        it waits here, up to the send limit). ``force``: write anyway (closing)."""
        self._flush_scheduled = False
        if not self._out:
            return
        t = self.transport
        if t is None or t.is_closing():
            self._out.clear()
            self._out_size = 0
            return
        if self._write_paused and not force:
            if self._send_limit is not None and self._out_size > self._send_limit and not self.closing:
                self._check_taken()
                if self._prune_handle is None and not self.closing:
                    self._since_check = 1
                    self._prune_handle = asyncio.get_running_loop().call_later(PRUNE_AFTER, self._prune)
            return
        data = "".join(self._out).encode() if self.framing is None else self._encode(self._out)
        self._out.clear()
        self._written += self._out_size
        self._out_size = 0
        t.write(data)
        self._wrote()

    framing = None
    """Set by streams whose transport frames each element (WebSocket, BOSH): then
    ``_encode`` turns what waits into bytes, one string per ``_write`` (a stanza, a
    stream header, a stream end); else it is written as it is."""

    def _encode(self, out: list[str]) -> bytes:  # pragma: no cover - framed streams
        raise NotImplementedError

    def pending(self) -> int:
        """Characters and bytes waiting for the peer here and in the transport."""
        t = self.transport
        try:
            buffered = t.get_write_buffer_size() if t is not None else 0
        except Exception:
            buffered = 0
        return self._out_size + buffered

    async def drained(self, timeout: float = SEND_GRACE) -> None:
        """Backpressure for who sends a lot at once (offline messages, an archive):
        wait until what waits for the peer is under half its send limit (or the
        connection goes, or ``timeout``)."""
        limit = self._send_limit
        if limit is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.closing and self.pending() > limit // 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)

    def _wrote(self) -> None:
        """After a write to the transport (s2s forgets what it kept to resend)."""

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: the peer does not read."""
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._out and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _close_transport(self) -> None:
        """Close, and abort if the peer has not taken what is buffered within
        ``CLOSE_GRACE`` seconds (a peer that does not read would hold it forever)."""
        t = self.transport
        if t is None:
            return
        t.close()
        try:
            pending = t.get_write_buffer_size()
        except Exception:
            pending = 0
        if pending:
            asyncio.get_running_loop().call_later(CLOSE_GRACE, t.abort)

    # -- what the peer has taken ------------------------------------------------
    def _sent(self, el=None) -> None:
        """A stanza was just written with ``_write`` on a limited connection; ``el``:
        keep it until TCP acknowledges it (it would go elsewhere if never taken)."""
        if el is not None:
            self._track.append((self._written + self._out_size, el))
        self._since_check += 1
        if self._since_check >= PRUNE_EVERY:
            self._check_taken()
        if self._prune_handle is None and not self.closing:
            self._prune_handle = asyncio.get_running_loop().call_later(PRUNE_AFTER, self._prune)

    def _unconfirmed(self) -> int:
        """Bytes written that the peer's TCP has not acknowledged: the transport's
        buffer and the kernel's send queue (for TLS a little more than the text it
        carries: counting too much only makes a stanza count as not taken)."""
        t = self.transport
        if t is None:
            return 1 << 62
        try:
            n = t.get_write_buffer_size()
        except Exception:
            n = 0
        # over TLS, asyncio's SSL transport counts only its own buffers: the encrypted
        # bytes waiting in the socket transport below it were handed over but not sent
        lower = getattr(getattr(t, "_ssl_protocol", None), "_transport", None)
        if lower is not None and lower is not t:
            try:
                n += lower.get_write_buffer_size()
            except Exception:
                pass
        sock = t.get_extra_info("socket")
        if sock is not None:
            try:
                n += int.from_bytes(fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4),
                                    "little", signed=True)
            except (OSError, ValueError, AttributeError):
                pass
        return n

    def _prune(self) -> None:
        self._prune_handle = None
        if self._check_taken() and (self._track or self._since_check):
            self._since_check = 0
            self._prune_handle = asyncio.get_running_loop().call_later(PRUNE_AFTER, self._prune)

    def _check_taken(self) -> bool:
        """Drop what TCP acknowledged; overflow when more than the limit is still
        not taken. False once the connection is closing."""
        q = self._track
        if self.closing:
            return False
        self._since_check = 0
        unconfirmed = self._unconfirmed()
        if unconfirmed:
            self._since_check = 1    # keep checking while something is not taken
        boundary = self._written - unconfirmed
        while q and q[0][0] <= boundary:
            q.popleft()
        limit = self._send_limit
        if limit is not None:
            pending = unconfirmed + self._out_size
            if pending > limit:
                now = asyncio.get_running_loop().time()
                if self._over_since is None:
                    self._over_since = now
                if pending > HARD_FACTOR * limit or now - self._over_since > SEND_GRACE:
                    self._overflow()
                    return False
            else:
                self._over_since = None
        return True

    def _untaken(self) -> list:
        """The tracked stanzas the peer has not taken (written or still waiting here)."""
        q = self._track
        if not q:
            return []
        boundary = self._written - self._unconfirmed()
        out = [el for end, el in q if end > boundary]
        q.clear()
        return out

    def _overflow(self) -> None:
        """The peer does not read and more than the send limit waits: close."""
        raise NotImplementedError

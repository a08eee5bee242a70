"""A raw socket peer for the tests of bad input: what a broken client would send."""
from __future__ import annotations

import asyncio
import ssl

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>")


class Raw:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.buf = b""

    @classmethod
    async def connect(cls, port, *, ssl_ctx: ssl.SSLContext | None = None, server_hostname=None):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx,
                                             server_hostname=server_hostname if ssl_ctx else None)
        return cls(r, w)

    def send(self, data: str | bytes):
        self.writer.write(data.encode() if isinstance(data, str) else data)

    async def open(self, to="xmppd.test"):
        self.send(HEADER.format(to=to))
        return await self.read_until(b"</stream:features>")

    async def read_until(self, marker: bytes, timeout=10) -> str:
        async def go():
            while marker not in self.buf:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                self.buf += chunk
        await asyncio.wait_for(go(), timeout)
        i = self.buf.find(marker)
        if i < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:i + len(marker)], self.buf[i + len(marker):]
        return out.decode(errors="replace")

    async def read_to_close(self, timeout=10) -> str:
        async def go():
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    return
                self.buf += chunk
        await asyncio.wait_for(go(), timeout)
        out, self.buf = self.buf, b""
        return out.decode(errors="replace")

    async def starttls(self, cafile, server_hostname="xmppd.test"):
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        got = await self.read_until(b"/>")
        assert "proceed" in got, got
        ctx = ssl.create_default_context(cafile=cafile)
        await self.writer.start_tls(ctx, server_hostname=server_hostname)

    def close(self):
        try:
            self.writer.close()
        except Exception:
            pass

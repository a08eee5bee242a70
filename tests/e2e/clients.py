"""Real client libraries, connected to the test server."""
from __future__ import annotations

import asyncio

import slixmpp

TIMEOUT = 10


class SlixClient(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives."""

    def __init__(self, jid, password, *, plugins=("xep_0030", "xep_0199", "xep_0092", "xep_0202")):
        super().__init__(jid, password)
        for p in plugins:
            self.register_plugin(p)
        self.messages: asyncio.Queue = asyncio.Queue()
        self.presences: asyncio.Queue = asyncio.Queue()
        self.stream_errors: list = []
        self.errors: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("message_error", self.errors.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)
        self.add_event_handler("stream_error", self.stream_errors.append)

    async def next_message(self, timeout=TIMEOUT):
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_error(self, timeout=TIMEOUT):
        return await asyncio.wait_for(self.errors.get(), timeout)


async def slix_connect(srv, jid, password="secret", *, send_presence=True, priority=None,
                       direct_tls=False, **kw) -> SlixClient:
    c = SlixClient(jid, password, **kw)
    c.ca_certs = srv.cafile
    if direct_tls:
        c.enable_direct_tls = True
        c.enable_starttls = False
    started = asyncio.get_running_loop().create_future()
    failed = []

    def on_start(_):
        if not started.done():
            started.set_result(True)

    def on_fail(ev=None):
        failed.append(ev)
        if not started.done():
            started.set_exception(AuthFailed(str(ev)))

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("failed_all_auth", on_fail)
    c.connect("127.0.0.1", srv.tls_port if direct_tls else srv.port)
    try:
        await asyncio.wait_for(started, TIMEOUT)
    except BaseException:
        c.disconnect()
        raise
    if send_presence:
        if priority is not None:
            c.send_presence(ppriority=priority)
        else:
            c.send_presence()
        # our own presence comes back (RFC 6121 §4.2.2): wait for it, so the
        # session is known available before the test goes on
        while True:
            p = await asyncio.wait_for(c.presences.get(), TIMEOUT)
            if p["from"] == c.boundjid:
                break
    return c


class AuthFailed(Exception):
    pass


async def slix_close(*clients):
    """Close each stream (``</stream:stream>``) and wait for the server's reply."""
    await asyncio.gather(*(asyncio.wait_for(c.disconnect(wait=2), 5) for c in clients),
                         return_exceptions=True)

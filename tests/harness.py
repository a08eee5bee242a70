"""A socket-free harness for module logic: a real server (the real router, hosts,
modules and core services) on memory storage, with no listener, and clients that
are real client sessions whose bytes never leave the process.

    async with Harness(modules=("roster", "blocklist")) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert reply.get("type") == "result"
        alice.send("<message to='bob@example.com' type='chat'><body>hi</body></message>")
        msg = await bob.next("message")

What a client is sent goes through the real serializer and is parsed back, so a
test sees exactly what a client would read. Used by the module unit tests and by
the fuzz targets.
"""
from __future__ import annotations

import asyncio
import itertools
import textwrap
import xml.etree.ElementTree as ET

from xmppd.app import FINDER
from xmppd.config import parse_config_text
from xmppd.core.server import Server
from xmppd.protocol.c2s import C2SSession
from xmppd.storage import open_storage
from xmppd.stream import serialize
from xmppd.xmpp import ns

DOMAIN = "example.com"
TIMEOUT = 5
_ids = itertools.count(1)


class _Transport:
    """What a session writes to: kept, never sent."""

    def __init__(self):
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("192.0.2.1", 40000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def parse(xml: str | ET.Element) -> ET.Element:
    """A stanza given as text (in the client namespace unless it says otherwise)."""
    if isinstance(xml, ET.Element):
        return xml
    return ET.fromstring(f"<wrap xmlns='{ns.CLIENT}'>{xml}</wrap>")[0]


class Client(C2SSession):
    """A bound client session: ``send()`` is what the client sends, ``received``
    what the server sent it (parsed back from the serialized text)."""

    def __init__(self, server, host, user: str, resource: str):
        super().__init__(server)
        self.transport = _Transport()
        self.peer = "192.0.2.1:40000"
        self.host = host
        self.tls = True
        self.authenticated = True
        self.header_sent = True
        self.username = user
        self.resource = resource
        self.bare_jid = f"{user}@{host.name}"
        self.full_jid = f"{self.bare_jid}/{resource}"
        self.received: list[ET.Element] = []
        self.stream_errors: list = []
        self._arrived = asyncio.Event()

    # what the server sends to the client
    def deliver(self, el: ET.Element) -> None:
        if self.delivery_hooks:
            for hook in self.delivery_hooks:
                hook(self, el)
        if self.closing:
            return
        self._record(serialize(el))

    def send_nonza(self, el: ET.Element) -> None:
        if not self.closing:
            self._record(serialize(el))

    def _record(self, text: str) -> None:
        wrapped = ET.fromstring(f"<wrap xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAM}'>{text}</wrap>")
        self.received.extend(wrapped)
        self._arrived.set()

    def stream_error(self, err) -> None:
        self.stream_errors.append(err)
        super().stream_error(err)

    def _write(self, data: str) -> None:
        pass   # headers and the closing tag: nothing to record

    # what the client sends
    async def send_stanza(self, xml: str | ET.Element) -> None:
        """Send a stanza as the client would (the session stamps 'from')."""
        await self._on_element(parse(xml))

    async def next(self, kind: str | None = None, *, timeout: float = TIMEOUT,
                   match=None) -> ET.Element:
        """The first received element of ``kind`` (``message``, ``iq``, a tag...)
        that ``match(el)`` accepts, removed from ``received``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, el in enumerate(self.received):
                local = el.tag.rpartition("}")[2]
                if (kind is None or kind in (local, el.tag)) and (match is None or match(el)):
                    return self.received.pop(i)
            left = deadline - loop.time()
            if left <= 0:
                got = ", ".join(e.tag for e in self.received) or "nothing"
                raise TimeoutError(f"{self.full_jid}: no {kind or 'element'} arrived (got {got})")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def iq(self, type_: str, payload: str | ET.Element, *, to: str | None = None,
                 timeout: float = TIMEOUT) -> ET.Element:
        """Send an IQ and return the reply (result or error) to it."""
        iq_id = f"h{next(_ids)}"
        iq = ET.Element(f"{{{ns.CLIENT}}}iq", {"type": type_, "id": iq_id})
        if to:
            iq.set("to", to)
        iq.append(parse(payload))
        await self.send_stanza(iq)
        return await self.next("iq", timeout=timeout, match=lambda e: e.get("id") == iq_id)

    async def online(self, xml: str = "<presence/>") -> None:
        """Send (initial) presence and wait for it to come back (RFC 6121 §4.2.2)."""
        await self.send_stanza(xml)
        await self.next("presence", match=lambda e: e.get("from") == self.full_jid)

    async def disconnect(self) -> None:
        """The client goes away (a clean close: the resource ends). (Not ``close``:
        that is the session's own, which the server calls to close the stream.)"""
        self.clean_close = True
        self.connection_lost(None)
        await asyncio.sleep(0)
        await self.server_tasks()

    async def server_tasks(self) -> None:
        """Let what the server spawned on this session's behalf finish."""
        for _ in range(3):
            tasks = set(self.server._tasks)
            if not tasks:
                return
            await asyncio.wait(tasks, timeout=TIMEOUT)


def config_text(*, hosts=(DOMAIN,), modules=(), extra: str = "", host_extra: str = "",
                components: str = "", data_path: str = "/nonexistent") -> str:
    mods = ", ".join(f'"{m}"' for m in modules)
    text = textwrap.dedent(f"""
        admins = {{ "admin@{hosts[0]}" }}
        data_path = "{data_path}"
        control_socket = false
        modules_enabled = {{ {mods} }}
    """) + textwrap.dedent(extra)
    for h in hosts:
        text += f'VirtualHost "{h}"\n' + textwrap.indent(textwrap.dedent(host_extra), "    ")
    return text + textwrap.dedent(components)


class Harness:
    """One server, its hosts and modules; clients made with :meth:`client`."""

    def __init__(self, *, modules=(), hosts=(DOMAIN,), extra: str = "", host_extra: str = "",
                 components: str = "", tmp_path=None):
        self.hosts = hosts
        self._text = dict(modules=modules, hosts=hosts, extra=extra, host_extra=host_extra,
                          components=components)
        self._tmp = tmp_path
        self.server: Server | None = None
        self.clients: list[Client] = []

    async def __aenter__(self) -> "Harness":
        import tempfile
        if self._tmp is None:
            self._tmpdir = tempfile.TemporaryDirectory()
            self._tmp = self._tmpdir.name
        text = config_text(data_path=f"{self._tmp}/data", **self._text)
        cfg = parse_config_text(text, filename=f"{self._tmp}/xmppd.cfg.lua", base_dir=str(self._tmp))
        storage = await open_storage("memory")
        self.server = Server(cfg, storage=storage, finder=FINDER)
        await self.server.start()
        return self

    async def __aexit__(self, *exc) -> None:
        for c in self.clients:
            if not c.closed:
                c.clean_close = True
                c.connection_lost(None)
        await self.server.stop()
        await self.server.storage.close()
        if getattr(self, "_tmpdir", None) is not None:
            self._tmpdir.cleanup()

    def host(self, name: str | None = None):
        return self.server.hosts[name or self.hosts[0]]

    async def adduser(self, jid: str, password: str = "secret") -> str:
        user, _, domain = jid.partition("@")
        await self.server.accounts.create(domain, user, password)
        return jid

    async def client(self, jid: str, *, create: bool = True, available: bool = False) -> Client:
        """A bound session of ``jid`` (``user@domain/resource``); the account is
        created unless it exists."""
        bare, _, resource = jid.partition("/")
        user, _, domain = bare.partition("@")
        host = self.host(domain)
        if create and not await self.server.accounts.exists(domain, user):
            await self.server.accounts.create(domain, user, "secret")
        c = Client(self.server, host, user, resource or "res")
        self.server.c2s_sessions.add(c)
        host.add_session(c)
        await host.events.notify("resource-bind", c)
        self.clients.append(c)
        if available:
            await c.online()
        return c

    async def route(self, xml: str | ET.Element, origin=None) -> None:
        """Route a stanza as if it came from elsewhere (a server, a module)."""
        await self.server.router.route(parse(xml), origin)

"""A plain RFC 7395 client on aiohttp's WebSocket client: it speaks the framing and
checks what the server sends (every message one complete XML document), so the
tests see exactly what a browser client such as Converse.js gets."""
from __future__ import annotations

import asyncio
import base64
import ssl
import xml.etree.ElementTree as ET

import aiohttp

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
STREAM = "http://etherx.jabber.org/streams"
TIMEOUT = 10


def client_ssl(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


class WSClient:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                 domain: str):
        self.http = session
        self.ws = ws
        self.domain = domain
        self.raw: list[str] = []    # every text message received, as sent
        self.jid: str | None = None

    @classmethod
    async def connect(cls, url: str, domain: str, *, cafile: str | None = None,
                      headers: dict | None = None, protocols=("xmpp",)) -> "WSClient":
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                url, protocols=protocols, ssl=client_ssl(cafile) if cafile else False,
                server_hostname=domain if cafile else None,
                headers={"Host": domain, **(headers or {})}, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, domain)

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self, timeout: float = TIMEOUT) -> ET.Element:
        """The next message, parsed on its own (RFC 7395 §3.3.3)."""
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"not a text message: {msg.type} {msg.data!r} {msg.extra!r}")
        self.raw.append(msg.data)
        return ET.fromstring(msg.data)

    async def until(self, pred, timeout: float = TIMEOUT) -> ET.Element:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            el = await self.recv(max(0.01, deadline - loop.time()))
            if pred(el):
                return el

    async def open(self) -> tuple[ET.Element, ET.Element]:
        await self.send(f"<open xmlns='{FRAMING}' to='{self.domain}' version='1.0'/>")
        opened = await self.recv()
        assert opened.tag == f"{{{FRAMING}}}open", opened.tag
        features = await self.recv()
        return opened, features

    async def login(self, user: str, password: str, resource: str = "web") -> str:
        _, features = await self.open()
        mechs = [m.text for m in features.iter(f"{{{SASL}}}mechanism")]
        assert "PLAIN" in mechs, mechs
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
        got = await self.recv()
        if got.tag != f"{{{SASL}}}success":
            raise PermissionError(ET.tostring(got).decode())
        _, features = await self.open()
        assert features.find(f"{{{BIND}}}bind") is not None
        await self.send(f"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='{BIND}'>"
                        f"<resource>{resource}</resource></bind></iq>")
        res = await self.until(lambda e: e.get("id") == "b1")
        assert res.get("type") == "result", ET.tostring(res)
        self.jid = res.find(f"{{{BIND}}}bind/{{{BIND}}}jid").text
        return self.jid

    async def close(self) -> None:
        try:
            if not self.ws.closed:
                await self.send(f"<close xmlns='{FRAMING}'/>")
                await self.ws.close()
        except Exception:
            pass
        finally:
            await self.http.close()

"""TCP listeners for each service on each configured interface."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Callable

log = logging.getLogger("xmppd.net")


def resolve_interfaces(interfaces) -> list[str]:
    """Prosody's ``interfaces``: ``"*"`` is IPv4 any, ``"::"`` IPv6 any."""
    if isinstance(interfaces, str):
        interfaces = [interfaces]
    out = []
    for i in interfaces or ("*", "::"):
        out.append("0.0.0.0" if i == "*" else i)
    return out


async def listen(factory: Callable[[], asyncio.Protocol], interfaces: list[str], port: int,
                 *, ssl_context: ssl.SSLContext | None = None, name: str = "c2s") -> list[asyncio.AbstractServer]:
    """Listen on ``port`` on every interface; an interface that can't be bound
    (e.g. IPv6 disabled) is logged and skipped, but if none binds, raise."""
    loop = asyncio.get_running_loop()
    servers = []
    errors = []
    for addr in interfaces:
        try:
            srv = await loop.create_server(factory, addr, port, ssl=ssl_context, reuse_address=True,
                                           backlog=1024, ssl_handshake_timeout=30 if ssl_context else None)
        except OSError as exc:
            errors.append(f"{addr}:{port}: {exc.strerror or exc}")
            log.warning("%s: cannot listen on [%s]:%s: %s", name, addr, port, exc.strerror or exc)
            continue
        for sock in srv.sockets:
            log.info("%s listening on %s", name, _fmt(sock))
        servers.append(srv)
    if not servers and interfaces:
        raise OSError(f"{name}: could not listen on any interface: {'; '.join(errors)}")
    return servers


def _fmt(sock: socket.socket) -> str:
    addr = sock.getsockname()
    return f"[{addr[0]}]:{addr[1]}" if sock.family == socket.AF_INET6 else f"{addr[0]}:{addr[1]}"


def bound_ports(servers: list[asyncio.AbstractServer]) -> list[int]:
    ports = []
    for srv in servers:
        for sock in srv.sockets:
            p = sock.getsockname()[1]
            if p not in ports:
                ports.append(p)
    return ports

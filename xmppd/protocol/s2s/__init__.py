"""Server-to-server federation (RFC 6120): ``manager`` (outgoing links, policy, TLS
contexts), ``stream`` (what both directions share), ``incoming`` and ``outgoing``
(the two stream state machines). Dialback (XEP-0220) and bidirectional streams
(XEP-0288) are modules that hook the events the streams fire.

:func:`register` wires it into a server: the manager as ``server.s2s``, its
listeners, the ``s2s`` control command and the ``route/remote`` handler.
"""
from __future__ import annotations

from ...core.modules import ControlCommand, Listener
from .incoming import IncomingStream
from .manager import OutgoingLink, S2SManager
from .outgoing import OutgoingStream
from .stream import S2SFailure, S2SStream

__all__ = ["register", "S2SManager", "OutgoingLink", "S2SStream", "IncomingStream",
           "OutgoingStream", "S2SFailure"]


def register(server) -> S2SManager:
    manager = S2SManager(server)
    server.s2s = manager
    server.add_item("listener", Listener(
        "s2s", lambda: IncomingStream(manager), "s2s_ports", [5269],
        interfaces_option="s2s_interfaces", fatal=False))   # as Prosody: outgoing still works
    server.add_item("listener", Listener(
        "s2s_direct_tls", lambda: IncomingStream(manager, direct_tls=True), "s2s_direct_tls_ports",
        [], interfaces_option="s2s_interfaces",
        ssl_context=lambda srv: manager._direct_tls_listener_context(),
        when=lambda srv: bool(srv.certs)))

    async def s2s_command(ctx, args):
        """The server-to-server streams."""
        return manager.describe()
    server.add_item("control-command", ControlCommand("s2s", s2s_command, read_only=True,
                                                      doc="The server-to-server streams."))
    server.add_item("status-describer", manager.status)
    server.add_item("session-source", lambda: list(manager.sessions))   # for xmppctl trace
    server.add_item("metrics", manager.metrics)
    server.events.hook("route/remote", manager.route_remote)
    server.events.hook("server-listening", lambda _srv: manager.start())
    server.events.hook("server-closing", lambda _srv: manager.stop())
    server.events.hook("certificates-reloaded", manager.certificates_reloaded)
    return manager


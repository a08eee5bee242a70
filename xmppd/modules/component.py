"""Delivery to an external component (XEP-0114): every stanza for its domain goes
to its connection; while it is not connected, requests bounce with
``service-unavailable``. Loaded automatically for ``Component "x.d"`` lines
without a module name; the connection itself is the component protocol's
(``protocol/component.py``), which hands it over with ``component-connected``."""
from xmppd.moduleapi import FIRST, HANDLED, stanza_event
from xmppd.xmpp.errors import StanzaError, StreamError

PROTOCOLS = ["XEP-0114"]
OPTIONS: list = []


class Link:
    """The component's current connection (None while it is not connected)."""
    __slots__ = ("conn",)

    def __init__(self):
        self.conn = None

    def connected(self, conn):
        current = self.conn
        if current is not None and not current.closing:
            raise StreamError("conflict", "this component is already connected")
        self.conn = conn
        return HANDLED

    def disconnected(self, conn) -> None:
        if self.conn is conn:
            self.conn = None

    def forward(self, sev):
        conn = self.conn
        if conn is None or conn.closing:
            if sev.stanza.get("type") not in ("error", "result"):
                if sev.kind != "presence":
                    raise StanzaError("service-unavailable", "the component is not connected")
            return HANDLED
        conn.send(sev.stanza)
        return HANDLED


def setup(m) -> None:
    link = Link()
    m.provide(link)
    m.hook("component-connected", link.connected)
    m.hook("component-disconnected", link.disconnected)
    for kind in ("message", "presence", "iq"):
        for to_type in ("host", "bare", "full"):
            m.hook(stanza_event(kind, to_type), link.forward, FIRST)

"""Delivery to an external component (XEP-0114): every stanza for its domain
goes to its connection; while it is not connected, requests bounce with
``service-unavailable``. Loaded automatically for ``Component "x.d"`` lines
without a module name."""
from xmppd.core import events as ev
from xmppd.errors import StanzaError

PROTOCOLS = ["XEP-0114"]
OPTIONS: list = []


def setup(m) -> None:
    host = m.host

    def forward(sev):
        conn = host.state.get("component")
        if conn is None or conn.closing:
            if sev.stanza.get("type") not in ("error", "result"):
                if sev.kind != "presence":
                    raise StanzaError("service-unavailable", "the component is not connected")
            return ev.HANDLED
        conn.send(sev.stanza)
        return ev.HANDLED

    for kind in ("message", "presence", "iq"):
        for to_type in ("host", "bare", "full"):
            m.hook(ev.stanza_event(kind, to_type), forward, ev.FIRST)

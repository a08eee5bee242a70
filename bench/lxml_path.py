"""Would lxml make the routing path faster? The stanza path measured both ways.

    .venv/bin/python bench/lxml_path.py [N]

lxml elements cannot be mixed with the stdlib's (an lxml element refuses a stdlib
child, and slixmpp's stanza classes, the server's protocol vocabulary, build stdlib
elements), so lxml could only come in as a whole-server switch. This measures what
such a switch would change on the two hot paths, per stanza, best of REPEAT runs:

* **routing**: a chat message read off a stream (one ``feed`` per stanza), its
  envelope read (``to``, ``type``), ``from`` stamped, and written out for the
  recipient: xmppd's ``StreamParser`` + ``serialize`` against an lxml pull parser
  with the same depth-2 contract + lxml's ``tostring`` (and + xmppd's serializer,
  which also walks lxml trees);
* **MUC fan-out**: one groupchat message delivered to 50 occupants: xmppd's
  shared-children copies (``copy_of``: the children are serialized once) against
  lxml, where an element has one parent, so each copy is a new envelope around
  the children serialized once with ``tostring`` (the best lxml allows).

The numbers and the decision are recorded in docs/performance.md.
"""
from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET

from lxml import etree as LET

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from xmppd.stream import SharedContent, StreamParser, copy_of, serialize  # noqa: E402

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>")
MESSAGE = (b"<message to='juliet@example.com/balcony' type='chat' id='m%d'>"
           b"<body>Art thou not Romeo, and a Montague?</body>"
           b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
GROUPCHAT = (b"<message to='room@conference.example.com' type='groupchat' id='g%d'>"
             b"<body>Neither, fair saint, if either thee dislike.</body>"
             b"<stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.example.com' id='x'/>"
             b"<occupant-id xmlns='urn:xmpp:occupant-id:0' id='abc'/></message>")
OCCUPANTS = 50
REPEAT = 5
FROM = "romeo@example.net/orchard"


class LxmlStreamParser:
    """The depth-2 contract of ``StreamParser`` on lxml's pull parser (no limits,
    no restricted-XML checks: the cheapest lxml can be)."""

    def __init__(self):
        self._p = LET.XMLPullParser(events=("start", "end"), resolve_entities=False,
                                    no_network=True)
        self._depth = 0

    def feed(self, data: bytes) -> list:
        self._p.feed(data)
        out = []
        for kind, el in self._p.read_events():
            if kind == "start":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 1:
                    el.getparent().remove(el)   # the stream keeps no stanza
                    out.append(el)
        return out


def _best(fn) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def routing_stdlib(msgs):
    p = StreamParser()
    p.feed(HEADER)
    for m in msgs:
        for ev in p.feed(m):
            el = ev.element
            el.get("to"), el.get("type")
            el.set("from", FROM)
            serialize(el).encode()


def routing_lxml_tostring(msgs):
    p = LxmlStreamParser()
    p.feed(HEADER)
    for m in msgs:
        for el in p.feed(m):
            el.get("to"), el.get("type")
            el.set("from", FROM)
            LET.tostring(el)


def routing_lxml_ours(msgs):
    p = LxmlStreamParser()
    p.feed(HEADER)
    for m in msgs:
        for el in p.feed(m):
            el.get("to"), el.get("type")
            el.set("from", FROM)
            serialize(el).encode()


def fanout_stdlib(msgs):
    p = StreamParser()
    p.feed(HEADER)
    recipients = [f"user{i}@example.com/res" for i in range(OCCUPANTS)]
    for m in msgs:
        for ev in p.feed(m):
            tmpl = ET.Element("{jabber:client}message", {"type": "groupchat",
                                                          "from": "room@conference.example.com/romeo"})
            tmpl.extend(list(ev.element))
            shared = SharedContent(tmpl)
            for to in recipients:
                serialize(copy_of(tmpl, shared, to=to)).encode()


def fanout_lxml(msgs):
    p = LxmlStreamParser()
    p.feed(HEADER)
    recipients = [f"user{i}@example.com/res" for i in range(OCCUPANTS)]
    for m in msgs:
        for el in p.feed(m):
            inner = b"".join(LET.tostring(c) for c in el)   # children once
            for to in recipients:
                env = LET.Element("{jabber:client}message", type="groupchat",
                                  to=to, **{"from": "room@conference.example.com/romeo"})
                head = LET.tostring(env)[:-2]               # "<message .../" -> open tag
                head + b">" + inner + b"</message>"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    msgs = [MESSAGE % i for i in range(n)]
    gcs = [GROUPCHAT % i for i in range(max(1, n // 50))]
    print(f"Python {sys.version.split()[0]}, lxml {LET.__version__}, libxml2 "
          f"{'.'.join(map(str, LET.LIBXML_VERSION))}; {n} messages, "
          f"{len(gcs)} groupchat messages x {OCCUPANTS} occupants")
    rows = []
    for name, fn, data, per in (
            ("routing, xmppd (expat StreamParser + serialize)", routing_stdlib, msgs, 1),
            ("routing, lxml pull parser + lxml tostring", routing_lxml_tostring, msgs, 1),
            ("routing, lxml pull parser + xmppd serialize", routing_lxml_ours, msgs, 1),
            ("MUC fan-out, xmppd (shared children, copy_of)", fanout_stdlib, gcs, OCCUPANTS),
            ("MUC fan-out, lxml (children serialized once)", fanout_lxml, gcs, OCCUPANTS)):
        dt = _best(lambda: fn(data))
        per_s = len(data) * per / dt
        rows.append((name, per_s))
        print(f"{name:52} {per_s:>12,.0f}/s  {1e6 / per_s:6.2f} µs each")
    base_r, base_m = rows[0][1], rows[3][1]
    print(f"lxml/xmppd: routing {rows[1][1] / base_r:.2f}x (tostring), "
          f"{rows[2][1] / base_r:.2f}x (our serializer); fan-out {rows[4][1] / base_m:.2f}x")


if __name__ == "__main__":
    main()

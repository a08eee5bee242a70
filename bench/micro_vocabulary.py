"""What the protocol vocabulary (xmppd/xmpp) costs, next to the routing path.

    .venv/bin/python bench/micro_vocabulary.py

Best of 5 timings per operation, in µs. The numbers are quoted in
docs/architecture.md (where slixmpp's stanza classes are used, and where not).
"""
from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from slixmpp.stanza import Message  # noqa: E402

from xmppd.stream import StreamParser, serialize  # noqa: E402
from xmppd.xmpp import disco, forms, mam, ns, rsm, stanza as st  # noqa: E402

MESSAGE = ET.fromstring("<message xmlns='jabber:client' to='juliet@example.com/balcony' "
                        "from='romeo@example.net/orchard' type='chat' id='x'>"
                        "<body>Art thou not Romeo, and a Montague?</body></message>")
QUERY = ET.fromstring(
    "<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'>"
    "<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>"
    "<field var='with'><value>juliet@example.com</value></field>"
    "<field var='start'><value>2026-01-01T00:00:00Z</value></field></x>"
    "<set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query>")
FEATURES = [f"urn:example:feature:{i}" for i in range(44)]


def best(fn, n: int) -> float:
    out = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out = min(out, (time.perf_counter() - t) / n)
    return out * 1e6


def route_one() -> None:
    p = StreamParser()
    p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
           b"to='example.com' version='1.0'>")
    msg = (b"<message to='juliet@example.com/balcony' type='chat' id='m'>"
           b"<body>Art thou not Romeo, and a Montague?</body></message>")

    def once():
        el = p.feed(msg)[0].element
        el.set("from", "romeo@example.net/orchard")
        serialize(el)
    return once


def main() -> None:
    rows = [
        ("routing path: parse + stamp 'from' + serialize one message", route_one(), 20000),
        ("wrap a message in slixmpp's Message (Message(xml=el))", lambda: Message(xml=MESSAGE), 20000),
        ("read a MAM query (form + RSM) with xmpp.mam.parse_query", lambda: mam.parse_query(QUERY), 5000),
        ("read the RSM <set/> alone (xmpp.rsm.request)", lambda: rsm.request(QUERY), 20000),
        ("build the MAM search form (xmpp.mam.query_form, 7 fields)", mam.query_form, 2000),
        ("build a disco#info of 44 features (xmpp.disco.info)",
         lambda: disco.info([("server", "im", "xmppd")], FEATURES), 2000),
        ("build a 3-field result form (xmpp.forms.build)",
         lambda: forms.build(ns.SERVERINFO, [forms.Field("admin-addresses", "list-multi", ["xmpp:a@b"])],
                             type="result"), 5000),
        ("an error reply (xmpp.stanza.error_reply, plain ElementTree)",
         lambda: st.error_reply(MESSAGE, __import__("xmppd.xmpp.errors", fromlist=["x"]).StanzaError(
             "service-unavailable")), 20000),
    ]
    print(f"Python {sys.version.split()[0]}")
    for name, fn, n in rows:
        print(f"{best(fn, n):8.1f} µs  {name}")


if __name__ == "__main__":
    main()

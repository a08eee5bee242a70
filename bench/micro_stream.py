"""Micro-benchmark of xmppd.stream: parse and serialize N small messages.

    .venv/bin/python bench/micro_stream.py [N]

Prints messages per second (best of REPEAT runs, the machine may be shared) for:
  parse       StreamParser.feed, one message per feed() call (as off a socket)
  parse-bulk  StreamParser.feed, 64 KiB chunks
  XMLPullParser  stdlib ET.XMLPullParser, one message per feed(), for comparison
  serialize   xmppd.stream.serialize
  ET.tostring stdlib serializer, for comparison
  roundtrip   parse + serialize, one message per feed()
"""
from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from xmppd.stream import StanzaEvent, StreamParser, serialize  # noqa: E402

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>")
MESSAGE = (b"<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
           b"type='chat' id='%d'><body>Art thou not Romeo, and a Montague?</body></message>")


REPEAT = 5


def _best(fn) -> float:
    """Shortest of REPEAT timings of fn()."""
    best = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f}/s"


def bench_parse(n: int) -> list[ET.Element]:
    msgs = [MESSAGE % i for i in range(n)]

    def run():
        # elements are dropped as they come, as in the server (keeping 100k
        # of them alive would mostly measure the garbage collector)
        p = StreamParser()
        p.feed(HEADER)
        count = 0
        for m in msgs:
            count += len(p.feed(m))
        assert count == n
    dt = _best(run)
    print(f"parse       {_rate(n, dt)}")
    p = StreamParser()
    p.feed(HEADER)
    out = []
    for m in msgs:
        out.extend(p.feed(m))
    assert all(type(e) is StanzaEvent for e in out)
    return [e.element for e in out]


def bench_pullparser(n: int) -> None:
    msgs = [MESSAGE % i for i in range(n)]

    def run():
        pp = ET.XMLPullParser(events=("start", "end"))
        pp.feed(HEADER)
        depth = 0
        count = 0
        for m in msgs:
            pp.feed(m)
            for kind, _el in pp.read_events():
                if kind == "start":
                    depth += 1
                else:
                    depth -= 1
                    if depth == 1:
                        count += 1
        assert count == n
    dt = _best(run)
    print(f"XMLPullParser{_rate(n, dt)}  (stdlib, for comparison)")


def bench_parse_bulk(n: int) -> None:
    data = b"".join(MESSAGE % i for i in range(n))
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    def run():
        p = StreamParser()
        p.feed(HEADER)
        count = 0
        for c in chunks:
            count += len(p.feed(c))
        assert count == n
    dt = _best(run)
    print(f"parse-bulk  {_rate(n, dt)}")


def bench_serialize(els: list[ET.Element]) -> float:
    def run():
        for el in els:
            serialize(el)
    dt = _best(run)
    print(f"serialize   {_rate(len(els), dt)}")
    return len(els) / dt


def bench_tostring(els: list[ET.Element]) -> float:
    def run():
        for el in els:
            ET.tostring(el, encoding="unicode")
    dt = _best(run)
    print(f"ET.tostring {_rate(len(els), dt)}")
    return len(els) / dt


def bench_roundtrip(n: int) -> None:
    msgs = [MESSAGE % i for i in range(n)]
    def run():
        p = StreamParser()
        p.feed(HEADER)
        for m in msgs:
            for ev in p.feed(m):
                serialize(ev.element).encode()
    dt = _best(run)
    print(f"roundtrip   {_rate(n, dt)}  (parse + serialize + encode)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"{n} messages of {len(MESSAGE % 0)} bytes, Python {sys.version.split()[0]}")
    els = bench_parse(n)
    bench_pullparser(n)
    bench_parse_bulk(n)
    ours = bench_serialize(els)
    theirs = bench_tostring(els)
    print(f"serialize is {ours / theirs:.1f}x ET.tostring")
    bench_roundtrip(n)


if __name__ == "__main__":
    main()

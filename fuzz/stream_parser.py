#!/usr/bin/env python3
"""Fuzz the sans-I/O stream parser: any bytes after a stream header, cut into
pieces at places the input chooses. Expected: events, or a StreamError (a stream
error the server sends); never another exception, and never an event after an
error."""
import atheris

with atheris.instrument_imports(include=["xmppd"]):
    from _common import run
    from xmppd.stream import StreamParser
    from xmppd.xmpp.errors import StreamError

HEADERS = [
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
    b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
]


def test_one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    with_header = fdp.ConsumeBool()
    header = HEADERS[fdp.ConsumeIntInRange(0, len(HEADERS) - 1)]
    cuts = [fdp.ConsumeIntInRange(1, 64) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    p = StreamParser(max_stanza_size=4096)
    stream = (header if with_header else b"") + body
    pos = 0
    failed = False
    for n in cuts + [len(stream)]:
        piece, pos = stream[pos:pos + n], pos + n
        try:
            events = p.feed(piece)
        except StreamError:
            failed = True
            break
        assert isinstance(events, list)
        if pos >= len(stream):
            break
    if failed:
        return


if __name__ == "__main__":
    run(test_one, corpus="stream")

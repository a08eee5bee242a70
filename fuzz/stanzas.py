#!/usr/bin/env python3
"""Fuzz the stanza handlers of every module, through the socket-free harness
(``tests/harness.py``): the input is what a logged-in client sends (parsed by the
real stream parser), to the server, to other accounts, to itself, to a MUC room.

Expected: answers and errors. A finding is a handler crash: anything logged at
ERROR (the router turns a crashing handler into ``internal-server-error`` and logs
it), a session that dies with ``internal-server-error``, or an exception here.
"""
import asyncio
import logging

import atheris

with atheris.instrument_imports(include=["xmppd"]):
    from _common import run
    from tests.harness import Harness
    from xmppd.app import FINDER
    from xmppd.stream import StanzaEvent, StreamParser
    # the server imports its modules and protocols when it starts, after this block:
    # import all of xmppd now so that they are instrumented too (coverage guides
    # the fuzzer only through instrumented code)
    import importlib
    import pkgutil

    import xmppd
    for _m in pkgutil.walk_packages(xmppd.__path__, "xmppd."):
        if not _m.name.startswith(("xmppd.cli", "xmppd.__main__")):
            importlib.import_module(_m.name)

HEADER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          b"to='example.com' version='1.0'>")
COMPONENT = '''
Component "conference.example.com" "muc"
'''
MODULES = [m for m in FINDER.default_modules] + ["external_services", "server_contact_info"]


class Crashes(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


LOOP = asyncio.new_event_loop()
CRASHES = Crashes()
STATE: dict = {}


async def setup():
    h = Harness(modules=MODULES, components=COMPONENT)
    await h.__aenter__()
    alice = await h.client("alice@example.com/phone", available=True)
    bob = await h.client("bob@example.com/pc", available=True)
    STATE.update(h=h, alice=alice, bob=bob)


def test_one(data: bytes) -> None:
    if not STATE:
        LOOP.run_until_complete(setup())
        logging.getLogger("xmppd").addHandler(CRASHES)
    alice = STATE["alice"]
    if alice.closing:        # a stream error ended it: a fresh session
        LOOP.run_until_complete(_new_alice())
        alice = STATE["alice"]
    p = StreamParser(max_stanza_size=65536)
    try:
        p.feed(HEADER)
        events = p.feed(data)
    except Exception:
        return               # not XML: the stream parser's fuzz target covers that
    CRASHES.records.clear()

    async def go():
        for ev in events:
            if isinstance(ev, StanzaEvent):
                try:
                    await alice._on_element(ev.element)
                except Exception as exc:
                    if exc.__class__.__name__ not in ("StreamError",):
                        raise
                    alice.stream_error(exc)
                    return
        for _ in range(5):
            await asyncio.sleep(0)
        await alice.server_tasks()
    LOOP.run_until_complete(go())
    alice.received.clear()
    STATE["bob"].received.clear()
    if CRASHES.records:
        rec = CRASHES.records[0]
        raise AssertionError(f"{rec.name}: {rec.getMessage()}\n{rec.exc_text or ''}")
    assert not any(getattr(e, "condition", None) == "internal-server-error" for e in alice.stream_errors)


async def _new_alice():
    h = STATE["h"]
    STATE["alice"] = await h.client(f"alice@example.com/phone{len(h.clients)}", available=True)


if __name__ == "__main__":
    run(test_one, corpus="stanzas")

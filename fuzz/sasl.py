#!/usr/bin/env python3
"""Fuzz the SASL server (SCRAM-SHA-1/256 with and without channel binding, PLAIN):
any client messages, in any number of steps. Expected: challenges, success for the
right credentials only, or a SASLFailure."""
import asyncio

import atheris

with atheris.instrument_imports(include=["xmppd"]):
    from _common import run
    from xmppd.core.credentials import make_credentials
    from xmppd.protocol.sasl import SASLServer
    from xmppd.xmpp.errors import SASLFailure

MECHS = ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "PLAIN"]
CREDS = make_credentials("pencil", iterations=4096)
LOOP = asyncio.new_event_loop()


async def lookup(user):
    return CREDS if user == "user" else None


async def exchange(mech: str, steps: list[bytes]) -> None:
    srv = SASLServer(mech, offered=MECHS, host="example.com", get_credentials=lookup,
                     channel_binding=("tls-server-end-point", b"\x01" * 32))
    for data in steps:
        try:
            step = await srv.step(data)
        except SASLFailure:
            return
        if step.kind == "success":
            assert step.username == "user", step
            return


def test_one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mech = MECHS[fdp.ConsumeIntInRange(0, len(MECHS) - 1)]
    steps = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)) for _ in range(fdp.ConsumeIntInRange(1, 3))]
    LOOP.run_until_complete(exchange(mech, steps))


if __name__ == "__main__":
    run(test_one, corpus="sasl")

"""Stopping is bounded: work handed over on the way out gets a grace period,
then whatever still runs is cancelled and named in the log."""
import asyncio
import logging

from xmppd.core import server as server_mod

from .conftest import start_server


async def test_stop_cancels_work_that_outlives_the_grace_period(tmp_path, certs, monkeypatch,
                                                                caplog):
    monkeypatch.setattr(server_mod, "SHUTDOWN_GRACE", 0.3)
    srv = await start_server(tmp_path, certs)
    finished: list[str] = []

    async def never_done():
        await asyncio.Event().wait()

    async def quick():
        await asyncio.sleep(0.05)
        finished.append("quick")

    stuck = srv.server.spawn(never_done())
    srv.server.spawn(quick())
    with caplog.at_level(logging.INFO, logger="xmppd.server"):
        await asyncio.wait_for(srv.server.stop(), 10)
    assert finished == ["quick"]          # work that ends in time is waited for
    assert stuck.cancelled()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("never_done" in w and "cancelled" in w for w in warnings), warnings
    assert any(r.getMessage().startswith("stopped in") for r in caplog.records)

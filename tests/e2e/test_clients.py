"""The test clients' own helpers: ``logged_in`` connects, yields and closes."""
from __future__ import annotations

import asyncio

import pytest

from .clients import AuthFailed, Login, logged_in


def sessions(srv, user):
    return dict(srv.server.hosts["xmppd.test"].sessions_of(user))


async def gone(srv, user):
    for _ in range(100):
        if not sessions(srv, user):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{user} still has sessions: {list(sessions(srv, user))}")


async def test_one_client_and_several_are_closed_after_the_block(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    await xmppd.adduser("bob@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test/one") as a:
        assert str(a.boundjid) == "alice@xmppd.test/one"
    await gone(xmppd, "alice")
    async with logged_in(xmppd, "alice@xmppd.test", Login("bob@xmppd.test", priority=5)) as (a, b):
        assert a.boundjid.bare == "alice@xmppd.test" and b.boundjid.bare == "bob@xmppd.test"
        b.send_message(mto="alice@xmppd.test", mbody="hi", mtype="chat")
        assert (await a.next_message())["body"] == "hi"
    await gone(xmppd, "alice")
    await gone(xmppd, "bob")


async def test_closed_when_the_block_fails(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    with pytest.raises(ZeroDivisionError):
        async with logged_in(xmppd, "alice@xmppd.test/a", "alice@xmppd.test/b"):
            1 / 0
    await gone(xmppd, "alice")


async def test_a_failed_login_closes_the_others(xmppd):
    await xmppd.adduser("alice@xmppd.test")
    with pytest.raises(AuthFailed):
        async with logged_in(xmppd, "alice@xmppd.test/a", Login("alice@xmppd.test/b", "wrong"),
                             "alice@xmppd.test/c"):
            raise AssertionError("not reached")
    await gone(xmppd, "alice")


async def test_presence_as_with_one_by_one_logins(xmppd):
    """Streams open in parallel, but initial presence goes out in order: each
    client sees of the others' presence what it sees when they log in one by one
    (the first one sees the second come online, once; the second gets the first's
    current presence, delayed; one that sends none sees nothing)."""
    await xmppd.adduser("alice@xmppd.test")
    seen = {}
    for parallel in (True, False):
        async with logged_in(xmppd, "alice@xmppd.test/one", Login("alice@xmppd.test/two", priority=-1),
                             Login("alice@xmppd.test/three", send_presence=False),
                             parallel=parallel) as clients:
            assert set(sessions(xmppd, "alice")) == {"one", "two", "three"}
            await asyncio.sleep(0.3)
            seen[parallel] = [[(str(p["from"]), p["priority"], p.xml.find("{urn:xmpp:delay}delay") is not None)
                               for p in c.presences._queue] for c in clients]
        await gone(xmppd, "alice")
    assert seen[True] == seen[False] == [[("alice@xmppd.test/two", -1, False)],
                                         [("alice@xmppd.test/one", 0, True)],
                                         []]

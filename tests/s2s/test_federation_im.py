"""Two xmppd instances, with certificates (SASL EXTERNAL) and with dialback only: a
remote server's presence subscriptions, probes and unavailable presence flow as
between local users (RFC 6121), and a user of b.test joins a room on a.test's MUC
component (``Component "conference.a.test" "muc"``), which federates under its own
name over its own links."""
from __future__ import annotations

import pytest

from tests.e2e.clients import slix_close
from tests.e2e.imhelpers import wait_state
from xmppd.core import roster as rm

from .conftest import start_node
from .flows import remote_joins_room, subscription_both_ways

A, B = "a.test", "b.test"
MUC = f"conference.{A}"
ALICE, BOB = f"alice@{A}", f"bob@{B}"
IM = ("dialback", "ping", "disco", "roster")


@pytest.fixture(params=["external", "dialback"])
async def pair(request, tmp_path, dns, cas):
    if request.param == "external":
        cert_a, cert_b, ca_a, ca_b, extra = cas.issue("one", A), cas.issue("one", B), "one", "one", ""
    else:  # each trusts only its own CA: dialback only
        cert_a, cert_b, ca_a, ca_b = cas.issue("ca-a", A), cas.issue("ca-b", B), "ca-a", "ca-b"
        extra = "s2s_secure_auth = false\n"
    a = await start_node(tmp_path, dns, A, cert_a, cas.cafile(ca_a), extra=extra, modules=IM,
                         host_extra=f'Component "{MUC}" "muc"\n')
    b = await start_node(tmp_path, dns, B, cert_b, cas.cafile(ca_b), extra=extra, modules=IM)
    # the component's own SRV record, pointing at its parent's server
    dns.srv(f"_xmpp-server._tcp.{MUC}", A, a.s2s_port)
    a.auth = request.param
    try:
        yield a, b
    finally:
        await slix_close(*a.clients, *b.clients)
        await a.stop()
        await b.stop()


def auth_of(node, direction, local, remote):
    return {(s["direction"], s["local"], s["remote"]): s["auth"] for s in node.s2s.describe()}.get(
        (direction, local, remote))


async def test_subscription_both_ways_and_presence(pair):
    a, b = pair
    await a.adduser(ALICE)
    await b.adduser(BOB)

    async def both():
        await wait_state(a, ALICE, BOB, rm.BOTH)
        await wait_state(b, BOB, ALICE, rm.BOTH)
    await subscription_both_ways(a, ALICE, b, BOB, both)


async def test_remote_user_joins_local_muc(pair):
    a, b = pair
    await a.adduser(ALICE)
    await b.adduser(BOB)
    await remote_joins_room(a, ALICE, b, BOB, f"lobby@{MUC}")
    # the component authenticated under its own name, both ways
    method = "sasl-external" if a.auth == "external" else "dialback"
    assert auth_of(a, "out", MUC, B) == method
    assert auth_of(a, "in", MUC, B) == method
    assert auth_of(b, "out", B, MUC) == method

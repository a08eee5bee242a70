"""xmppd ⇄ real servers (Debian's Prosody and ejabberd), the same tests over each
peer (:class:`tests.s2s.external.Peer`): accounts on both sides exchange messages
and IQs both ways, complete a presence subscription both ways (presence, probes
and unavailable crossing), and join each other's MUC rooms, with certificate
(SASL EXTERNAL) and dialback-only authentication. With s2s_bidi on both sides
(Prosody has mod_s2s_bidi), one connection carries both directions (XEP-0288).

The peers find xmppd through the test DNS server (Prosody: libunbound
``forward``; ejabberd: Erlang inet_res, ``ERL_INETRC``).

A test runs for every peer that has the capabilities it needs (:func:`peers`);
it carries ``external(<program>)`` there, so CI fails if the program is missing.
For a peer without them it is skipped at collection, without that marker: a
missing capability is not a missing program."""
from __future__ import annotations

import contextlib

import pytest

from tests.e2e.clients import logged_in, slix_close

from .conftest import start_node
from .external import Ejabberd, Peer, Prosody
from .flows import remote_joins_room, subscription_both_ways

PEERS: tuple[type[Peer], ...] = (Prosody, Ejabberd)

# not *.test: libunbound answers NXDOMAIN for the whole .test TLD itself (RFC 6761 zone)
X = "x.example"
MUC_X = f"conference.{X}"
Y = "y.example"


def peers(*needs: str):
    """Parametrise a test over :data:`PEERS` (argument ``peer_cls``): marked
    ``external(program)`` for a peer with every capability in ``needs``, skipped
    with the reason (and no external marker) for one without."""
    params = []
    for cls in PEERS:
        missing = sorted(set(needs) - cls.caps)
        if missing:
            marks = pytest.mark.skip(reason=f"{cls.program} lacks {', '.join(missing)} "
                                            "(a capability, not a missing program)")
        else:
            marks = pytest.mark.external(cls.program)
        params.append(pytest.param(cls, id=cls.program, marks=marks))
    return pytest.mark.parametrize("peer_cls", params)


@contextlib.asynccontextmanager
async def running(peer: Peer, dns, users=()):
    """Start ``peer`` with ``users`` and publish its DNS records; on failure print
    its log and the DNS queries; stop it in any case. Yields a list to which the
    test adds its xmppd nodes, stopped first."""
    nodes: list = []
    try:
        await peer.start(users)
        peer.publish(dns)
        yield nodes
    except BaseException as e:
        if not isinstance(e, pytest.skip.Exception):
            print(peer.tail())
            print("DNS queries:", dns.queries)
        raise
    finally:
        for node in nodes:
            await node.stop()
        await peer.stop()


async def run_pair(peer_cls, tmp_path, dns, cas, *, secure: bool, expect_auth: set[str]):
    if secure:
        ca_x = ca_p = "one"
        extra = ""
    else:
        ca_x, ca_p = "ca-x", "ca-p"  # neither trusts the other's CA
        extra = "s2s_secure_auth = false\n"
    P = peer_cls.domain
    peer = peer_cls(tmp_path, cas.issue(ca_p, P), cas.cafile(ca_p), dns.port, secure_auth=secure,
                    want=("muc",))
    async with running(peer, dns, users=("carol", "erin")) as nodes:
        node = await start_node(tmp_path, dns, X, cas.issue(ca_x, X), cas.cafile(ca_x), extra=extra,
                                modules=("dialback", "ping", "disco", "roster", "s2s_bidi"),
                                host_extra=f'Component "{MUC_X}" "muc"\n', publish=False)
        nodes.append(node)
        peer.publish_xmppd(dns, node.s2s_port, X, MUC_X)
        await exchange(node, peer, expect_auth)


async def exchange(node, peer: Peer, expect_auth):
    P = peer.domain
    await node.adduser(f"alice@{X}")
    await node.adduser(f"dave@{X}")
    async with logged_in(node, f"alice@{X}") as a, logged_in(peer, f"carol@{P}") as c:
        a.send_message(mto=f"carol@{P}", mbody=f"hi {peer.program}", mtype="chat")
        m = await c.next_message(timeout=30)
        assert m["body"] == f"hi {peer.program}" and m["from"] == a.boundjid
        c.send_message(mto=a.boundjid, mbody="hi xmppd", mtype="chat")
        m = await a.next_message(timeout=30)
        assert m["body"] == "hi xmppd" and m["from"] == c.boundjid
        for i in range(10):
            c.send_message(mto=f"alice@{X}", mbody=f"p{i}", mtype="chat")
        assert [(await a.next_message(timeout=30))["body"] for _ in range(10)] == [f"p{i}" for i in range(10)]
        await a.plugin["xep_0199"].ping(P, timeout=20)
        await c.plugin["xep_0199"].ping(X, timeout=20)
        await a.plugin["xep_0199"].ping(c.boundjid, timeout=20)
    try:
        # subscriptions, presence and probes both ways; a MUC room on each side
        await subscription_both_ways(node, f"dave@{X}", peer, f"erin@{P}")
        await remote_joins_room(peer, f"carol@{P}", node, f"alice@{X}", f"lounge@{peer.muc}")
        await remote_joins_room(node, f"alice@{X}", peer, f"carol@{P}", f"lobby@{MUC_X}")
    finally:
        await slix_close(*node.clients, *peer.clients)
    methods = {(s["direction"], s["remote"]): s["auth"] for s in node.s2s.describe()}
    assert methods.get(("out", P)) in expect_auth, methods
    assert methods.get(("in", P)) in expect_auth, methods


@peers("muc")
async def test_sasl_external(peer_cls, tmp_path, dns, cas):
    await run_pair(peer_cls, tmp_path, dns, cas, secure=True, expect_auth={"sasl-external", "dialback+cert"})


@peers("muc")
async def test_dialback(peer_cls, tmp_path, dns, cas):
    await run_pair(peer_cls, tmp_path, dns, cas, secure=False, expect_auth={"dialback"})


@peers("bidi")
async def test_bidi(peer_cls, tmp_path, dns, cas):
    """Both sides load s2s_bidi (XEP-0288): whichever connects first, that one
    connection carries both directions. x.example connects to the peer; the peer
    connects to y.example (a second VirtualHost of the same xmppd)."""
    P = peer_cls.domain
    peer = peer_cls(tmp_path, cas.issue("one", P), cas.cafile("one"), dns.port, want=("bidi",))
    async with running(peer, dns, users=("carol",)) as nodes:
        cert_y = cas.issue("one", Y)
        node = await start_node(tmp_path, dns, X, cas.issue("one", X), cas.cafile("one"),
                                modules=("dialback", "ping", "disco", "s2s_bidi"),
                                host_extra=f'VirtualHost "{Y}"\n    ssl = {{ certificate = "{cert_y[0]}"; '
                                           f'key = "{cert_y[1]}"; cafile = "{cas.cafile("one")}"; }}\n',
                                publish=False)
        nodes.append(node)
        peer.publish_xmppd(dns, node.s2s_port, X)
        peer.publish_xmppd(dns, node.s2s_port, Y)
        await node.adduser(f"alice@{X}")
        await node.adduser(f"yves@{Y}")
        async with (logged_in(node, f"alice@{X}", f"yves@{Y}") as (a, y),
                    logged_in(peer, f"carol@{P}") as c):
            a.send_message(mto=f"carol@{P}", mbody="x first", mtype="chat")
            assert (await c.next_message(timeout=30))["body"] == "x first"
            c.send_message(mto=a.boundjid, mbody="to x", mtype="chat")
            assert (await a.next_message(timeout=30))["body"] == "to x"
            c.send_message(mto=f"yves@{Y}", mbody="p first", mtype="chat")
            assert (await y.next_message(timeout=30))["body"] == "p first"
            y.send_message(mto=c.boundjid, mbody="to p", mtype="chat")
            assert (await c.next_message(timeout=30))["body"] == "to p"
            await a.plugin["xep_0199"].ping(c.boundjid, timeout=20)
            await y.plugin["xep_0199"].ping(c.boundjid, timeout=20)
        got = sorted((s["direction"], s["local"], s["remote"], s["bidi"]) for s in node.s2s.describe())
        assert got == [("in", Y, P, True), ("out", X, P, True)]


def test_capability_skips_are_not_missing_program_skips():
    """tests/conftest.py fails, in CI, a skipped test marked ``external``: a peer
    skipped for a capability it lacks must not carry that marker."""
    for needs in ((), ("muc",), ("bidi",), ("muc", "bidi")):
        (mark,) = peers(*needs).mark.args[1:]
        for param in mark:
            names = [m.name for m in param.marks]
            capable = set(needs) <= param.values[0].caps
            assert names == (["external"] if capable else ["skip"]), (needs, param)

"""xmppd ⇄ Prosody (Debian's package): accounts on both sides exchange messages and
IQs both ways, complete a presence subscription both ways (presence, probes and
unavailable crossing), and join each other's MUC rooms, with certificate (SASL
EXTERNAL) and dialback-only authentication. With mod_s2s_bidi on both sides,
one connection carries both directions (XEP-0288).
Prosody finds xmppd through the test DNS server (libunbound ``forward``)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.e2e.clients import slix_close, slix_connect

from .conftest import start_node
from .flows import remote_joins_room, subscription_both_ways
from .external import Prosody

pytestmark = pytest.mark.external("prosody")

# not *.test: libunbound answers NXDOMAIN for the whole .test TLD itself (RFC 6761 zone)
X, P = "x.example", "prosody.example"
MUC_X, MUC_P = f"conference.{X}", f"conference.{P}"


async def run_pair(tmp_path, dns, cas, *, secure: bool):
    if secure:
        ca_x = ca_p = "one"
        extra = ""
    else:
        ca_x, ca_p = "ca-x", "ca-p"  # neither trusts the other's CA
        extra = "s2s_secure_auth = false\n"
    prosody = Prosody(tmp_path, P, cas.issue(ca_p, P), cas.cafile(ca_p), dns.port, secure_auth=secure,
                      muc=MUC_P)
    prosody.adduser("carol")
    prosody.adduser("erin")
    await prosody.start()
    dns.srv(f"_xmpp-server._tcp.{P}", P, prosody.s2s_port)
    dns.srv(f"_xmpp-server._tcp.{MUC_P}", P, prosody.s2s_port)
    dns.a(P)
    node = await start_node(tmp_path, dns, X, cas.issue(ca_x, X), cas.cafile(ca_x), extra=extra,
                            modules=("dialback", "ping", "disco", "roster", "s2s_bidi"),
                            host_extra=f'Component "{MUC_X}" "muc"\n')
    dns.srv(f"_xmpp-server._tcp.{MUC_X}", X, node.s2s_port)
    return node, prosody


async def exchange(node, prosody, expect_auth):
    await node.adduser(f"alice@{X}")
    await node.adduser(f"dave@{X}")
    p_srv = SimpleNamespace(port=prosody.c2s_port, tls_port=None, cafile=prosody.cafile, clients=[])
    a = await slix_connect(node, f"alice@{X}")
    c = await slix_connect(p_srv, f"carol@{P}")
    try:
        a.send_message(mto=f"carol@{P}", mbody="hi prosody", mtype="chat")
        m = await c.next_message(timeout=30)
        assert m["body"] == "hi prosody" and m["from"] == a.boundjid
        c.send_message(mto=a.boundjid, mbody="hi xmppd", mtype="chat")
        m = await a.next_message(timeout=30)
        assert m["body"] == "hi xmppd" and m["from"] == c.boundjid
        for i in range(10):
            c.send_message(mto=f"alice@{X}", mbody=f"p{i}", mtype="chat")
        assert [(await a.next_message(timeout=30))["body"] for _ in range(10)] == [f"p{i}" for i in range(10)]
        await a.plugin["xep_0199"].ping(P, timeout=20)
        await c.plugin["xep_0199"].ping(X, timeout=20)
        await a.plugin["xep_0199"].ping(c.boundjid, timeout=20)
    finally:
        await slix_close(a, c)
    try:
        # subscriptions, presence and probes both ways; a MUC room on each side
        await subscription_both_ways(node, f"dave@{X}", p_srv, f"erin@{P}")
        await remote_joins_room(p_srv, f"carol@{P}", node, f"alice@{X}", f"lounge@{MUC_P}")
        await remote_joins_room(node, f"alice@{X}", p_srv, f"carol@{P}", f"lobby@{MUC_X}")
    finally:
        await slix_close(*node.clients, *p_srv.clients)
    methods = {(s["direction"], s["remote"]): s["auth"] for s in node.s2s.describe()}
    assert methods.get(("out", P)) in expect_auth, methods
    assert methods.get(("in", P)) in expect_auth, methods


async def test_prosody_sasl_external(tmp_path, dns, cas):
    node, prosody = await run_pair(tmp_path, dns, cas, secure=True)
    try:
        await exchange(node, prosody, {"sasl-external", "dialback+cert"})
    except BaseException:
        print(prosody.tail())
        print("DNS queries:", dns.queries)
        raise
    finally:
        await node.stop()
        await prosody.stop()


async def test_prosody_dialback(tmp_path, dns, cas):
    node, prosody = await run_pair(tmp_path, dns, cas, secure=False)
    try:
        await exchange(node, prosody, {"dialback"})
    except BaseException:
        print(prosody.tail())
        print("DNS queries:", dns.queries)
        raise
    finally:
        await node.stop()
        await prosody.stop()


async def test_prosody_bidi(tmp_path, dns, cas):
    """Both sides load s2s_bidi (XEP-0288): whichever connects first, that one
    connection carries both directions. x.example connects to Prosody; Prosody
    connects to y.example (a second VirtualHost of the same xmppd)."""
    Y = "y.example"
    prosody = Prosody(tmp_path, P, cas.issue("one", P), cas.cafile("one"), dns.port, modules=("s2s_bidi",))
    prosody.adduser("carol")
    await prosody.start()
    dns.srv(f"_xmpp-server._tcp.{P}", P, prosody.s2s_port)
    dns.a(P)
    cert_y = cas.issue("one", Y)
    node = await start_node(tmp_path, dns, X, cas.issue("one", X), cas.cafile("one"),
                            modules=("dialback", "ping", "disco", "s2s_bidi"),
                            host_extra=f'VirtualHost "{Y}"\n    ssl = {{ certificate = "{cert_y[0]}"; '
                                       f'key = "{cert_y[1]}"; cafile = "{cas.cafile("one")}"; }}\n')
    dns.srv(f"_xmpp-server._tcp.{Y}", Y, node.s2s_port)
    dns.a(Y)
    p_srv = SimpleNamespace(port=prosody.c2s_port, tls_port=None, cafile=prosody.cafile)
    try:
        await node.adduser(f"alice@{X}")
        await node.adduser(f"yves@{Y}")
        a = await slix_connect(node, f"alice@{X}")
        y = await slix_connect(node, f"yves@{Y}")
        c = await slix_connect(p_srv, f"carol@{P}")
        try:
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
        finally:
            await slix_close(a, y, c)
        got = sorted((s["direction"], s["local"], s["remote"], s["bidi"]) for s in node.s2s.describe())
        assert got == [("in", Y, P, True), ("out", X, P, True)]
    except BaseException:
        print(prosody.tail())
        raise
    finally:
        await node.stop()
        await prosody.stop()

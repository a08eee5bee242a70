"""xmppd ⇄ ejabberd (Debian's package): accounts on both sides exchange messages and
IQs both ways, complete a presence subscription both ways (presence, probes and
unavailable crossing), and join each other's MUC rooms, with certificate (SASL
EXTERNAL) and dialback-only authentication.
ejabberd finds xmppd through the test DNS server (Erlang inet_res, ``ERL_INETRC``)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.e2e.clients import slix_close, slix_connect

from .conftest import start_node
from .flows import remote_joins_room, subscription_both_ways
from .external import Ejabberd

pytestmark = pytest.mark.external("ejabberd")

# the same names as the Prosody test (libunbound refuses *.test; kept alike)
X, P = "x.example", "ejabberd.example"
MUC_X, MUC_P = f"conference.{X}", f"conference.{P}"


async def run_pair(tmp_path, dns, cas, *, secure: bool):
    if secure:
        ca_x = ca_p = "one"
        extra = ""
    else:
        ca_x, ca_p = "ca-x", "ca-p"  # neither trusts the other's CA
        extra = "s2s_secure_auth = false\n"
    ejabberd = Ejabberd(tmp_path, P, cas.issue(ca_p, P), cas.cafile(ca_p), dns.port, secure_auth=secure)
    await ejabberd.start()
    await ejabberd.adduser("carol")
    await ejabberd.adduser("erin")
    dns.srv(f"_xmpp-server._tcp.{P}", P, ejabberd.s2s_port)
    dns.srv(f"_xmpp-server._tcp.{MUC_P}", P, ejabberd.s2s_port)
    dns.a(P)
    node = await start_node(tmp_path, dns, X, cas.issue(ca_x, X), cas.cafile(ca_x), extra=extra,
                            modules=("dialback", "ping", "disco", "roster", "s2s_bidi"),
                            host_extra=f'Component "{MUC_X}" "muc"\n')
    # ejabberd (p1_xmpp) resolves the SRV record with inet_res (our DNS server) but the
    # SRV target with the system's getaddrinfo (/etc/hosts, /etc/resolv.conf): an
    # IP-literal target keeps the test off the system's files.
    dns.remove(f"_xmpp-server._tcp.{X}")
    dns.srv(f"_xmpp-server._tcp.{X}", "127.0.0.1", node.s2s_port)
    dns.srv(f"_xmpp-server._tcp.{MUC_X}", "127.0.0.1", node.s2s_port)
    return node, ejabberd


async def exchange(node, ejabberd, expect_auth):
    await node.adduser(f"alice@{X}")
    await node.adduser(f"dave@{X}")
    p_srv = SimpleNamespace(port=ejabberd.c2s_port, tls_port=None, cafile=ejabberd.cafile, clients=[])
    a = await slix_connect(node, f"alice@{X}")
    c = await slix_connect(p_srv, f"carol@{P}")
    try:
        a.send_message(mto=f"carol@{P}", mbody="hi ejabberd", mtype="chat")
        m = await c.next_message(timeout=30)
        assert m["body"] == "hi ejabberd" and m["from"] == a.boundjid
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


async def test_ejabberd_sasl_external(tmp_path, dns, cas):
    node, ejabberd = await run_pair(tmp_path, dns, cas, secure=True)
    try:
        await exchange(node, ejabberd, {"sasl-external", "dialback+cert"})
    except BaseException:
        print(ejabberd.tail())
        print("DNS queries:", dns.queries)
        raise
    finally:
        await node.stop()
        await ejabberd.stop()


async def test_ejabberd_dialback(tmp_path, dns, cas):
    node, ejabberd = await run_pair(tmp_path, dns, cas, secure=False)
    try:
        await exchange(node, ejabberd, {"dialback"})
    except BaseException:
        print(ejabberd.tail())
        print("DNS queries:", dns.queries)
        raise
    finally:
        await node.stop()
        await ejabberd.stop()

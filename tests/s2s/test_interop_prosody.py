"""xmppd ⇄ Prosody (Debian's package): accounts on both sides exchange messages and
IQs both ways, with certificate (SASL EXTERNAL) and dialback-only authentication.
Prosody finds xmppd through the test DNS server (libunbound ``forward``)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.e2e.clients import slix_close, slix_connect

from .conftest import start_node
from .external import Prosody

pytestmark = pytest.mark.external("prosody")

# not *.test: libunbound answers NXDOMAIN for the whole .test TLD itself (RFC 6761 zone)
X, P = "x.example", "prosody.example"


async def run_pair(tmp_path, dns, cas, *, secure: bool):
    if secure:
        ca_x = ca_p = "one"
        extra = ""
    else:
        ca_x, ca_p = "ca-x", "ca-p"  # neither trusts the other's CA
        extra = "s2s_secure_auth = false\n"
    prosody = Prosody(tmp_path, P, cas.issue(ca_p, P), cas.cafile(ca_p), dns.port, secure_auth=secure)
    prosody.adduser("carol")
    await prosody.start()
    dns.srv(f"_xmpp-server._tcp.{P}", P, prosody.s2s_port)
    dns.a(P)
    node = await start_node(tmp_path, dns, X, cas.issue(ca_x, X), cas.cafile(ca_x), extra=extra)
    return node, prosody


async def exchange(node, prosody, expect_auth):
    await node.adduser(f"alice@{X}")
    p_srv = SimpleNamespace(port=prosody.c2s_port, tls_port=None, cafile=prosody.cafile)
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

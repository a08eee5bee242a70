"""The extensible SASL profile (XEP-0388) with its upgrade tasks (XEP-0480), Bind 2
(XEP-0386) and FAST tokens (XEP-0484), on raw streams: every mechanism, the inline
features (stream management, carbons, CSI), and the failure paths."""
from __future__ import annotations

import base64
import hashlib
import re
import time
import xml.etree.ElementTree as ET

import pytest
from scramp.utils import saslprep

from .conftest import start_server
from .sasl2client import (
    BIND2, FAST, SASL, SASL2, SCRAM_UPGRADE, SM, UPGRADE, authenticate_xml, authentication, b64,
    end_point, ht_initial, ht_responder, new_ua, q, read_element, scram2, tls_stream,
)

MODULES = ('modules_enabled = { "disco", "ping", "roster", "smacks", "carbons", "csi", '
           '"fast" }\n')


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, extra=MODULES)
    await s.adduser("alice@xmppd.test", "pencil")
    await s.adduser("bob@xmppd.test", "secret")
    try:
        yield s
    finally:
        await s.server.stop()


def success_of(el: ET.Element) -> ET.Element:
    assert el.tag == q(SASL2, "success"), ET.tostring(el)
    return el


async def login(srv, user="alice", password="pencil", *, mech="SCRAM-SHA-256", ua_id=None,
                extra="") -> tuple:
    raw, _ = await tls_stream(srv)
    cb = ("tls-server-end-point", end_point(raw)) if mech.endswith("-PLUS") else None
    if mech == "PLAIN":
        raw.send(authenticate_xml("PLAIN", f"\0{user}\0{password}".encode(), ua_id=ua_id, extra=extra))
        el = await read_element(raw)
    else:
        el, _ = await scram2(raw, mech, user, password, cb=cb, ua_id=ua_id, extra=extra)
    return raw, el


BIND = f"<bind xmlns='{BIND2}'><tag>Tests</tag></bind>"


async def ping(raw, id_="p1") -> str:
    raw.send(f"<iq type='get' id='{id_}' to='xmppd.test'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = await raw.read_until(f"id='{id_}'".encode())
    return got + await raw.read_until(b">")


# -- the feature ---------------------------------------------------------------------------

async def test_feature_offers_the_classic_mechanisms_inline_features_and_upgrade(srv):
    raw, feats = await tls_stream(srv)
    raw.close()
    auth = authentication(feats)
    assert [m.text for m in auth.findall(q(SASL2, "mechanism"))] == [
        "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    inline = auth.find(q(SASL2, "inline"))
    assert inline.find(q(SM, "sm")) is not None
    fast = inline.find(q(FAST, "fast"))
    assert [m.text for m in fast.findall(q(FAST, "mechanism"))] == ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    assert [f.get("var") for f in inline.find(q(BIND2, "bind")).find(q(BIND2, "inline"))] == [
        "urn:xmpp:carbons:2", "urn:xmpp:csi:0", "urn:xmpp:sm:3"]
    assert [u.text for u in auth.findall(q(UPGRADE, "upgrade"))] == ["UPGR-SCRAM-SHA-256"]
    # the classic profile is still there, unchanged
    assert f"<mechanisms xmlns='{SASL}'>" in feats


async def test_not_offered_before_tls(srv):
    from .rawclient import Raw
    raw = await Raw.connect(srv.port)
    feats = await raw.open()
    raw.close()
    assert authentication(feats) is None


# -- every mechanism -------------------------------------------------------------------------

@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                  "SCRAM-SHA-256-PLUS", "PLAIN"])
async def test_each_mechanism_then_classic_bind_without_restart(srv, mech):
    raw, el = await login(srv, mech=mech)
    try:
        success_of(el)
        assert el.findtext(q(SASL2, "authorization-identifier")) == "alice@xmppd.test"
        if mech.startswith("SCRAM"):     # the server's signature (checked by scramp)
            assert base64.b64decode(el.findtext(q(SASL2, "additional-data"))).startswith(b"v=")
        # no stream restart: the features of the authenticated stream follow at once
        feats = await raw.read_until(b"</stream:features>")
        assert "urn:ietf:params:xml:ns:xmpp-bind" in feats
        raw.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>classic</resource></bind></iq>")
        got = await raw.read_until(b"</iq>")
        assert "alice@xmppd.test/classic" in got
    finally:
        raw.close()


async def test_wrong_password_fails_with_the_condition(srv):
    raw, el = await login(srv, password="wrong")
    try:
        assert el.tag == q(SASL2, "failure")
        assert el.find(q(SASL, "not-authorized")) is not None
        # the stream stays: a second attempt may succeed
        el2, _ = await scram2(raw, "SCRAM-SHA-256", "alice", "pencil")
        success_of(el2)
    finally:
        raw.close()


async def test_failures_with_text(srv):
    raw, _ = await tls_stream(srv)
    try:
        raw.send(authenticate_xml("DIGEST-MD5", None))
        el = await read_element(raw)
        assert el.find(q(SASL, "invalid-mechanism")) is not None
        await srv.server.accounts.disable("xmppd.test", "bob")
        el, _ = await scram2(raw, "SCRAM-SHA-256", "bob", "secret")
        assert el.find(q(SASL, "account-disabled")) is not None
        assert el.findtext(q(SASL2, "text")) == "this account is disabled"
        raw.send(f"<response xmlns='{SASL2}'>AAAA</response>")
        el = await read_element(raw)
        assert el.find(q(SASL, "malformed-request")) is not None
        raw.send(f"<authenticate xmlns='{SASL2}' mechanism='PLAIN'>"
                 f"<initial-response>not base64!</initial-response></authenticate>")
        el = await read_element(raw)
        assert el.find(q(SASL, "incorrect-encoding")) is not None
        raw.send(f"<abort xmlns='{SASL2}'/>")
        el = await read_element(raw)
        assert el.find(q(SASL, "aborted")) is not None
    finally:
        raw.close()


async def test_other_traffic_during_the_exchange_ends_the_stream(srv):
    raw, _ = await tls_stream(srv)
    try:
        raw.send(authenticate_xml("SCRAM-SHA-256", b"n,,n=alice,r=abcdefgh"))
        el = await read_element(raw)
        assert el.tag == q(SASL2, "challenge")
        raw.send("<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert "policy-violation" in await raw.read_to_close()
    finally:
        raw.close()


# -- Bind 2 --------------------------------------------------------------------------------------

async def test_bind2_resource_is_stable_per_user_agent(srv):
    ua = new_ua()
    resources = []
    for agent in (ua, ua, new_ua()):
        raw, el = await login(srv, ua_id=agent, extra=BIND)
        try:
            jid = success_of(el).findtext(q(SASL2, "authorization-identifier"))
            assert el.find(q(BIND2, "bound")) is not None
            feats = await raw.read_until(b"</stream:features>")
            assert "xmpp-bind" not in feats     # bound already
            resources.append(jid.split("/", 1)[1])
            assert await ping(raw)
        finally:
            raw.close()
    assert resources[0] == resources[1] != resources[2]
    assert all(r.startswith("Tests.") for r in resources)


async def test_bind2_same_user_agent_replaces_the_old_session(srv):
    ua = new_ua()
    raw1, el = await login(srv, ua_id=ua, extra=BIND)
    success_of(el)
    await raw1.read_until(b"</stream:features>")
    raw2, el2 = await login(srv, ua_id=ua, extra=BIND)
    try:
        success_of(el2)
        assert "conflict" in await raw1.read_to_close()
    finally:
        raw1.close()
        raw2.close()


async def test_bind2_sm_enable_then_resume_inline(srv):
    ua = new_ua()
    extra = (f"<bind xmlns='{BIND2}'><tag>Tests</tag><enable xmlns='{SM}' resume='true'/></bind>")
    raw, el = await login(srv, ua_id=ua, extra=extra)
    enabled = success_of(el).find(q(BIND2, "bound")).find(q(SM, "enabled"))
    assert enabled is not None and enabled.get("resume") == "true"
    jid = el.findtext(q(SASL2, "authorization-identifier"))
    await raw.read_until(b"</stream:features>")
    # bob writes; alice never acknowledges and her connection drops
    bob, bel = await login(srv, "bob", "secret", ua_id=new_ua(), extra=BIND)
    success_of(bel)
    await bob.read_until(b"</stream:features>")
    bob.send(f"<message to='{jid}' type='chat' id='m1'><body>while you were away</body></message>")
    await ping(bob)
    await raw.read_until(b"while you were away")
    raw.writer.transport.abort()
    # a new connection resumes inside its authentication: no binding, the message again
    raw2, el2 = await login(srv, ua_id=ua, extra=f"<resume xmlns='{SM}' previd='{enabled.get('id')}' h='0'/>"
                            + extra)
    try:
        resumed = success_of(el2).find(q(SM, "resumed"))
        assert resumed is not None and resumed.get("previd") == enabled.get("id")
        assert el2.find(q(BIND2, "bound")) is None
        assert el2.findtext(q(SASL2, "authorization-identifier")) == jid
        assert "while you were away" in await raw2.read_until(b"</message>")
        # an unknown previd: <failed/> in the success, and the binding asked for happens
        raw3, el3 = await login(srv, ua_id=new_ua(), extra=f"<resume xmlns='{SM}' previd='nope' h='0'/>"
                                + extra)
        assert success_of(el3).find(q(SM, "failed")) is not None
        assert el3.find(q(BIND2, "bound")).find(q(SM, "enabled")) is not None
        raw3.close()
    finally:
        raw2.close()
        bob.close()


async def test_bind2_carbons_enabled_inline(srv):
    extra = f"<bind xmlns='{BIND2}'><tag>A</tag><enable xmlns='urn:xmpp:carbons:2'/></bind>"
    a, el = await login(srv, ua_id=new_ua(), extra=extra)
    success_of(el)
    await a.read_until(b"</stream:features>")
    b, elb = await login(srv, ua_id=new_ua(), extra=f"<bind xmlns='{BIND2}'><tag>B</tag></bind>")
    b_jid = success_of(elb).findtext(q(SASL2, "authorization-identifier"))
    await b.read_until(b"</stream:features>")
    bob, bel = await login(srv, "bob", "secret", ua_id=new_ua(), extra=BIND)
    success_of(bel)
    await bob.read_until(b"</stream:features>")
    try:
        bob.send(f"<message to='{b_jid}' type='chat' id='c1'><body>carbon copy</body></message>")
        got = await a.read_until(b"</message>")
        assert "urn:xmpp:carbons:2" in got and "carbon copy" in got
    finally:
        for r in (a, b, bob):
            r.close()


async def test_bind2_csi_inactive_inline(srv):
    extra = f"<bind xmlns='{BIND2}'><tag>A</tag><inactive xmlns='urn:xmpp:csi:0'/></bind>"
    a, el = await login(srv, ua_id=new_ua(), extra=extra)
    a_jid = success_of(el).findtext(q(SASL2, "authorization-identifier"))
    await a.read_until(b"</stream:features>")
    bob, bel = await login(srv, "bob", "secret", ua_id=new_ua(), extra=BIND)
    success_of(bel)
    await bob.read_until(b"</stream:features>")
    try:
        bob.send(f"<message to='{a_jid}' type='chat'><composing "
                 f"xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await ping(bob)          # the chat state has been routed: held, as alice is inactive
        session = srv.server.hosts.get("xmppd.test").get_session("alice", a_jid.split("/")[1])
        held = [f.__self__ for f in session.send_filters if getattr(f, "__name__", "") == "filter"]
        assert held and len(held[0].items) == 1
        a.send("<active xmlns='urn:xmpp:csi:0'/>")
        assert "composing" in await a.read_until(b"</message>")
    finally:
        a.close()
        bob.close()


# -- upgrade tasks (XEP-0480) -------------------------------------------------------------------

async def make_sha1_only(srv, user: str) -> None:
    accounts = srv.server.accounts
    creds = await accounts.get_credentials("xmppd.test", user)
    creds.pop("scram-sha-256")
    await accounts.storage.keyval("xmppd.test", "accounts").set(user, creds)
    await accounts.mark_sha1_only("xmppd.test", [user])


async def test_upgrade_gives_a_sha1_only_account_sha256_keys(srv):
    await make_sha1_only(srv, "alice")
    raw, feats = await tls_stream(srv)
    auth = authentication(feats)
    assert "SCRAM-SHA-256" not in [m.text for m in auth.findall(q(SASL2, "mechanism"))]
    try:
        upgrade = f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-256</upgrade>"
        el, _ = await scram2(raw, "SCRAM-SHA-1", "alice", "pencil", extra=upgrade)
        assert el.tag == q(SASL2, "continue"), ET.tostring(el)
        assert [t.text for t in el.find(q(SASL2, "tasks"))] == ["UPGR-SCRAM-SHA-256"]
        raw.send(f"<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-256'/>")
        data = await read_element(raw)
        salt_el = data.find(q(SCRAM_UPGRADE, "salt"))
        salt, iterations = base64.b64decode(salt_el.text), int(salt_el.get("iterations"))
        salted = hashlib.pbkdf2_hmac("sha256", saslprep("pencil").encode(), salt, iterations)
        raw.send(f"<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{b64(salted)}</hash></task-data>")
        el = await read_element(raw)
        assert success_of(el).findtext(q(SASL2, "authorization-identifier")) == "alice@xmppd.test"
    finally:
        raw.close()
    # the host has no SHA-1-only account left: SCRAM-SHA-256 is offered, and works
    raw, feats = await tls_stream(srv)
    raw.close()
    assert "SCRAM-SHA-256" in [m.text for m in authentication(feats).findall(q(SASL2, "mechanism"))]
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1"):
        raw, el = await login(srv, mech=mech)
        raw.close()
        success_of(el)
    raw, el = await login(srv, mech="SCRAM-SHA-256", password="wrong")
    raw.close()
    assert el.find(q(SASL, "not-authorized")) is not None


async def test_upgrade_not_needed_is_skipped(srv):
    raw, el = await login(srv, extra=f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-256</upgrade>")
    raw.close()
    success_of(el)


async def test_unknown_upgrade_task_fails(srv):
    raw, el = await login(srv, extra=f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-512</upgrade>")
    raw.close()
    assert el.tag == q(SASL2, "failure")
    assert el.find(q(SASL, "invalid-mechanism")) is not None
    assert "UPGR-SCRAM-SHA-512" in el.findtext(q(SASL2, "text"))


async def test_upgrade_wrong_next_task_and_bad_hash_fail(srv):
    await make_sha1_only(srv, "alice")
    upgrade = f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-256</upgrade>"
    raw, el = await login(srv, mech="SCRAM-SHA-1", extra=upgrade)
    try:
        assert el.tag == q(SASL2, "continue")
        raw.send(f"<next xmlns='{SASL2}' task='TOTP'/>")
        el = await read_element(raw)
        assert el.find(q(SASL, "invalid-mechanism")) is not None
        el, _ = await scram2(raw, "SCRAM-SHA-1", "alice", "pencil", extra=upgrade)
        raw.send(f"<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-256'/>")
        await read_element(raw)
        raw.send(f"<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{b64(b'short')}</hash></task-data>")
        el = await read_element(raw)
        assert el.find(q(SASL, "malformed-request")) is not None
    finally:
        raw.close()
    assert "scram-sha-256" not in await srv.server.accounts.get_credentials("xmppd.test", "alice")


# -- FAST (XEP-0484) -------------------------------------------------------------------------------

async def get_token(srv, ua: str, mech="HT-SHA-256-NONE", user="alice", password="pencil") -> ET.Element:
    raw, el = await login(srv, user, password, ua_id=ua,
                          extra=f"<request-token xmlns='{FAST}' mechanism='{mech}'/>")
    raw.close()
    token = success_of(el).find(q(FAST, "token"))
    assert token is not None and token.get("token") and token.get("expiry")
    return token


async def fast_login(srv, ua: str, token: str, *, mech="HT-SHA-256-NONE", user="alice",
                     fast_attrs: str = "", extra: str = "", check=True):
    raw, _ = await tls_stream(srv)
    cb = end_point(raw) if mech == "HT-SHA-256-ENDP" else b""
    raw.send(authenticate_xml(mech, ht_initial(user, token, cb), ua_id=ua,
                              extra=f"<fast xmlns='{FAST}' {fast_attrs}/>" + extra))
    el = await read_element(raw)
    raw.close()
    if check and el.tag == q(SASL2, "success"):
        assert base64.b64decode(el.findtext(q(SASL2, "additional-data"))) == ht_responder(token, cb)
    return el


@pytest.mark.parametrize("mech", ["HT-SHA-256-NONE", "HT-SHA-256-ENDP"])
async def test_fast_token_then_login_with_it(srv, mech):
    ua = new_ua()
    token = (await get_token(srv, ua, mech)).get("token")
    el = await fast_login(srv, ua, token, mech=mech, extra=BIND)
    assert success_of(el).findtext(q(SASL2, "authorization-identifier")).startswith("alice@xmppd.test/")
    assert el.find(q(FAST, "token")) is None          # young token: no rotation yet
    # stored hashed: the token itself is nowhere in the store
    stored = await srv.server.storage.map("xmppd.test", "fast_tokens").items("alice")
    assert stored and token not in repr(stored)


async def test_fast_wrong_token_other_client_other_mechanism(srv):
    ua = new_ua()
    token = (await get_token(srv, ua)).get("token")
    el = await fast_login(srv, ua, token + "x")
    assert el.find(q(SASL, "not-authorized")) is not None
    el = await fast_login(srv, new_ua(), token)        # another client's token
    assert el.find(q(SASL, "not-authorized")) is not None
    el = await fast_login(srv, ua, token, mech="HT-SHA-256-ENDP")   # bound to its mechanism
    assert el.find(q(SASL, "not-authorized")) is not None
    el = await fast_login(srv, ua, token, user="bob")
    assert el.find(q(SASL, "not-authorized")) is not None
    success_of(await fast_login(srv, ua, token))


async def test_fast_expired_token(srv):
    ua = new_ua()
    token = (await get_token(srv, ua)).get("token")
    store = srv.server.storage.map("xmppd.test", "fast_tokens")
    for key, record in (await store.items("alice")).items():
        await store.set("alice", key, {**record, "expires": time.time() - 1})
    el = await fast_login(srv, ua, token)
    assert el.find(q(SASL, "credentials-expired")) is not None


async def test_fast_replayed_count_fails(srv):
    ua = new_ua()
    token = (await get_token(srv, ua)).get("token")
    success_of(await fast_login(srv, ua, token, fast_attrs="count='5'"))
    el = await fast_login(srv, ua, token, fast_attrs="count='5'")
    assert el.find(q(SASL, "not-authorized")) is not None
    assert "count" in el.findtext(q(SASL2, "text"))
    assert (await fast_login(srv, ua, token, fast_attrs="count='4'")).find(q(SASL, "not-authorized")) is not None
    success_of(await fast_login(srv, ua, token, fast_attrs="count='6'"))


async def test_fast_invalidate(srv):
    ua = new_ua()
    token = (await get_token(srv, ua)).get("token")
    success_of(await fast_login(srv, ua, token, fast_attrs="invalidate='true'"))
    assert (await fast_login(srv, ua, token)).find(q(SASL, "not-authorized")) is not None


async def test_fast_tokens_end_with_a_password_change_and_the_account(srv):
    ua = new_ua()
    token = (await get_token(srv, ua)).get("token")
    await srv.server.accounts.set_password("xmppd.test", "alice", "new password")
    el = await fast_login(srv, ua, token)
    assert el.find(q(SASL, "credentials-expired")) is not None
    ua_b = new_ua()
    token_b = (await get_token(srv, ua_b, user="bob", password="secret")).get("token")
    await srv.server.accounts.delete("xmppd.test", "bob")
    assert await srv.server.storage.map("xmppd.test", "fast_tokens").items("bob") == {}
    el = await fast_login(srv, ua_b, token_b, user="bob")
    assert el.tag == q(SASL2, "failure")


async def test_fast_rotation(tmp_path, certs):
    s = await start_server(tmp_path, certs, extra=MODULES + "sasl2_fast_token_min_ttl = 0\n")
    try:
        await s.adduser("alice@xmppd.test", "pencil")
        ua = new_ua()
        first = (await get_token(s, ua)).get("token")
        el = await fast_login(s, ua, first)
        second = success_of(el).find(q(FAST, "token")).get("token")
        assert second != first
        # the first still works until the second is used (the client may have missed it)
        third = success_of(await fast_login(s, ua, first)).find(q(FAST, "token")).get("token")
        success_of(await fast_login(s, ua, third))
        assert (await fast_login(s, ua, first)).find(q(SASL, "not-authorized")) is not None
        assert (await fast_login(s, ua, second)).find(q(SASL, "not-authorized")) is not None
    finally:
        await s.server.stop()


async def test_fast_needs_a_user_agent_and_tls(srv):
    ua = new_ua()
    token = (await get_token(srv, ua)).get("token")
    raw, _ = await tls_stream(srv)
    raw.send(authenticate_xml("HT-SHA-256-NONE", ht_initial("alice", token)))   # no user agent
    el = await read_element(raw)
    raw.close()
    assert el.find(q(SASL, "not-authorized")) is not None
    assert re.search("user agent", el.findtext(q(SASL2, "text")))


# -- Bind 2: offline messages and the archive ---------------------------------------------------

@pytest.mark.parametrize("mam", [True, False])
async def test_bind2_offline_messages_and_archive_metadata(tmp_path, certs, mam):
    modules = '"disco", "ping", "roster", "offline"' + (', "mam"' if mam else "")
    s = await start_server(tmp_path, certs, extra=f"modules_enabled = {{ {modules} }}\n")
    try:
        await s.adduser("alice@xmppd.test", "pencil")
        await s.adduser("bob@xmppd.test", "secret")
        bob, bel = await login(s, "bob", "secret", ua_id=new_ua(), extra=BIND)
        success_of(bel)
        await bob.read_until(b"</stream:features>")
        bob.send("<message to='alice@xmppd.test' type='chat' id='o1'><body>offline one</body></message>")
        await ping(bob)
        bob.close()
        raw, el = await login(s, ua_id=new_ua(), extra=BIND)
        bound = success_of(el).find(q(BIND2, "bound"))
        await raw.read_until(b"</stream:features>")
        metadata = bound.find(q("urn:xmpp:mam:2", "metadata"))
        raw.send("<presence/>")
        got = await ping(raw, "after-presence")
        if mam:
            # the archive has it: the client catches up from there, not from offline storage
            end = metadata.find(q("urn:xmpp:mam:2", "end"))
            assert end is not None and end.get("id")
            assert "offline one" not in got
            raw.send("<iq type='set' id='mq'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>")
            assert "offline one" in await raw.read_until(b"id='mq'")
        else:
            assert metadata is None
            assert "offline one" in got
        raw.close()
    finally:
        await s.server.stop()


async def test_bind2_ends_the_earlier_session_of_the_same_client(srv):
    ua = new_ua()
    first, el = await login(srv, ua_id=ua, extra=f"<bind xmlns='{BIND2}'><tag>A</tag></bind>")
    success_of(el)
    await first.read_until(b"</stream:features>")
    other, elo = await login(srv, ua_id=new_ua(), extra=f"<bind xmlns='{BIND2}'><tag>A</tag></bind>")
    success_of(elo)
    await other.read_until(b"</stream:features>")
    second, el2 = await login(srv, ua_id=ua, extra=f"<bind xmlns='{BIND2}'><tag>B</tag></bind>")
    try:
        assert success_of(el2).findtext(q(SASL2, "authorization-identifier")) != \
            el.findtext(q(SASL2, "authorization-identifier"))
        assert "conflict" in await first.read_to_close()
        assert await ping(other)          # another client of the account stays
    finally:
        for r in (first, other, second):
            r.close()

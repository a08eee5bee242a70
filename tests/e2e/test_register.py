"""In-Band Registration (XEP-0077) with slixmpp's xep_0077 plugin: off by
default, account creation when allowed, password change and account removal."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from . import clients
from .clients import AuthFailed, logged_in, slix_close, slix_connect
from .conftest import start_server
from .rawclient import Raw

PLUGINS = ("xep_0030", "xep_0049", "xep_0077")
MODULES = '    modules_enabled = { "disco", "register", "private" }\n'


async def register_connect(srv, jid, password="secret", *, outcome=None):
    """Connect a slixmpp client that registers ``jid`` in-band, then logs in with it."""
    return await clients.register_connect(srv, jid, password, plugins=PLUGINS, outcome=outcome)


@pytest.fixture
async def open_srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=MODULES + "    allow_registration = true\n")
    try:
        yield s
    finally:
        await s.server.stop()


@pytest.fixture
async def closed_srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=MODULES + "    c2s_require_encryption = false\n")
    try:
        yield s
    finally:
        await s.server.stop()


REG_GET = ("<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>")


async def test_disabled_by_default(closed_srv):
    raw = await Raw.connect(closed_srv.port)
    try:
        features = await raw.open()
        assert "iq-register" not in features
        raw.send(REG_GET)
        reply = await raw.read_until(b"</iq>")
        assert "type='error'" in reply and "service-unavailable" in reply
        # and a client that wants to register gets nowhere
        with pytest.raises(AuthFailed):
            await register_connect(closed_srv, "newbie@xmppd.test")
        assert not await closed_srv.server.accounts.exists("xmppd.test", "newbie")
    finally:
        raw.writer.close()


async def test_not_offered_without_tls(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=MODULES + "    allow_registration = true\n")
    try:
        raw = await Raw.connect(s.port)
        features = await raw.open()
        assert "iq-register" not in features  # TLS first (c2s_require_encryption)
        raw.send(REG_GET)
        reply = await raw.read_until(b"</iq>")
        assert "policy-violation" in reply
        raw.writer.close()
    finally:
        await s.server.stop()


async def test_register_then_login(open_srv):
    outcome = []
    async with logged_in(open_srv, "newbie@xmppd.test", password="pw1", connect=register_connect,
                         outcome=outcome) as c:
        assert outcome == ["registered"]
        assert str(c.boundjid).startswith("newbie@xmppd.test/")
    again = await slix_connect(open_srv, "newbie@xmppd.test", "pw1", plugins=PLUGINS)
    await slix_close(again)


async def test_existing_user_conflict_and_missing_fields(open_srv):
    await open_srv.adduser("taken@xmppd.test", "original")
    outcome = []
    with pytest.raises(AuthFailed):  # registration refused, and the password is not theirs
        await register_connect(open_srv, "taken@xmppd.test", "other", outcome=outcome)
    assert outcome == ["conflict"]
    assert await open_srv.server.accounts.verify_password("xmppd.test", "taken", "original")

    raw = await Raw.connect(open_srv.tls_port, ssl_ctx=_ctx(open_srv), server_hostname="xmppd.test")
    try:
        features = await raw.open()
        assert "http://jabber.org/features/iq-register" in features
        raw.send(REG_GET)
        form = await raw.read_until(b"</iq>")
        assert "<username/>" in form and "<password/>" in form
        raw.send("<iq type='set' id='r2'><query xmlns='jabber:iq:register'>"
                 "<username>nopass</username></query></iq>")
        reply = await raw.read_until(b"</iq>")
        assert "id='r2'" in reply and "not-acceptable" in reply
    finally:
        raw.writer.close()


def _ctx(srv):
    import ssl
    ctx = ssl.create_default_context(cafile=srv.cafile)
    return ctx


async def test_change_password(closed_srv):
    # password change is there for logged-in users even with registration off
    await closed_srv.adduser("alice@xmppd.test", "old")
    async with logged_in(closed_srv, "alice@xmppd.test", password="old", plugins=PLUGINS) as a:
        info = await a.plugin["xep_0077"].get_registration(timeout=10)
        assert info["register"]["registered"] and info["register"]["username"] == "alice"
        await a.plugin["xep_0077"].change_password("new", timeout=10)
    with pytest.raises(AuthFailed):
        await slix_connect(closed_srv, "alice@xmppd.test", "old", plugins=PLUGINS)
    a = await slix_connect(closed_srv, "alice@xmppd.test", "new", plugins=PLUGINS)
    await slix_close(a)


async def test_remove_account(closed_srv):
    await closed_srv.adduser("alice@xmppd.test", "pw")
    a = await slix_connect(closed_srv, "alice@xmppd.test", "pw", plugins=PLUGINS)
    await a.plugin["xep_0049"].store(ET.fromstring("<n xmlns='urn:example:n'>data</n>"), timeout=10)
    private = closed_srv.server.storage.map("xmppd.test", "private")
    assert await private.items("alice")
    closed = a.disconnected
    result = await a.plugin["xep_0077"].cancel_registration(timeout=10)
    assert result["type"] == "result"  # answered before the stream closes
    await asyncio.wait_for(closed, 10)
    # credentials go first, then the sessions close, then the stores are emptied
    for _ in range(50):
        if not await private.items("alice"):
            break
        await asyncio.sleep(0.1)
    assert not await closed_srv.server.accounts.exists("xmppd.test", "alice")
    assert await private.items("alice") == {}
    with pytest.raises(AuthFailed):
        await slix_connect(closed_srv, "alice@xmppd.test", "pw", plugins=PLUGINS)

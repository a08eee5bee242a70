"""Invitations (invites, invites_register, invites_adhoc, invites_page): slixmpp
registers in-band with an invitation's token (XEP-0445 ``<preauth/>`` then
XEP-0077), subscribes with a contact invitation's token (XEP-0379), creates
invitations by ad-hoc command (xep_0050), and aiohttp fetches the landing page."""
from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from . import clients
from .clients import TIMEOUT, AuthFailed, logged_in, slix_close, slix_connect
from .conftest import DOMAIN, HTTP, start_server
from .rawclient import Raw
from .wsclient import client_ssl

PLUGINS = ("xep_0030", "xep_0004", "xep_0050", "xep_0077")
PARS = "urn:xmpp:pars:0"
MODULES = ("disco", "roster", "register", "adhoc", "invites", "invites_register", "invites_adhoc")


def modules(*more: str) -> str:
    names = ", ".join(f'"{m}"' for m in (*MODULES, *more))
    return f"    modules_enabled = {{ {names} }}\n"


async def register_connect(srv, jid, password="secret", *, token=None, outcome=None):
    """A slixmpp client that sends the invitation's token (XEP-0445), registers
    ``jid`` in-band (XEP-0077), then logs in with it. ``outcome`` gets what the
    server said to each step."""
    async def preauth(c, outcome):
        # slixmpp has no XEP-0445: it holds back IQs other than XEP-0077's
        # before the session starts, unless told to send everything
        c._always_send_everything = True
        pre = c.Iq()
        pre["type"] = "set"
        pre.append(ET.Element(f"{{{PARS}}}preauth", token=token))
        try:
            await pre.send(timeout=TIMEOUT)
            outcome.append("token accepted")
        except IqError as e:
            outcome.append(e.iq["error"]["condition"])
        c._always_send_everything = False

    return await clients.register_connect(srv, jid, password, plugins=PLUGINS, outcome=outcome,
                                          before=preauth if token is not None else None)


async def try_register(srv, jid, token=None) -> list:
    """Register ``jid`` (with ``token``); what the server answered, and
    ``"logged in"`` when the account then works."""
    outcome: list = []
    try:
        c = await register_connect(srv, jid, token=token, outcome=outcome)
    except AuthFailed:
        return outcome
    await slix_close(c)
    return outcome + ["logged in"]


def invites_of(srv):
    return srv.server.hosts[DOMAIN].provided("invites")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=modules())
    try:
        yield s
    finally:
        await s.server.stop()


async def wait_for(check, what: str):
    """Until ``await check()`` is true (the server works on it in the background)."""
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


# -- account invitations --------------------------------------------------------------

async def test_features_offered_over_tls_only(srv):
    raw = await Raw.connect(srv.port)
    try:
        features = await raw.open()
        assert "urn:xmpp:ibr-token:0" not in features      # TLS first
        await raw.starttls(srv.cafile)
        features = await raw.open()
        assert "<register xmlns=\"urn:xmpp:ibr-token:0\"" in features.replace("'", '"')
        assert "urn:xmpp:invite" in features
        # invite-only: registration is offered although allow_registration is off
        assert "http://jabber.org/features/iq-register" in features
        raw.send(f"<iq type='set' id='p1' to='{DOMAIN}'><preauth xmlns='{PARS}' token='nonsense'/></iq>")
        reply = await raw.read_until(b"</iq>")
        assert "id='p1'" in reply.replace('"', "'") and "item-not-found" in reply
    finally:
        raw.close()


async def test_invitation_redeemed_by_in_band_registration_once(srv):
    invite = await invites_of(srv).create_account()
    assert invite["uri"] == f"xmpp:{DOMAIN}?register;preauth={invite['token']}"
    assert await try_register(srv, f"newbie@{DOMAIN}", invite["token"]) == [
        "token accepted", "registered", "logged in"]
    again = await slix_connect(srv, f"newbie@{DOMAIN}", "secret", plugins=PLUGINS)
    await slix_close(again)
    # single-use: the token is spent
    assert await try_register(srv, f"second@{DOMAIN}", invite["token"]) == [
        "item-not-found", "not-acceptable"]
    assert not await srv.server.accounts.exists(DOMAIN, "second")
    assert await invites_of(srv).pending() == []


async def test_reusable_invitation_serves_many(srv):
    invite = await invites_of(srv).create_account(reusable=True)
    for name in ("one", "two"):
        assert (await try_register(srv, f"{name}@{DOMAIN}", invite["token"]))[-1] == "logged in"
    assert [i["token"] for i in await invites_of(srv).pending()] == [invite["token"]]


async def test_registration_refused_without_token(srv):
    assert await try_register(srv, f"stranger@{DOMAIN}") == ["not-acceptable"]
    assert not await srv.server.accounts.exists(DOMAIN, "stranger")


async def test_expired_and_revoked_invitations_are_refused(srv):
    invites = invites_of(srv)
    old = await invites.create_account()
    await invites.store.set(None, old["token"], dict(old, expires=int(time.time()) - 10))
    assert await try_register(srv, f"late@{DOMAIN}", old["token"]) == ["item-not-found", "not-acceptable"]
    gone = await invites.create_account()
    assert await invites.revoke(gone["token"])
    assert await try_register(srv, f"late@{DOMAIN}", gone["token"]) == ["item-not-found", "not-acceptable"]
    assert not await srv.server.accounts.exists(DOMAIN, "late")


async def test_named_invitation_keeps_its_username(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=modules() + "    allow_registration = true\n"
                           "    registration_invite_only = false\n")
    try:
        invites = invites_of(s)
        invite = await invites.create_account("juliet")
        assert invite["uri"] == f"xmpp:juliet@{DOMAIN}?register;preauth={invite['token']}"
        # open registration, but the name waits for its invitation (XEP-0445)
        assert await try_register(s, f"juliet@{DOMAIN}") == ["conflict"]
        assert await try_register(s, f"romeo@{DOMAIN}", invite["token"]) == [
            "token accepted", "not-acceptable"]
        assert (await try_register(s, f"anyone@{DOMAIN}"))[-1] == "logged in"
        assert (await try_register(s, f"juliet@{DOMAIN}", invite["token"]))[-1] == "logged in"
    finally:
        await s.server.stop()


async def test_admin_invitation_and_groups(srv):
    invites = invites_of(srv)
    host = srv.server.hosts[DOMAIN]
    boss = await invites.create_account(admin=True, groups=["staff"])
    crew = await invites.create_account(groups=["staff"], reusable=True)
    assert (await try_register(srv, f"boss@{DOMAIN}", boss["token"]))[-1] == "logged in"
    assert (await try_register(srv, f"crew@{DOMAIN}", crew["token"]))[-1] == "logged in"
    assert host.is_admin(f"boss@{DOMAIN}") and not host.is_admin(f"crew@{DOMAIN}")
    item = await host.roster.get_item("crew", f"boss@{DOMAIN}")
    assert item["subscription"] == "both" and item["groups"] == ["staff"]
    # an administrator by invitation sees the admin commands
    async with logged_in(srv, f"boss@{DOMAIN}", plugins=PLUGINS) as b:
        items = await b.plugin["xep_0050"].get_commands(JID(DOMAIN), timeout=TIMEOUT)
        nodes = [i[1] for i in items["disco_items"]["items"]]
        assert "urn:xmpp:invite#create-account" in nodes
    await srv.server.accounts.delete(DOMAIN, "boss")
    assert not host.is_admin(f"boss@{DOMAIN}")


async def test_password_reset_invitation(srv):
    await srv.adduser(f"admin@{DOMAIN}")
    await srv.adduser(f"alice@{DOMAIN}", "forgotten")
    async with logged_in(srv, f"admin@{DOMAIN}", plugins=PLUGINS) as adm:
        adhoc = adm.plugin["xep_0050"]
        node = "xmpp:prosody.im/mod_invites_adhoc#password-reset"
        first = (await adhoc.send_command(JID(DOMAIN), node, timeout=TIMEOUT))["command"]
        assert first["status"] == "executing"
        form = adm.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="accountjid", value=f"alice@{DOMAIN}")
        iq = await adhoc.send_command(JID(DOMAIN), node, action="complete",
                                      sessionid=first["sessionid"], payload=form, timeout=TIMEOUT)
        uri = iq["command"]["form"].get_values()["uri"]
    assert uri.startswith(f"xmpp:alice@{DOMAIN}?register;preauth=")
    token = re.search(r"preauth=([\w-]+)", uri).group(1)
    # only alice's account, and it exists: the registration sets her password
    assert await try_register(srv, f"mallory@{DOMAIN}", token) == ["token accepted", "not-acceptable"]
    assert await try_register(srv, f"alice@{DOMAIN}", token) == ["token accepted", "registered", "logged in"]
    assert await srv.server.accounts.verify_password(DOMAIN, "alice", "secret")
    # spent: refused (her account still logs in with the new password)
    assert await try_register(srv, f"alice@{DOMAIN}", token) == [
        "item-not-found", "not-acceptable", "logged in"]
    assert await srv.server.accounts.verify_password(DOMAIN, "alice", "secret")


# -- contact invitations ---------------------------------------------------------------

async def test_contact_invitation_preapproves_mutual_subscription(srv):
    await srv.adduser(f"alice@{DOMAIN}")
    await srv.adduser(f"bob@{DOMAIN}")
    host = srv.server.hosts[DOMAIN]
    invite = await invites_of(srv).create_contact("alice")
    assert invite["uri"] == f"xmpp:alice@{DOMAIN}?roster;preauth={invite['token']}"
    async with logged_in(srv, f"alice@{DOMAIN}", f"bob@{DOMAIN}") as (a, b):
        asked = []
        a.add_event_handler("presence_subscribe", asked.append)
        p = b.make_presence(pto=f"alice@{DOMAIN}", ptype="subscribe")
        p.append(ET.Element(f"{{{PARS}}}preauth", token=invite["token"]))
        p.send()

        async def mutual():
            return (await host.roster.subscription("alice", f"bob@{DOMAIN}") == "both"
                    and await host.roster.subscription("bob", f"alice@{DOMAIN}") == "both")
        await wait_for(mutual, "alice and bob subscribed to each other")
        assert asked == []          # alice was never asked
    assert await invites_of(srv).pending() == []    # spent


async def test_wrong_token_is_an_ordinary_request(srv):
    await srv.adduser(f"alice@{DOMAIN}")
    await srv.adduser(f"bob@{DOMAIN}")
    host = srv.server.hosts[DOMAIN]
    async with logged_in(srv, f"alice@{DOMAIN}", f"bob@{DOMAIN}") as (a, b):
        a.auto_authorize = None     # alice decides herself
        asked = asyncio.get_running_loop().create_future()
        a.add_event_handler("presence_subscribe", lambda p: asked.done() or asked.set_result(p))
        p = b.make_presence(pto=f"alice@{DOMAIN}", ptype="subscribe")
        p.append(ET.Element(f"{{{PARS}}}preauth", token="forged"))
        p.send()
        await asyncio.wait_for(asked, TIMEOUT)
        assert await host.roster.subscription("alice", f"bob@{DOMAIN}") == "none"


async def test_adhoc_contact_invitation_then_registration(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=modules() + "    allow_user_invites = true\n")
    try:
        await s.adduser(f"alice@{DOMAIN}")
        host = s.server.hosts[DOMAIN]
        async with logged_in(s, f"alice@{DOMAIN}", plugins=PLUGINS) as a:
            iq = await a.plugin["xep_0050"].send_command(JID(DOMAIN), "urn:xmpp:invite#invite",
                                                         timeout=TIMEOUT)
            cmd = iq["command"]
            assert cmd["status"] == "completed"
            values = cmd["form"].get_values()
            uri = values["uri"]
            assert re.fullmatch(rf"xmpp:alice@{DOMAIN}\?roster;preauth=[\w-]+;ibr=y", uri)
            assert values["expire"]
            token = re.search(r"preauth=([\w-]+)", uri).group(1)
            assert (await try_register(s, f"carol@{DOMAIN}", token))[-1] == "logged in"
            # the inviter and the invitee are each other's contacts at once
            assert await host.roster.subscription("alice", f"carol@{DOMAIN}") == "both"
            assert await host.roster.subscription("carol", f"alice@{DOMAIN}") == "both"
    finally:
        await s.server.stop()


async def test_adhoc_account_invitation_is_for_admins(srv):
    await srv.adduser(f"admin@{DOMAIN}")
    await srv.adduser(f"bob@{DOMAIN}")
    async with logged_in(srv, f"admin@{DOMAIN}", f"bob@{DOMAIN}", plugins=PLUGINS) as (adm, bob):
        items = await bob.plugin["xep_0050"].get_commands(JID(DOMAIN), timeout=TIMEOUT)
        nodes = [i[1] for i in items["disco_items"]["items"]]
        assert "urn:xmpp:invite#invite" in nodes and "urn:xmpp:invite#create-account" not in nodes
        with pytest.raises(IqError) as err:
            await bob.plugin["xep_0050"].send_command(JID(DOMAIN), "urn:xmpp:invite#create-account",
                                                      timeout=TIMEOUT)
        assert err.value.iq["error"]["condition"] == "forbidden"
        # bob's own contact invitation does not open registration (allow_user_invites = false)
        iq = await bob.plugin["xep_0050"].send_command(JID(DOMAIN), "urn:xmpp:invite#invite",
                                                       timeout=TIMEOUT)
        uri = iq["command"]["form"].get_values()["uri"]
        assert uri.endswith(";ibr=y") is False
        bob_token = re.search(r"preauth=([\w-]+)", uri).group(1)
        assert await try_register(srv, f"eve@{DOMAIN}", bob_token) == ["item-not-found", "not-acceptable"]
        iq = await adm.plugin["xep_0050"].send_command(JID(DOMAIN), "urn:xmpp:invite#create-account",
                                                       timeout=TIMEOUT)
        uri = iq["command"]["form"].get_values()["uri"]
        assert uri.startswith(f"xmpp:{DOMAIN}?register;preauth=")
    token = re.search(r"preauth=([\w-]+)", uri).group(1)
    assert (await try_register(srv, f"dave@{DOMAIN}", token))[-1] == "logged in"


async def test_invitations_revoked_with_their_creator(srv):
    await srv.adduser(f"admin@{DOMAIN}")
    await srv.adduser(f"alice@{DOMAIN}")
    invites = invites_of(srv)
    by_admin = await invites.create_account(creator=f"admin@{DOMAIN}")
    by_alice = await invites.create_contact("alice", allow_registration=True)
    other = await invites.create_account()
    await srv.server.accounts.delete(DOMAIN, "admin")
    await srv.server.accounts.delete(DOMAIN, "alice")
    assert [i["token"] for i in await invites.pending()] == [other["token"]]
    for token in (by_admin["token"], by_alice["token"]):
        assert await try_register(srv, f"late@{DOMAIN}", token) == ["item-not-found", "not-acceptable"]


async def test_creator_deleted_while_stopped_is_refused(srv):
    await srv.adduser(f"alice@{DOMAIN}")
    invites = invites_of(srv)
    invite = await invites.create_contact("alice", allow_registration=True)
    # the account vanishes without the event (as by a tool working on the storage)
    await srv.server.storage.keyval(DOMAIN, "accounts").delete("alice")
    assert await try_register(srv, f"late@{DOMAIN}", invite["token"]) == ["item-not-found", "not-acceptable"]
    assert await invites.pending() == []


# -- the landing page --------------------------------------------------------------------

async def test_landing_page_over_https(tmp_path, certs):
    from .test_http_file_share import Loopback
    s = await start_server(tmp_path, certs, extra=HTTP, host_extra=modules("invites_page"))
    try:
        invite = await invites_of(s).create_account()
        page = invite["landing_page"]
        port = s.server.ports("https")[0]
        assert page == f"https://{DOMAIN}:{port}/invites_page?{invite['token']}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=client_ssl(s.cafile), resolver=Loopback())) as http:
            async with http.get(page) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/html")
                text = await r.text()
            assert invite["uri"] in text and "Conversations" in text
            async with http.get(f"https://{DOMAIN}:{port}/invites_page?forged") as r:
                assert r.status == 404
                assert "invalid" in await r.text()
            assert await invites_of(s).revoke(invite["token"])
            async with http.get(page) as r:
                assert r.status == 404
    finally:
        await s.server.stop()


async def test_invites_page_template(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=modules() +
                           '    invites_page = "https://join.example/{host}/#{invite.token}"\n')
    try:
        invite = await invites_of(s).create_account()
        assert invite["landing_page"] == f"https://join.example/{DOMAIN}/#{invite['token']}"
        contact = await invites_of(s).create_contact("alice")   # contact-only: not supported
        assert "landing_page" not in contact
    finally:
        await s.server.stop()

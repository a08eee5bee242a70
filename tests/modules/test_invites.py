"""Invitations through the module harness: the store's rules (expiry, single use,
reusable, named accounts, revocation with the creator), the landing-page template,
and two sessions racing for one single-use token."""
import time

import pytest

from tests.harness import Harness
from tests.modules.test_register import Anonymous, creds, error_of
from xmppd.modules.invites import InviteError, describe, render_template
from xmppd.xmpp import ns

MODULES = ("roster", "register", "invites", "invites_register")
DOMAIN = "example.com"


def preauth(token: str) -> str:
    return f"<preauth xmlns='{ns.PARS}' token='{token}'/>"


async def test_store_rules():
    async with Harness(modules=MODULES) as h:
        invites = h.host().provided("invites")
        await h.server.accounts.create(DOMAIN, "alice", "pw")
        account = await invites.create_account()
        assert (await invites.get(account["token"]))["type"] == "register"
        contact = await invites.create_contact("alice")
        with pytest.raises(InviteError):
            await invites.get(contact["token"])           # contact-only: no registration
        assert (await invites.get(contact["token"], "alice"))["jid"] == f"alice@{DOMAIN}"
        with pytest.raises(InviteError):
            await invites.get(contact["token"], "bob")    # not bob's invitation
        await invites.use(account)
        with pytest.raises(InviteError, match="token-invalid"):
            await invites.get(account["token"])
        reusable = await invites.create_account(reusable=True)
        await invites.use(reusable)
        await invites.get(reusable["token"])
        old = await invites.create_account(ttl=60)
        await invites.store.set(None, old["token"], dict(old, expires=int(time.time()) - 1))
        with pytest.raises(InviteError, match="token-expired"):
            await invites.get(old["token"])
        assert await invites.purge_expired() == 1
        named = await invites.create_account("juliet")
        assert await invites.reserved_by("juliet") == {named["token"]}
        assert await invites.reserved_by("romeo") == set()
        assert await invites.revoke_by("alice") == 1      # her contact invitation
        assert await invites.store.items("alice") == {}
        assert {i["token"] for i in await invites.pending()} == {reusable["token"], named["token"]}


def test_template_and_description():
    invite = {"type": "roster", "jid": "joe@falcot.com", "token": "T0k", "allow_registration": True,
              "uri": "xmpp:joe@falcot.com?roster;preauth=T0k;ibr=y",
              "additional_data": {}}
    assert render_template("https://x.example/{host}/i?{invite.token}", "falcot.com", invite) \
        == "https://x.example/falcot.com/i?T0k"
    assert render_template("https://x.example/#{invite.uri|noscheme}", "falcot.com", invite) \
        == "https://x.example/#joe%40falcot.com%3Froster%3Bpreauth%3DT0k%3Bibr%3Dy"
    assert describe(invite) == "contact with joe@falcot.com (may register)"
    assert describe({"type": "register", "jid": "falcot.com",
                     "additional_data": {"roles": ["prosody:admin"], "groups": ["a", "b"]}}) \
        == "register on falcot.com, as an administrator, groups a,b"


async def test_two_sessions_one_single_use_token():
    async with Harness(modules=MODULES) as h:
        invite = await h.host().provided("invites").create_account()
        one, two = Anonymous(h), Anonymous(h, peer="192.0.2.2:40000")
        for anon in (one, two):
            assert (await anon.iq("set", preauth(invite["token"]))).get("type") == "result"
        assert (await one.iq("set", creds("first", "pw"))).get("type") == "result"
        assert error_of(await two.iq("set", creds("second", "pw"))) == "not-acceptable"
        assert await h.server.accounts.exists(DOMAIN, "first")
        assert not await h.server.accounts.exists(DOMAIN, "second")
        assert error_of(await two.iq("set", preauth(invite["token"]))) == "item-not-found"


async def test_stream_features_and_plain_text():
    async with Harness(modules=MODULES) as h:
        feats = [f.tag for f in Anonymous(h).features(h.host()) if f is not None]
        assert ns.q(ns.IBR_TOKEN, "register") in feats and ns.q(ns.INVITE, "register") in feats
        assert ns.q(ns.REGISTER_FEATURE, "register") in feats     # invite-only opens it
        plain = Anonymous(h, tls=False)
        assert [f for f in plain.features(h.host()) if f is not None] == []
        assert error_of(await plain.iq("set", preauth("x"))) == "policy-violation"

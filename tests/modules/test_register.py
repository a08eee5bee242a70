"""In-Band Registration (XEP-0077): account creation before authentication (and
each of its refusals), then password change and account removal once logged in."""
import pytest

from tests.harness import Client, Harness
from xmppd.xmpp import ns

REG = ns.REGISTER
ALLOW = "    allow_registration = true\n"


def error_of(reply):
    assert reply.get("type") == "error", reply.attrib
    err = reply.find(ns.q(ns.CLIENT, "error"))
    return next(c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR))


def query(*children: str) -> str:
    return f"<query xmlns='{REG}'>{''.join(children)}</query>"


def creds(user: str | None, password: str | None) -> str:
    out = ""
    if user is not None:
        out += f"<username>{user}</username>"
    if password is not None:
        out += f"<password>{password}</password>"
    return query(out)


class Anonymous:
    """A client stream that has not authenticated: its IQs go to the stream, not the router."""

    def __init__(self, h, *, tls=True, peer="192.0.2.1:40000"):
        host = h.host()
        self.c = Client(h.server, host, None, None)
        self.c.authenticated = False
        self.c.username = None
        self.c.tls = tls
        self.c.peer = peer
        self.n = 0

    async def iq(self, type_, payload):
        self.n += 1
        iq_id = f"r{self.n}"
        await self.c.send_stanza(f"<iq type='{type_}' id='{iq_id}'>{payload}</iq>")
        return await self.c.next("iq", match=lambda e: e.get("id") == iq_id)

    def features(self, host):
        return [f(self.c) for f in host.stream_features.get("pre-auth", ())]


async def test_registration_form_and_account_creation():
    async with Harness(modules=("register",), host_extra=ALLOW
                       + '    registration_instructions = "Pick a name"\n') as h:
        anon = Anonymous(h)
        feats = [f for f in anon.features(h.host()) if f is not None]
        assert [f.tag for f in feats] == [ns.q(ns.REGISTER_FEATURE, "register")]
        form = await anon.iq("get", query())
        assert form.get("type") == "result"
        q = form.find(ns.q(REG, "query"))
        assert [c.tag.rpartition("}")[2] for c in q] == ["instructions", "username", "password"]
        assert q.findtext(ns.q(REG, "instructions")) == "Pick a name"

        registered = []
        h.host().events.hook("user-registered", registered.append)
        reply = await anon.iq("set", creds("Carol", "pw"))
        assert reply.get("type") == "result"
        assert await h.server.accounts.verify_password("example.com", "carol", "pw")
        assert registered == ["carol"]
        assert error_of(await anon.iq("set", creds("carol", "other"))) == "conflict"


@pytest.mark.parametrize("payload", [creds("dave", None), creds(None, "pw"), creds("", "pw"),
                                     creds("a@b", "pw")])
async def test_missing_or_invalid_credentials_are_not_acceptable(payload):
    async with Harness(modules=("register",), host_extra=ALLOW) as h:
        anon = Anonymous(h)
        assert error_of(await anon.iq("set", payload)) == "not-acceptable"
        assert await h.server.accounts.users("example.com") == []


async def test_removal_before_login_is_registration_required():
    async with Harness(modules=("register",), host_extra=ALLOW) as h:
        await h.adduser("carol@example.com")
        anon = Anonymous(h)
        reply = await anon.iq("set", query("<username>carol</username><remove/>"))
        assert error_of(reply) == "registration-required"
        assert await h.server.accounts.exists("example.com", "carol")


async def test_disabled_registration_is_service_unavailable():
    async with Harness(modules=("register",)) as h:
        anon = Anonymous(h)
        assert [f for f in anon.features(h.host()) if f is not None] == []
        assert error_of(await anon.iq("get", query())) == "service-unavailable"
        assert error_of(await anon.iq("set", creds("carol", "pw"))) == "service-unavailable"
        assert not await h.server.accounts.exists("example.com", "carol")


async def test_without_tls_registration_is_a_policy_violation():
    async with Harness(modules=("register",), host_extra=ALLOW) as h:
        anon = Anonymous(h, tls=False)
        assert [f for f in anon.features(h.host()) if f is not None] == []
        assert error_of(await anon.iq("set", creds("carol", "pw"))) == "policy-violation"
        assert not await h.server.accounts.exists("example.com", "carol")


async def test_one_registration_per_address_and_period():
    async with Harness(modules=("register",), host_extra=ALLOW
                       + "    min_seconds_between_registrations = 60\n") as h:
        first = Anonymous(h)
        assert (await first.iq("set", creds("carol", "pw"))).get("type") == "result"
        again = Anonymous(h)
        assert error_of(await again.iq("set", creds("dave", "pw"))) == "resource-constraint"
        elsewhere = Anonymous(h, peer="198.51.100.7:5000")
        assert (await elsewhere.iq("set", creds("dave", "pw"))).get("type") == "result"


async def test_a_logged_in_account_is_told_it_is_registered():
    async with Harness(modules=("register",)) as h:
        alice = await h.client("alice@example.com/phone")
        for to in ("example.com", "alice@example.com", None):
            reply = await alice.iq("get", query(), to=to)
            assert reply.get("type") == "result", to
            q = reply.find(ns.q(REG, "query"))
            assert [c.tag.rpartition("}")[2] for c in q] == ["registered", "username", "password"]
            assert q.findtext(ns.q(REG, "username")) == "alice"


async def test_another_accounts_registration_is_service_unavailable():
    async with Harness(modules=("register",)) as h:
        alice = await h.client("alice@example.com/phone")
        await h.adduser("bob@example.com", "bobpw")
        assert error_of(await alice.iq("get", query(), to="bob@example.com")) == "service-unavailable"
        reply = await alice.iq("set", creds("bob", "new"), to="bob@example.com")
        assert error_of(reply) == "service-unavailable"
        assert await h.server.accounts.verify_password("example.com", "bob", "bobpw")


async def test_password_change():
    async with Harness(modules=("register",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("set", creds("alice", "new"), to="example.com")
        assert reply.get("type") == "result"
        assert await h.server.accounts.verify_password("example.com", "alice", "new")
        reply = await alice.iq("set", creds(None, "newer"))
        assert reply.get("type") == "result"
        assert await h.server.accounts.verify_password("example.com", "alice", "newer")
        assert error_of(await alice.iq("set", creds("alice", None))) == "not-acceptable"
        assert error_of(await alice.iq("set", creds("bob", "x"))) == "not-allowed"
        assert error_of(await alice.iq("set", creds("a@b", "x"))) == "not-acceptable"
        assert await h.server.accounts.verify_password("example.com", "alice", "newer")


async def test_password_change_of_an_imported_account_stores_both_hashes():
    """An account with SCRAM-SHA-1 keys only (imported from Prosody) keeps the host
    from offering SCRAM-SHA-256 until a password change (XEP-0077) stores both."""
    async with Harness(modules=("register",)) as h:
        accounts = h.server.accounts
        alice = await h.client("alice@example.com/phone")
        full = await accounts.get_credentials("example.com", "alice")
        sha1 = {k: v for k, v in full.items() if k != "scram-sha-256"}
        await h.server.storage.keyval("example.com", "accounts").set("alice", sha1)
        await accounts.mark_sha1_only("example.com", ["alice"])
        assert not accounts.offers_sha256("example.com")
        reply = await alice.iq("set", creds("alice", "new"), to="example.com")
        assert reply.get("type") == "result"
        assert "scram-sha-256" in await accounts.get_credentials("example.com", "alice")
        assert accounts.offers_sha256("example.com")
        assert await h.server.storage.keyval("example.com", "accounts_sha1_only").get(None) is None


async def test_removal_is_acknowledged_then_the_account_is_gone():
    async with Harness(modules=("register",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("set", query("<remove/>"))
        assert reply.get("type") == "result"
        await alice.server_tasks()
        assert not await h.server.accounts.exists("example.com", "alice")
        assert [e.condition for e in alice.stream_errors] == ["not-authorized"]
        assert alice.closing

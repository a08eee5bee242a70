"""Server-side SASL driven by scramp's client (and by hand for the odd cases)."""
from __future__ import annotations

import asyncio
import base64

import pytest
from scramp import ScramClient, ScramException
from scramp.core import Gs2Header

from xmppd.core.credentials import make_credentials
from xmppd.xmpp.errors import SASLFailure
from xmppd.protocol import sasl
from xmppd.protocol.sasl import (
    SASLServer, SASLStep, decode_payload, encode_payload, nodeprep, offered_mechanisms,
)

HOST = "example.com"
CB = ("tls-server-end-point", bytes(range(32)))
ALL = offered_mechanisms(tls=True, channel_binding_available=True)
NO_PLUS = offered_mechanisms(tls=True, channel_binding_available=False)


@pytest.fixture(scope="module")
def accounts():
    return {"juliet": make_credentials("r0m30 & juliet", 4096),
            "user,with=odd": make_credentials("pw", 4096)}


@pytest.fixture
def lookups():
    return []


@pytest.fixture
def get_credentials(accounts, lookups):
    async def get(username):
        lookups.append(username)
        await asyncio.sleep(0)
        return accounts.get(username)
    return get


def server(mech, get_credentials, *, offered=ALL, cb=CB, **kw):
    return SASLServer(mech, offered=offered, host=HOST, get_credentials=get_credentials,
                      channel_binding=cb, **kw)


async def scram_exchange(srv: SASLServer, client: ScramClient) -> SASLStep:
    step = await srv.step(client.get_client_first().encode())
    assert step.kind == "challenge"
    client.set_server_first(step.data.decode())
    step = await srv.step(client.get_client_final().encode())
    assert step.kind == "success"
    client.set_server_final(step.data.decode())  # verifies the server's signature
    return step


# --- offering -------------------------------------------------------------------------

def test_offered_order():
    assert ALL == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1",
                   "PLAIN"]
    assert NO_PLUS == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert offered_mechanisms(tls=False, channel_binding_available=True) == [
        "SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert "PLAIN" not in offered_mechanisms(tls=True, channel_binding_available=True,
                                             allow_plain=False)


def test_invalid_mechanism(get_credentials):
    for mech, offered in (("DIGEST-MD5", ALL), ("PLAIN", ["SCRAM-SHA-1"]),
                          ("SCRAM-SHA-1-PLUS", NO_PLUS)):
        with pytest.raises(SASLFailure) as ei:
            server(mech, get_credentials, offered=offered)
        assert ei.value.condition == "invalid-mechanism"
    with pytest.raises(SASLFailure) as ei:   # offered, but no binding data to run it
        server("SCRAM-SHA-256-PLUS", get_credentials, cb=None)
    assert ei.value.condition == "invalid-mechanism"


def test_payload_coding():
    assert decode_payload(None) is None
    assert decode_payload("") is None
    assert decode_payload("=") == b""
    assert decode_payload("AGp1bGlldAB4") == b"\0juliet\0x"
    assert decode_payload("AGp1\nbGlldAB4") == b"\0juliet\0x"
    for bad in ("AGp1bGlldAB", "****", "AA=A"):
        with pytest.raises(SASLFailure) as ei:
            decode_payload(bad)
        assert ei.value.condition == "incorrect-encoding"
    assert encode_payload(b"") == "="
    assert encode_payload(b"v=abc") == base64.b64encode(b"v=abc").decode()


def test_nodeprep():
    assert nodeprep("Juliet") == "juliet"
    assert nodeprep("\u00c4BC") == "\u00e4bc"
    for bad in ("", "a b", "a@b", "a/b", "a:b", "x" * 1024):
        with pytest.raises(ValueError):
            nodeprep(bad)


def test_tls_server_end_point_reexported():
    from xmppd.net import tls
    assert sasl.tls_server_end_point is tls.tls_server_end_point


# --- SCRAM ----------------------------------------------------------------------------

@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram_success(mech, get_credentials, lookups):
    srv = server(mech, get_credentials)
    client = ScramClient([mech], "Juliet", "r0m30 & juliet")
    step = await scram_exchange(srv, client)
    assert step.username == "juliet"            # nodeprep'd
    assert step.authzid is None
    assert step.data.startswith(b"v=")
    assert lookups == ["juliet"]
    assert srv.done


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram_wrong_password(mech, get_credentials):
    srv = server(mech, get_credentials)
    client = ScramClient([mech], "juliet", "wrong")
    step = await srv.step(client.get_client_first().encode())
    client.set_server_first(step.data.decode())
    with pytest.raises(SASLFailure) as ei:
        await srv.step(client.get_client_final().encode())
    assert ei.value.condition == "not-authorized"
    with pytest.raises(SASLFailure):             # the exchange is over
        await srv.step(b"anything")


async def test_scram_unknown_user_looks_like_wrong_password(get_credentials):
    """Same step, same answer, and a stable salt: no user enumeration."""
    salts = []
    for _ in range(2):
        srv = server("SCRAM-SHA-256", get_credentials)
        client = ScramClient(["SCRAM-SHA-256"], "nobody", "whatever")
        step = await srv.step(client.get_client_first().encode())
        assert step.kind == "challenge"
        first = dict(kv.split("=", 1) for kv in step.data.decode().split(","))
        salts.append(first["s"])
        assert first["i"] == "10000"
        client.set_server_first(step.data.decode())
        with pytest.raises(SASLFailure) as ei:
            await srv.step(client.get_client_final().encode())
        assert ei.value.condition == "not-authorized"
    assert salts[0] == salts[1]


async def test_scram_escaped_username(get_credentials, lookups):
    srv = server("SCRAM-SHA-1", get_credentials)
    client = ScramClient(["SCRAM-SHA-1"], "user,with=odd", "pw")
    assert "n=user=2Cwith=3Dodd," in client.get_client_first()
    client = ScramClient(["SCRAM-SHA-1"], "user,with=odd", "pw")
    step = await scram_exchange(srv, client)
    assert step.username == "user,with=odd"
    assert lookups == ["user,with=odd"]


async def test_scram_without_initial_response(get_credentials):
    srv = server("SCRAM-SHA-256", get_credentials)
    assert await srv.step(None) == SASLStep("challenge", b"")
    step = await scram_exchange(srv, ScramClient(["SCRAM-SHA-256"], "juliet", "r0m30 & juliet"))
    assert step.username == "juliet"


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
async def test_scram_plus_success(mech, get_credentials):
    srv = server(mech, get_credentials)
    client = ScramClient([mech], "juliet", "r0m30 & juliet", channel_binding=CB)
    assert client.get_client_first().startswith("p=tls-server-end-point,,")
    client = ScramClient([mech], "juliet", "r0m30 & juliet", channel_binding=CB)
    step = await scram_exchange(srv, client)
    assert step.username == "juliet"


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
async def test_scram_plus_wrong_binding(mech, get_credentials):
    srv = server(mech, get_credentials)
    other = ("tls-server-end-point", bytes(32))          # e.g. a MITM's certificate
    client = ScramClient([mech], "juliet", "r0m30 & juliet", channel_binding=other)
    step = await srv.step(client.get_client_first().encode())
    client.set_server_first(step.data.decode())
    with pytest.raises(SASLFailure) as ei:
        await srv.step(client.get_client_final().encode())
    assert ei.value.condition == "not-authorized"


async def test_scram_plus_other_binding_type(get_credentials):
    srv = server("SCRAM-SHA-256-PLUS", get_credentials)
    client = ScramClient(["SCRAM-SHA-256-PLUS"], "juliet", "x",
                         channel_binding=("tls-unique", b"0123456789"))
    with pytest.raises(SASLFailure) as ei:
        await srv.step(client.get_client_first().encode())
    assert ei.value.condition == "not-authorized"


async def test_scram_y_flag_downgrade(get_credentials):
    """The client can bind ("y") but believes we cannot: -PLUS was stripped en route."""
    client = ScramClient(["SCRAM-SHA-256"], "juliet", "r0m30 & juliet", channel_binding=CB)
    first = client.get_client_first()
    assert first.startswith("y,,")
    srv = server("SCRAM-SHA-256", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(first.encode())
    assert ei.value.condition == "not-authorized"


async def test_scram_y_flag_fine_when_plus_not_offered(get_credentials):
    client = ScramClient(["SCRAM-SHA-1"], "juliet", "r0m30 & juliet", channel_binding=CB)
    srv = server("SCRAM-SHA-1", get_credentials, offered=NO_PLUS, cb=None)
    step = await scram_exchange(srv, client)
    assert step.username == "juliet"


async def test_scram_flag_mismatches(get_credentials):
    # "p" with a non-PLUS mechanism, and "n" with a -PLUS one
    srv = server("SCRAM-SHA-256", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(b"p=tls-server-end-point,,n=juliet,r=abcdef")
    assert ei.value.condition == "malformed-request"
    srv = server("SCRAM-SHA-256-PLUS", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(b"n,,n=juliet,r=abcdef")
    assert ei.value.condition == "malformed-request"


class _AuthzGs2(Gs2Header):
    """Test-side client header carrying an authzid (scramp's client has none)."""

    def __init__(self, parsed, raw):
        super().__init__(parsed.gs2_char, parsed.cb_name)
        self.raw = raw

    def __str__(self):
        return self.raw


def client_with_authzid(mech, user, password, authzid, cb=None):
    client = ScramClient([mech], user, password, channel_binding=cb)
    flag = str(client.gs2_header).split(",")[0]
    esc = authzid.replace("=", "=3D").replace(",", "=2C")
    client.gs2_header = _AuthzGs2(client.gs2_header, f"{flag},a={esc},")
    return client


@pytest.mark.parametrize("mech,cb", [("SCRAM-SHA-256", None), ("SCRAM-SHA-1-PLUS", CB)])
async def test_scram_authzid_own_jid(mech, cb, get_credentials):
    client = client_with_authzid(mech, "juliet", "r0m30 & juliet", "Juliet@Example.com", cb)
    assert client.get_client_first().startswith(("n,a=Juliet@Example.com,",
                                                 "p=tls-server-end-point,a=Juliet@"))
    client = client_with_authzid(mech, "juliet", "r0m30 & juliet", "Juliet@Example.com", cb)
    srv = server(mech, get_credentials)
    step = await scram_exchange(srv, client)
    assert step.username == "juliet"
    assert step.authzid == "juliet@example.com"


@pytest.mark.parametrize("authzid", ["romeo@example.com", "juliet@example.org",
                                     "juliet@example.com/balcony", "juliet", "@@"])
async def test_scram_authzid_other(authzid, get_credentials):
    client = client_with_authzid("SCRAM-SHA-256", "juliet", "r0m30 & juliet", authzid)
    srv = server("SCRAM-SHA-256", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(client.get_client_first().encode())
    assert ei.value.condition == "invalid-authzid"


async def test_scram_authzid_tampered_header(get_credentials):
    """The c= attribute must repeat the gs2 header actually sent, authzid included."""
    client = ScramClient(["SCRAM-SHA-256"], "juliet", "r0m30 & juliet")
    first = client.get_client_first()      # "n,,n=juliet,r=..."
    srv = server("SCRAM-SHA-256", get_credentials)
    step = await srv.step(("n,a=juliet@example.com," + first[3:]).encode())
    client.set_server_first(step.data.decode())
    with pytest.raises(SASLFailure) as ei:
        await srv.step(client.get_client_final().encode())   # c=biws ("n,,")
    assert ei.value.condition == "not-authorized"


@pytest.mark.parametrize("data", [
    b"garbage", b"n,,", b"x,,n=juliet,r=abc", b"n,b=x,n=juliet,r=abc", b"n,,r=abc,n=juliet",
    b"n,,n=jul=41iet,r=abc", b"n,,n=juliet", b"n,,n=juliet,r=ab,c", b"\xff\xfe,,n=a,r=b",
    b"n,,m=ext,n=juliet,r=abc", b"n,,n=,r=abc",
])
async def test_scram_malformed_first(data, get_credentials):
    srv = server("SCRAM-SHA-256", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(data)
    assert ei.value.condition == "malformed-request"
    assert srv.done


@pytest.mark.parametrize("final", [
    "garbage", "c=biws", "c=biws,r={nonce}", "c=biws,r=wrongnonce,p=AAAA",
    "c=@@@@,r={nonce},p=AAAA", "c=biws,r={nonce},p=AAAA",
])
async def test_scram_malformed_final(final, get_credentials):
    srv = server("SCRAM-SHA-256", get_credentials)
    client = ScramClient(["SCRAM-SHA-256"], "juliet", "r0m30 & juliet")
    step = await srv.step(client.get_client_first().encode())
    nonce = dict(kv.split("=", 1) for kv in step.data.decode().split(","))["r"]
    with pytest.raises(SASLFailure) as ei:
        await srv.step(final.format(nonce=nonce).encode())
    assert ei.value.condition in ("malformed-request", "not-authorized")


async def test_scram_oversized(get_credentials):
    srv = server("SCRAM-SHA-256", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(b"n,,n=juliet,r=" + b"a" * 10000)
    assert ei.value.condition == "malformed-request"


async def test_storage_failure_is_temporary():
    async def broken(_username):
        raise OSError("database is locked")
    srv = SASLServer("SCRAM-SHA-1", offered=ALL, host=HOST, get_credentials=broken)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(ScramClient(["SCRAM-SHA-1"], "juliet", "x").get_client_first().encode())
    assert ei.value.condition == "temporary-auth-failure"


def test_scramp_client_rejects_forged_server_signature():
    """Sanity check of the test harness: scramp's client does verify v=."""
    client = ScramClient(["SCRAM-SHA-1"], "juliet", "x")
    client.get_client_first()
    client.set_server_first(f"r={client.c_nonce}srv,s=QSXCR+Q6sek8bf92,i=4096")
    client.get_client_final()
    with pytest.raises(ScramException):
        client.set_server_final("v=" + base64.b64encode(b"\0" * 20).decode())


# --- PLAIN ----------------------------------------------------------------------------

async def test_plain_success(get_credentials):
    srv = server("PLAIN", get_credentials)
    step = await srv.step(b"\0Juliet\0r0m30 & juliet")
    assert step == SASLStep("success", b"", "juliet", None)


async def test_plain_with_authzid(get_credentials):
    srv = server("PLAIN", get_credentials)
    step = await srv.step(b"juliet@example.com\0juliet\0r0m30 & juliet")
    assert (step.username, step.authzid) == ("juliet", "juliet@example.com")
    srv = server("PLAIN", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(b"romeo@example.com\0juliet\0r0m30 & juliet")
    assert ei.value.condition == "invalid-authzid"


@pytest.mark.parametrize("data", [b"\0juliet\0wrong", b"\0nobody\0r0m30 & juliet",
                                  b"\0a b\0r0m30 & juliet"])
async def test_plain_failure(data, get_credentials):
    srv = server("PLAIN", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(data)
    assert ei.value.condition == "not-authorized"


@pytest.mark.parametrize("data", [b"juliet\0pw", b"\0\0pw", b"\0juliet\0", b"a\0b\0c\0d",
                                  b"\0jul\xffiet\0pw"])
async def test_plain_malformed(data, get_credentials):
    srv = server("PLAIN", get_credentials)
    with pytest.raises(SASLFailure) as ei:
        await srv.step(data)
    assert ei.value.condition == "malformed-request"


async def test_plain_without_initial_response(get_credentials):
    srv = server("PLAIN", get_credentials)
    assert (await srv.step(b"")).kind == "challenge"
    step = await srv.step(b"\0juliet\0r0m30 & juliet")
    assert step.username == "juliet"


async def test_plain_custom_verifier(get_credentials):
    seen = []

    async def verify(username, password):
        seen.append((username, password))
        return password == "ldap-secret"
    srv = server("PLAIN", get_credentials, verify_plain=verify)
    assert (await srv.step(b"\0Romeo\0ldap-secret")).username == "romeo"
    srv = server("PLAIN", get_credentials, verify_plain=verify)
    with pytest.raises(SASLFailure):
        await srv.step(b"\0romeo\0nope")
    assert seen == [("romeo", "ldap-secret"), ("romeo", "nope")]


def test_plain_not_offered_without_tls(get_credentials):
    offered = offered_mechanisms(tls=False, channel_binding_available=False)
    assert "PLAIN" not in offered
    with pytest.raises(SASLFailure) as ei:
        server("PLAIN", get_credentials, offered=offered)
    assert ei.value.condition == "invalid-mechanism"

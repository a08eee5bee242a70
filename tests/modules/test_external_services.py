"""External Service Discovery (XEP-0215): configured services and those other
modules add as ``external-service`` items (turn_external), fresh TURN REST
credentials, the credentials request and who may ask."""
import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

from tests.harness import Harness
from xmppd.xmpp import ns

TURN = """
    turn_external_host = "turn.example.com"
    turn_external_secret = "s3cr3t"
    turn_external_ttl = 600
    external_services = {
        { type = "stun", transport = "udp", host = "stun.example.net", port = 3478 };
        { type = "turn", transport = "udp", host = "relay.example.net", port = 3479,
          username = "roland", password = "secret_password" };
    }
"""


def error_of(reply):
    assert reply.get("type") == "error", reply.attrib
    err = reply.find(ns.q(ns.CLIENT, "error"))
    return next(c.tag.rpartition("}")[2] for c in err if c.tag.startswith("{" + ns.STANZAS_ERR))


async def services(client, payload=None, xmlns=ns.EXTDISCO):
    reply = await client.iq("get", payload or f"<services xmlns='{xmlns}'/>", to="example.com")
    assert reply.get("type") == "result", reply.attrib
    el = reply[0]
    assert el.tag in (ns.q(xmlns, "services"), ns.q(xmlns, "credentials"))
    assert all(s.tag == ns.q(xmlns, "service") for s in el)
    return [dict(s.attrib) for s in el]


def check_rest_credentials(srv, secret, ttl):
    expires = int(srv["username"])
    assert abs(expires - (time.time() + ttl)) < 5
    stamp = datetime.strptime(srv["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(stamp.timestamp()) == expires
    mac = hmac.digest(secret.encode(), srv["username"].encode(), hashlib.sha1)
    assert srv["password"] == base64.b64encode(mac).decode()


async def test_configured_services_then_turn_external_items():
    async with Harness(modules=("external_services", "turn_external"), host_extra=TURN) as h:
        alice = await h.client("alice@example.com/phone")
        got = await services(alice)
        assert [(s["type"], s["host"], s.get("port")) for s in got] == [
            ("stun", "stun.example.net", "3478"), ("turn", "relay.example.net", "3479"),
            ("stun", "turn.example.com", "3478"), ("turn", "turn.example.com", "3478")]
        assert got[1] == {"type": "turn", "host": "relay.example.net", "transport": "udp",
                          "port": "3479", "username": "roland", "password": "secret_password",
                          "restricted": "1"}
        assert "restricted" not in got[0] and "restricted" not in got[2]
        assert got[3]["restricted"] == "1"
        check_rest_credentials(got[3], "s3cr3t", 600)

        turns = await services(alice, f"<services xmlns='{ns.EXTDISCO}' type='turn'/>")
        assert [s["host"] for s in turns] == ["relay.example.net", "turn.example.com"]
        # the older namespace is answered in its own
        assert len(await services(alice, xmlns=ns.EXTDISCO_1)) == 4


async def test_unloading_turn_external_removes_its_services():
    async with Harness(modules=("external_services", "turn_external"), host_extra=TURN) as h:
        alice = await h.client("alice@example.com/phone")
        assert len(await services(alice)) == 4
        h.host().unload_module("turn_external")
        assert [s["host"] for s in await services(alice)] == ["stun.example.net", "relay.example.net"]


async def test_turn_external_without_a_secret_adds_nothing():
    async with Harness(modules=("external_services", "turn_external")) as h:
        alice = await h.client("alice@example.com/phone")
        assert await services(alice) == []


async def test_credentials_for_the_restricted_services_asked_for():
    async with Harness(modules=("external_services", "turn_external"), host_extra=TURN) as h:
        alice = await h.client("alice@example.com/phone")
        payload = (f"<credentials xmlns='{ns.EXTDISCO}'>"
                   "<service type='turn' host='turn.example.com'/>"
                   "<service type='stun' host='stun.example.net'/>"
                   "<service type='turn' host='relay.example.net' port='9999'/>"
                   "</credentials>")
        got = await services(alice, payload)
        assert [(s["type"], s["host"]) for s in got] == [("turn", "turn.example.com")]
        check_rest_credentials(got[0], "s3cr3t", 600)


async def test_who_may_ask():
    async with Harness(modules=("external_services",), hosts=("example.com", "other.example"),
                       host_extra=TURN + '    external_service_access = { "bob@other.example" }\n') as h:
        bob = await h.client("bob@other.example/pc")
        carol = await h.client("carol@other.example/pc")
        assert len(await services(bob)) == 2           # listed (asking another host)
        reply = await carol.iq("get", f"<services xmlns='{ns.EXTDISCO}'/>", to="example.com")
        assert error_of(reply) == "forbidden"

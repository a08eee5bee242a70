"""Software Version (XEP-0092): name, version, and the OS unless hidden."""
import platform

import xmppd
from tests.harness import Harness
from xmppd.xmpp import ns

VERSION = f"<query xmlns='{ns.VERSION}'/>"


async def test_name_version_and_os():
    async with Harness(modules=("version",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", VERSION, to="example.com")
        assert reply.get("type") == "result" and reply.get("from") == "example.com"
        q = reply.find(ns.q(ns.VERSION, "query"))
        assert [c.tag.rpartition("}")[2] for c in q] == ["name", "version", "os"]
        assert q.findtext(ns.q(ns.VERSION, "name")) == "xmppd"
        assert q.findtext(ns.q(ns.VERSION, "version")) == xmppd.__version__
        assert q.findtext(ns.q(ns.VERSION, "os")).startswith(platform.system())
        assert ns.VERSION in h.host().features


async def test_hide_os_type():
    async with Harness(modules=("version",), extra="hide_os_type = true\n") as h:
        alice = await h.client("alice@example.com/phone")
        q = (await alice.iq("get", VERSION, to="example.com")).find(ns.q(ns.VERSION, "query"))
        assert [c.tag.rpartition("}")[2] for c in q] == ["name", "version"]

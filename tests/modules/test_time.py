"""Entity Time (XEP-0202): the server's time, in UTC."""
import time

from tests.harness import Harness
from xmppd.xmpp import ns
from xmppd.xmpp.time import parse_stamp


async def test_the_time_in_utc():
    async with Harness(modules=("time",)) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<time xmlns='{ns.TIME}'/>", to="example.com")
        assert reply.get("type") == "result"
        el = reply.find(ns.q(ns.TIME, "time"))
        assert el.findtext(ns.q(ns.TIME, "tzo")) == "Z"
        utc = el.findtext(ns.q(ns.TIME, "utc"))
        assert utc.endswith("Z") and abs(parse_stamp(utc) - time.time()) < 5
        assert ns.TIME in h.host().features

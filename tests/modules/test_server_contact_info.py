"""Contact Addresses (XEP-0157): the serverinfo result form in the server's
disco#info, from contact_info or, without it, the admins."""
from tests.harness import Harness
from xmppd.xmpp import ns

INFO = f"<query xmlns='{ns.DISCO_INFO}'/>"


async def contact_form(h):
    alice = await h.client("alice@example.com/phone")
    reply = await alice.iq("get", INFO, to="example.com")
    forms = reply.find(ns.q(ns.DISCO_INFO, "query")).findall(ns.q(ns.DATA, "x"))
    assert len(forms) == 1
    return forms[0]


def fields(x):
    return [(f.get("var"), f.get("type"), [v.text for v in f.findall(ns.q(ns.DATA, "value"))])
            for f in x.findall(ns.q(ns.DATA, "field"))]


async def test_the_form_from_contact_info():
    extra = """
        contact_info = {
            support = "https://example.com/help";
            admin = { "xmpp:joe@example.com", "mailto:joe@example.com" };
            abuse = "mailto:abuse@example.com";
            nonsense = "ignored";
        }
    """
    async with Harness(modules=("disco", "server_contact_info"), extra=extra) as h:
        x = await contact_form(h)
        assert x.get("type") == "result"
        assert fields(x) == [
            ("FORM_TYPE", "hidden", [ns.SERVERINFO]),
            ("abuse-addresses", "list-multi", ["mailto:abuse@example.com"]),
            ("admin-addresses", "list-multi", ["xmpp:joe@example.com", "mailto:joe@example.com"]),
            ("support-addresses", "list-multi", ["https://example.com/help"]),
        ]
        assert all(f.find(ns.q(ns.DATA, "label")) is None and f.get("label") is None
                   for f in x.findall(ns.q(ns.DATA, "field")))


async def test_without_contact_info_the_admins():
    async with Harness(modules=("disco", "server_contact_info")) as h:
        x = await contact_form(h)
        assert fields(x) == [("FORM_TYPE", "hidden", [ns.SERVERINFO]),
                             ("admin-addresses", "list-multi", ["xmpp:admin@example.com"])]

"""Contact addresses (XEP-0157) in the server's disco#info, read with slixmpp's
xep_0030 + xep_0128 (service discovery extensions)."""
from __future__ import annotations

from .clients import logged_in
from .conftest import start_server

PLUGINS = ("xep_0030", "xep_0004", "xep_0128")


def serverinfo(info) -> dict:
    for form in info["disco_info"].xml.findall("{jabber:x:data}x"):
        fields = {f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
                  for f in form.findall("{jabber:x:data}field")}
        if fields.get("FORM_TYPE") == ["http://jabber.org/network/serverinfo"]:
            return fields
    return {}


async def test_contact_info_from_config(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra=(
        '    modules_enabled = { "disco", "server_contact_info" }\n'
        '    contact_info = { admin = { "xmpp:joe@xmppd.test", "mailto:joe@xmppd.test" };'
        ' abuse = "mailto:abuse@xmppd.test" }\n'))
    try:
        await s.adduser("alice@xmppd.test")
        async with logged_in(s, "alice@xmppd.test", plugins=PLUGINS) as a:
            info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
            fields = serverinfo(info)
            assert fields["admin-addresses"] == ["xmpp:joe@xmppd.test", "mailto:joe@xmppd.test"]
            assert fields["abuse-addresses"] == ["mailto:abuse@xmppd.test"]
            assert "support-addresses" not in fields
            # slixmpp's XEP-0128 view sees the same form
            forms = info["disco_info"]["forms"]
            assert [dict(f["values"]) for f in forms] == [{
                "FORM_TYPE": ["http://jabber.org/network/serverinfo"],
                "admin-addresses": ["xmpp:joe@xmppd.test", "mailto:joe@xmppd.test"],
                "abuse-addresses": ["mailto:abuse@xmppd.test"]}]
    finally:
        await s.server.stop()


async def test_defaults_to_admins(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "disco", "server_contact_info" }\n')
    try:
        await s.adduser("alice@xmppd.test")
        async with logged_in(s, "alice@xmppd.test", plugins=PLUGINS) as a:
            fields = serverinfo(await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10))
            assert fields["admin-addresses"] == ["xmpp:admin@xmppd.test"]
    finally:
        await s.server.stop()

"""Private XML storage (XEP-0049) with slixmpp's xep_0049 plugin."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ElementBase

from .clients import logged_in
from .conftest import start_server

PLUGINS = ("xep_0030", "xep_0049")


@pytest.fixture
async def srv(tmp_path, certs):
    s = await start_server(tmp_path, certs, host_extra='    modules_enabled = { "private" }\n')
    try:
        await s.adduser("alice@xmppd.test")
        await s.adduser("bob@xmppd.test")
        yield s
    finally:
        await s.server.stop()


def el(xml: str) -> ET.Element:
    return ET.fromstring(xml)


class Prefs(ElementBase):
    name = "prefs"
    namespace = "urn:example:prefs"
    plugin_attrib = "prefs"
    interfaces = {"color"}
    sub_interfaces = interfaces


async def retrieve(c, tag: str):
    """A get for any element (the plugin's retrieve() wants a registered class)."""
    iq = c.make_iq_get()
    iq["private"].xml.append(ET.Element(tag))
    return await iq.send(timeout=10)


async def test_store_and_retrieve_per_namespace(srv):
    async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
        p = a.plugin["xep_0049"]
        p.register(Prefs)
        await p.store(el("<prefs xmlns='urn:example:prefs'><color>blue</color></prefs>"), timeout=10)
        await p.store([el("<notes xmlns='urn:example:notes'><n>one</n></notes>"),
                       el("<other xmlns='urn:example:other' a='1'>txt</other>")], timeout=10)
        got = await p.retrieve("prefs", timeout=10)
        assert got["private"]["prefs"]["color"] == "blue"
        got = await retrieve(a, "{urn:example:other}other")
        other = got["private"].xml.find("{urn:example:other}other")
        assert other.get("a") == "1" and other.text == "txt"
        # nothing stored: the empty element comes back
        got = await retrieve(a, "{urn:example:none}thing")
        empty = got["private"].xml.find("{urn:example:none}thing")
        assert empty is not None and len(empty) == 0
        # replacing, and an empty element deletes
        await p.store(el("<prefs xmlns='urn:example:prefs'><color>red</color></prefs>"), timeout=10)
        got = await retrieve(a, "{urn:example:prefs}prefs")
        assert got["private"].xml.find("{urn:example:prefs}prefs/{urn:example:prefs}color").text == "red"
        await p.store(el("<prefs xmlns='urn:example:prefs'/>"), timeout=10)
        got = await retrieve(a, "{urn:example:prefs}prefs")
        assert len(got["private"].xml.find("{urn:example:prefs}prefs")) == 0


async def test_others_cannot_read_and_reserved_namespaces(srv):
    async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", plugins=PLUGINS) as (a, b):
        await a.plugin["xep_0049"].store(el("<s xmlns='urn:example:secret'>x</s>"), timeout=10)
        iq = b.make_iq_get(ito="alice@xmppd.test")
        q = ET.SubElement(iq.xml, "{jabber:iq:private}query")
        ET.SubElement(q, "{urn:example:secret}s")
        with pytest.raises(IqError) as exc:
            await iq.send(timeout=10)
        assert exc.value.iq["error"]["condition"] == "forbidden"
        for bad in ("<x xmlns='jabber:client'/>", "<query xmlns='jabber:iq:private'/>"):
            with pytest.raises(IqError) as exc:
                await a.plugin["xep_0049"].store(el(bad), timeout=10)
            assert exc.value.iq["error"]["condition"] == "not-acceptable"
        # alice's data is still hers
        got = await retrieve(a, "{urn:example:secret}s")
        assert got["private"].xml.find("{urn:example:secret}s").text == "x"

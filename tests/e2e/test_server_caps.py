"""The server's own entity capabilities (XEP-0115 §6.3, as Prosody's mod_disco):
a verifiable ``<c/>`` in the stream features, and its node answered by disco#info."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from xmppd.xmpp.caps import compute_ver

from .clients import logged_in
from .rawclient import Raw

CAPS = "{http://jabber.org/protocol/caps}c"
STREAM = "http://etherx.jabber.org/streams"


def features(text: str) -> ET.Element:
    start = text.index("<stream:features")
    end = text.index("</stream:features>") + len("</stream:features>")
    return ET.fromstring(f"<w xmlns:stream='{STREAM}'>{text[start:end]}</w>")[0]


async def test_caps_in_stream_features_verify_against_disco(xmppd):
    raw = await Raw.connect(xmppd.port)
    try:
        await raw.open()
        await raw.starttls(xmppd.cafile)
        c = features(await raw.open()).find(CAPS)
    finally:
        raw.close()
    assert c is not None and c.get("hash") == "sha-1" and c.get("node") == "urn:xmppd"
    await xmppd.adduser("alice@xmppd.test")
    async with logged_in(xmppd, "alice@xmppd.test") as a:
        info = await a.plugin["xep_0030"].get_info("xmppd.test", timeout=10)
        query = info.xml.find("{http://jabber.org/protocol/disco#info}query")
        assert compute_ver(query) == c.get("ver")
        # the caps node is the host's disco#info
        node = f"urn:xmppd#{c.get('ver')}"
        by_node = await a.plugin["xep_0030"].get_info("xmppd.test", node=node, timeout=10)
        q = by_node.xml.find("{http://jabber.org/protocol/disco#info}query")
        assert q.get("node") == node and compute_ver(q) == c.get("ver")
        with pytest.raises(IqError) as err:
            await a.plugin["xep_0030"].get_info("xmppd.test", node="urn:xmppd#stale=", timeout=10)
        assert err.value.iq["error"]["condition"] == "item-not-found"

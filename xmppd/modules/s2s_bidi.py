"""Bidirectional server-to-server streams (XEP-0288), Prosody's ``s2s_bidi``.

Loaded on a host, it makes one TCP connection carry stanzas both ways between that
host and a peer that supports it, instead of one connection per direction:

* incoming streams offer ``<bidi xmlns='urn:xmpp:features:bidi'/>`` (after TLS);
  a peer that answers with ``<bidi xmlns='urn:xmpp:bidi'/>`` gets our stanzas for
  it on that stream once it has authenticated (SASL EXTERNAL: from the stream's
  'to'; dialback: the reverse of each domain pair it authenticated);
* outgoing streams whose peer offers the feature request it before authenticating
  and then accept the peer's stanzas for (peer, us) on the same stream.

The stream mechanics (an incoming stream used as a link, stanzas accepted on an
outgoing one) are the s2s protocol's; this module negotiates them, through the
events the streams fire. Components inherit it from the global
``modules_enabled``, as dialback.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import HANDLED, s2s_element_event
from xmppd.xmpp import ns

PROTOCOLS = ["XEP-0288"]
OPTIONS: list = []


def offer(stream):
    """The stream feature, on incoming streams before authentication."""
    if stream.direction != "in" or stream.bidi or stream.pairs:
        return None
    return ET.Element(f"{{{ns.BIDI_FEATURE}}}bidi")


def requested(arg):
    """``<bidi/>`` on an incoming stream: the peer wants our stanzas on it."""
    stream, _el = arg
    stream.enable_bidi()
    return HANDLED


def features(arg) -> None:
    """An outgoing stream whose peer offers bidi asks for it (no answer comes)."""
    stream, feats = arg
    if not stream.bidi and feats.find(f"{{{ns.BIDI_FEATURE}}}bidi") is not None:
        stream.bidi = True
        stream.send(ET.Element(f"{{{ns.BIDI}}}bidi"))


def setup(m) -> None:
    m.add_stream_feature(offer, stage="s2s")
    m.hook(s2s_element_event("in", ns.BIDI, "bidi"), requested)
    m.hook("s2s-out-features", features)

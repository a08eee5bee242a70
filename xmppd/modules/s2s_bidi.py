"""Bidirectional server-to-server streams (XEP-0288), Prosody's ``s2s_bidi``.

Loaded on a host, it makes one TCP connection carry stanzas both ways between that
host and a peer that supports it, instead of one connection per direction:

* incoming streams offer ``<bidi xmlns='urn:xmpp:features:bidi'/>`` (after TLS);
  a peer that answers with ``<bidi xmlns='urn:xmpp:bidi'/>`` gets our stanzas for
  it on that stream once it has authenticated (SASL EXTERNAL: from the stream's
  'to'; dialback: the reverse of each domain pair it authenticated);
* outgoing streams whose peer offers the feature request it before authenticating
  and then accept the peer's stanzas for (peer, us) on the same stream.

The stream mechanics live in ``protocol/s2s.py`` and the routing in ``core/s2s.py``;
this module switches them on for its host. Components inherit it from the global
``modules_enabled``, as dialback.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

PROTOCOLS = ["XEP-0288"]
OPTIONS: list = []

BIDI_FEATURE = "urn:xmpp:features:bidi"


def setup(m) -> None:
    def feature(session):
        if session.direction != "in" or session.bidi or session.pairs:
            return None  # offered before authentication only
        return ET.Element(f"{{{BIDI_FEATURE}}}bidi")
    m.add_stream_feature(feature, stage="s2s")

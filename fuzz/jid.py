#!/usr/bin/env python3
"""Fuzz JIDs (RFC 7622 on slixmpp): split, parse, bare, nameprep, nodeprep,
resourceprep. Expected: normalised parts, InvalidJID, or jid-malformed; a split
JID joins back into one that splits the same way."""
import atheris

with atheris.instrument_imports(include=["xmppd"]):
    from _common import run
    from xmppd.xmpp import jid
    from xmppd.xmpp.errors import StanzaError


def test_one(data: bytes) -> None:
    s = data.decode("utf-8", "replace")
    try:
        node, domain, resource = jid.split(s)
    except jid.InvalidJID:
        node = None
    if node is not None:
        again = jid.join(node, domain, resource)
        assert jid.split(again) == (node, domain, resource), (s, again)
        assert jid.bare(s) == jid.join(node, domain)
    try:
        jid.parse(s)
    except StanzaError as err:
        assert err.condition == "jid-malformed"
    for prep in (jid.nodeprep, jid.resourceprep, jid.nameprep):
        try:
            prep(s)
        except jid.InvalidJID:
            pass


if __name__ == "__main__":
    run(test_one, corpus="jid")

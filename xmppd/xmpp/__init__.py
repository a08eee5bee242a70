"""The protocol vocabulary: what XMPP says, with no I/O.

``jid`` (addresses), ``ns`` (every namespace), ``errors`` (the wire errors),
``stanza`` (builders and readers of stanzas on the routing path, plain
ElementTree), ``time`` (XEP-0082 stamps), and the payloads of the protocols the
modules speak, on slixmpp's stanza classes: ``forms`` (XEP-0004), ``rsm``
(XEP-0059), ``disco`` (XEP-0030), registered once in ``stanzas``.

The core, the protocols and the modules all import from here; nothing here
imports them.
"""

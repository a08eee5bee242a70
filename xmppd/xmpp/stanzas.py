"""The payload classes of the protocols the modules speak, registered once.

They are slixmpp's stanza classes (``ElementBase`` subclasses, from its XEP stanza
definitions), and a few of our own where slixmpp has none. This file is the one
table of them: which payload classes exist, by their XML tag (:data:`BY_TAG`), and
which sub-elements each parent knows (:data:`PLUGINS`, given to slixmpp's
``register_stanza_plugin`` once, at import).

A module wraps a payload it received (``view(el)`` or ``Cls(xml=el)``) and builds
one to send (``Cls()``, then ``.xml``). This happens in IQ handlers and other
paths off the routing hot path: message routing, presence fan-out and stream
management stay on plain ElementTree elements (a wrap costs about 2 µs, a
five-field form built this way about 130 µs: see docs/architecture.md).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from slixmpp.plugins.xep_0004.stanza import FieldOption, Form, FormField
from slixmpp.plugins.xep_0030.stanza import DiscoInfo, DiscoItems
from slixmpp.plugins.xep_0045 import stanza as muc
from slixmpp.plugins.xep_0054.stanza import VCardTemp
from slixmpp.plugins.xep_0059.stanza import Set
from slixmpp.plugins.xep_0060 import stanza as pubsub
from slixmpp.plugins.xep_0077.stanza import Register
from slixmpp.plugins.xep_0191.stanza import Block, BlockItem, BlockList, Unblock
from slixmpp.plugins.xep_0313 import stanza as mam
from slixmpp.stanza.roster import Roster, RosterItem
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

__all__ = ["ElementBase", "Form", "FormField", "FieldOption", "Set", "DiscoInfo", "DiscoItems",
           "Roster", "RosterItem", "VCardTemp", "Register", "BlockList", "Block", "Unblock",
           "BlockItem", "mam", "muc", "pubsub", "PLUGINS", "BY_TAG", "view"]

# (parent, child, iterable): what slixmpp's plugins register when a client loads
# them, done here once for the server (slixmpp's own plugin_init is never run).
PLUGINS: list[tuple[type, type, bool]] = [
    # XEP-0004 data forms
    (FormField, FieldOption, True),
    (Form, FormField, True),
    # XEP-0313 message archive: query form and result-set paging
    (mam.MAM, Form, False),
    (mam.MAM, Set, False),
    (mam.Fin, Set, False),
    (mam.Metadata, mam.Start, False),
    (mam.Metadata, mam.End, False),
    # XEP-0030 disco#items paging
    (DiscoItems, Set, False),
    # XEP-0191 blocking
    (BlockList, BlockItem, True),
    (Block, BlockItem, True),
    (Unblock, BlockItem, True),
    # XEP-0060 publish options (pubsub's own relations register at slixmpp's import)
    (pubsub.Pubsub, pubsub.PublishOptions, False),
    # XEP-0045: the admin and owner queries (their items and forms)
    (muc.MUCAdminQuery, muc.MUCAdminItem, True),
    (muc.MUCOwnerQuery, Form, False),
]

for _parent, _child, _iterable in PLUGINS:
    register_stanza_plugin(_parent, _child, iterable=_iterable)

# payload classes by the tag of the element they wrap
BY_TAG: dict[str, type] = {
    f"{{{cls.namespace}}}{cls.name}": cls for cls in (
        Form, Set, DiscoInfo, DiscoItems, Roster, VCardTemp, Register, BlockList, Block,
        Unblock, mam.MAM, mam.Fin, mam.Metadata, muc.MUCAdminQuery, muc.MUCOwnerQuery,
        pubsub.Pubsub,
    )
}


def view(el: ET.Element) -> ElementBase | None:
    """The payload class's view of ``el`` (same element, not a copy), or None when
    the table has no class for its tag."""
    cls = BY_TAG.get(el.tag)
    return cls(xml=el) if cls is not None else None

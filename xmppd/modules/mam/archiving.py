"""What is archived, and how: one-to-one messages of an account, both ways, one
item per message in the account's ``archive`` store (its key is the archive id).

* *incoming* (``message/bare``, ``message/full`` at ``NORMAL``, on the
  recipient's host, before carbons and delivery): for an existing account; the
  delivered message is stamped with ``<stanza-id by='user@host' id='key'/>``;
* *outgoing* (``pre-message/*``, on the sender's host); a message to one's own
  account is archived once, as incoming.

Either way a ``<stanza-id/>`` claiming to be by the account that came from
outside is removed first (archived or not). What may be archived is
:func:`archivable`; the stored copy has the ``dont_archive_namespaces`` payloads
removed (nothing left: not archived); then the preferences decide.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.jid import bare

from . import prefs, retention

if TYPE_CHECKING:
    from .service import MamService

STANZA_ID = f"{{{ns.SID}}}stanza-id"
HINT_STORE = f"{{{ns.HINTS}}}store"
HINTS_NO_STORE = (f"{{{ns.HINTS}}}no-store", f"{{{ns.HINTS}}}no-permanent-store")
# Payloads that keep a body-less message in the conversation history.
ARCHIVABLE_PAYLOADS = frozenset({
    ns.OMEMO_LEGACY, ns.OMEMO, ns.OX, ns.PGP_ENCRYPTED,
    ns.EME,                                   # (with an encrypted payload)
    ns.RECEIPTS, ns.MARKERS, ns.CORRECT, ns.RETRACT_0, ns.RETRACT, ns.FASTEN,
    ns.REACTIONS, ns.JINGLE_MESSAGE_0, ns.JINGLE_MESSAGE,
})


def archivable(stanza: ET.Element) -> bool:
    """A ``chat`` or ``normal`` message with a body, a conversation payload
    (:data:`ARCHIVABLE_PAYLOADS`) or the ``<store/>`` hint, and no ``<no-store/>``
    / ``<no-permanent-store/>`` hint unless ``<store/>``."""
    if (stanza.get("type") or "normal") not in ("chat", "normal"):
        return False
    hint_store = stanza.find(HINT_STORE) is not None
    if not hint_store and any(stanza.find(h) is not None for h in HINTS_NO_STORE):
        return False
    if hint_store or st.has_body(stanza):
        return True
    return any(st.namespace_of(child.tag) in ARCHIVABLE_PAYLOADS for child in stanza)


def strip_foreign_ids(stanza: ET.Element, user_jid: str) -> ET.Element:
    """``stanza`` without the stanza-ids that claim to come from ``user_jid``'s
    archive (a copy when there were any)."""
    if stanza.find(STANZA_ID) is None:
        return stanza
    return st.copy(stanza, drop=lambda c: c.tag == STANZA_ID and bare(c.get("by")) == user_jid)


def stored_copy(svc: "MamService", stanza: ET.Element) -> ET.Element | None:
    """What goes into the archive (in the client namespace, without the
    ``dont_archive_namespaces`` payloads); None when nothing is left."""
    stored = st.deep_client_ns(stanza)
    if svc.strip_ns:
        for c in [c for c in stored if st.namespace_of(c.tag) in svc.strip_ns]:
            stored.remove(c)
        if len(stored) == 0:
            return None
    return stored


async def store(svc: "MamService", user: str, stanza: ET.Element, contact: str | None) -> str | None:
    """Archive ``stanza`` for ``user`` if it is to be; its archive id, or None."""
    if not archivable(stanza):
        return None
    stored = stored_copy(svc, stanza)
    if stored is None or not await prefs.shall_store(svc, user, contact):
        return None
    now = time.time()
    key = await svc.archive.append(user, st.to_xml(stored), with_jid=contact, when=now)
    await retention.note(svc, user, now)
    return key


async def incoming(svc: "MamService", sev) -> None:
    """``message/bare`` and ``message/full``: archive for the recipient, and stamp
    the delivered message with its archive id."""
    user = sev.to_node
    if not user:
        return None
    host = svc.host
    user_jid = svc.jid_of(user)
    stanza = sev.stanza = strip_foreign_ids(sev.stanza, user_jid)
    t = stanza.get("type") or "normal"
    if t not in ("chat", "normal"):
        return None
    if sev.to_type == "full" and t != "chat" and host.get_session(user, sev.to_resource) is None:
        return None  # bounced by the message module: not part of any conversation
    if not host.sessions_of(user) and not await svc.accounts.exists(host.name, user):
        return None
    key = await store(svc, user, stanza, sev.from_bare or None)
    if key is not None:
        out = st.copy(stanza)
        ET.SubElement(out, STANZA_ID, {"by": user_jid, "id": key})
        sev.stanza = out
    return None


async def outgoing(svc: "MamService", sev) -> None:
    """``pre-message/*``: archive for the sender."""
    user = sev.origin.username
    user_jid = svc.jid_of(user)
    stanza = sev.stanza = strip_foreign_ids(sev.stanza, user_jid)
    if sev.to_bare == user_jid:
        return None  # to one's own account: archived once, as incoming
    target = sev.host
    if (target is not None and target.is_virtualhost and sev.to_node
            and not target.sessions_of(sev.to_node)
            and not await svc.accounts.exists(target.name, sev.to_node)):
        return None  # bounced with service-unavailable: not a conversation
    await store(svc, user, stanza, sev.to_bare)
    return None

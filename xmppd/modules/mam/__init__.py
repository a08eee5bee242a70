"""Message Archive Management (XEP-0313, ``urn:xmpp:mam:2`` and ``#extended``)
for accounts, with unique stanza ids (XEP-0359) and archive preferences (XEP-0441).

**What is archived** (:mod:`.archiving`). One-to-one messages of an account, both
ways, in the user's ``archive`` store (one item per message and user, its key the
stable archive id):

* *incoming*, on the recipient's host (``message/bare``, ``message/full``, at
  ``NORMAL``: before carbons and delivery) when addressed to an existing account;
  the delivered message gets ``<stanza-id xmlns='urn:xmpp:sid:0' by='user@host'
  id='…'/>``, and any stanza-id claiming to be ``by`` that account that came
  from outside is removed first (archived or not);
* *outgoing*, on the sender's host (``pre-message/*``); a message to one's own
  account is stored once, as incoming.

Archived: ``chat`` and ``normal`` messages with a body, or with a payload
clients keep in the conversation (encrypted OMEMO/OpenPGP payloads, receipts,
chat markers, corrections, retractions, reactions, jingle message initiation),
or with the XEP-0334 ``<store/>`` hint. Not archived: ``groupchat``,
``headline``, ``error``, messages with ``<no-store/>`` or
``<no-permanent-store/>`` (unless ``<store/>``), chat-state-only messages. Chat
states (``dont_archive_namespaces``) are stripped from the stored copy.
Preferences (:mod:`.prefs`) decide per contact (``always``/``never`` lists, then
the default: ``always``, ``never`` or ``roster``).

**Queries** (:mod:`.query`; IQ set ``<query xmlns='urn:xmpp:mam:2'/>`` to one's
own bare JID): form fields ``with`` (bare JID), ``start``, ``end``, ``before-id``,
``after-id``, ``ids``; RSM ``max``/``after``/``before``/``index``;
``<flip-page/>``. Each hit is a
``<message><result queryid id><forwarded><delay/><message/></forwarded></result>``
sent to the querying resource, then the IQ result ``<fin complete>`` with
``<set><first/><last/><count/></set>``. ``complete='true'`` when the page reaches the
end of the results in the paging direction (the start for ``<before/>`` paging).
Pages are at most ``max_archive_query_results`` items. An unknown id gives
``item-not-found``. ``<metadata/>`` (get) gives the first and last items; an IQ
get of ``<query/>`` gives the form. Another account's archive:
``service-unavailable``.

**Retention** (:mod:`.retention`). ``archive_expires_after`` (Prosody syntax:
``"1w"``, ``"3d"``, ``"2m"``, ``"1y"``, a number of seconds, or ``"never"``); every
``archive_cleanup_interval`` seconds the items older than that are deleted for
the users that archived something on an expired day.

The module's state (stores, settings, caches) is one :class:`.service.MamService`
per host, which every handler receives and which the module provides
(``cleanup(now=None)``).
"""
from __future__ import annotations

from functools import partial

from xmppd.moduleapi import NORMAL, InlineFeature, ModuleAPI, Option, stanza_event
from xmppd.xmpp import ns

from . import archiving, prefs, query, retention
from .service import MamService

PROTOCOLS = ["XEP-0313", "XEP-0359", "XEP-0441", "XEP-0059", "XEP-0297"]

OPTIONS = [
    Option("archive_expires_after", "any", "1w", "both",
           "How long archived messages are kept: \"1d\", \"2w\", \"3m\" (31 days), \"1y\", "
           "a number of seconds, or \"never\".", limit=True),
    Option("archive_cleanup_interval", "number", 4 * 60 * 60, "both",
           "Seconds between two runs of the expiry of old archived messages.", min=1),
    Option("max_archive_query_results", "integer", 50, "both",
           "Most messages returned in one page of an archive query.", min=1, limit=True),
    Option("default_archive_policy", "any", True, "both",
           "Archive by default: true (always), false (never) or \"roster\" (only "
           "contacts in the roster). Users change it with their MAM preferences."),
    Option("dont_archive_namespaces", "list", [ns.CHATSTATES], "both",
           "Payload namespaces removed from archived copies (a message left with "
           "nothing else is not archived)."),
    Option("mam_include_total", "boolean", True, "both",
           "Include the total number of matching messages (RSM count) in query results."),
]

OWN = "service-unavailable"   # another account's archive, or not over a client session


def setup(m: ModuleAPI) -> None:
    svc = MamService(m)

    for feature in (ns.MAM, ns.MAM_EXTENDED, ns.SID):
        m.add_feature(feature, to="account")

    for to_type in ("bare", "full"):
        m.hook(stanza_event("message", to_type), partial(archiving.incoming, svc), NORMAL)
        m.hook(stanza_event("message", to_type, pre=True), partial(archiving.outgoing, svc), NORMAL)

    def iq(iq_type: str, name: str, func) -> None:
        m.hook_iq(iq_type, ns.MAM, name, partial(func, svc), to=("bare",), own_account=OWN)
    iq("get", "prefs", prefs.prefs_get)
    iq("set", "prefs", prefs.prefs_set)
    iq("get", "query", query.form_get)
    iq("set", "query", query.query_set)
    iq("get", "metadata", query.metadata)
    # a Bind 2 binding (XEP-0386) tells the client where its archive stands
    m.add_item("inline-feature", InlineFeature(ns.MAM, "bound", partial(query.bound_metadata, svc)))

    if svc.expires is not None:
        m.add_timer(retention.FIRST_RUN, svc.cleanup)  # soon after start, then periodically
        m.add_timer(m.get_option("archive_cleanup_interval"), svc.cleanup, repeat=True)
    m.provide(svc)

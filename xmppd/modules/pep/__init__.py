"""Personal Eventing Protocol (XEP-0163): every account is a PubSub service.

* publish to the own bare JID auto-creates the node; ``publish-options``
  (XEP-0223) set a new node's configuration, and on an existing node are
  preconditions (``conflict`` + ``precondition-not-met`` when they differ);
* access models ``presence`` (default), ``open``, ``roster``, ``whitelist``;
* notifications (``headline`` messages from the bare JID) go to the owner's
  available resources and to the entities whose presence the account received
  and whose entity capabilities (XEP-0115) include ``NODE+notify``, if the
  node's access model lets them see it; also to explicit subscribers;
* the last item of each node is sent to such an entity when it becomes
  available (and to the owner's resources when they log in);
* conversions: XEP-0084 avatars ↔ vCard photo (when the vcard module is loaded)
  and the XEP-0153 hash in presence (XEP-0398); vcard-temp ↔ vCard4 (XEP-0292)
  and nickname (XEP-0172), as Prosody's ``vcard_legacy``; XEP-0402 bookmarks ↔
  private-storage bookmarks.

The package: the sans-I/O PubSub core is the server's one
(:mod:`xmppd.xmpp.pubsub`, shared with the ``pubsub`` component; one service per
account), :mod:`.service` (the host's services, their stores, the operations
that notify; what this module provides), :mod:`.iq` (the IQs), :mod:`.notify`
(notifications, presence and caps), :mod:`.caps` (XEP-0115),
:mod:`.compat` (the conversions).
"""
from __future__ import annotations

from functools import partial

from xmppd.moduleapi import EARLY, Option, iq_event, stanza_event
from xmppd.xmpp import ns
from xmppd.xmpp.vcard4 import VCARD4

from . import iq
from .service import PEP

PROTOCOLS = ["XEP-0163", "XEP-0060", "XEP-0223", "XEP-0115", "XEP-0084", "XEP-0153",
             "XEP-0398", "XEP-0172", "XEP-0292", "XEP-0402", "XEP-0048"]
OPTIONS = [
    Option("pep_max_items", "integer", 256, "both",
           "Most items one PEP node keeps: the ceiling of pubsub#max_items, and what 'max' means.",
           min=1, limit=True),
    Option("pep_default_max_items", "integer", 1, "both",
           "pubsub#max_items of a node created without one.", min=1),
    Option("pep_vcard_avatar", "boolean", True, "both",
           "XEP-0398: mirror PEP avatars into the vCard photo and back, and put the avatar "
           "hash (XEP-0153) in the account's presence."),
    Option("pep_vcard4_conversion", "boolean", True, "both",
           "As Prosody's vcard_legacy: a vcard-temp the account sets is published as its "
           "vCard4 (urn:xmpp:vcard4, XEP-0292) and nickname (XEP-0172), a vCard4 or nickname "
           "it publishes goes into its vcard-temp, and vcard-temp readers of an account "
           "without one see its vCard4 and avatar."),
    Option("upgrade_legacy_vcards", "boolean", True, "both",
           "When a client logs in, a stored vcard-temp whose account has no vCard4 (or no "
           "avatar) in PEP yet is published there (as Prosody's vcard_legacy; the vcard-temp "
           "stays stored)."),
    Option("pep_bookmarks_compat", "boolean", True, "both",
           "XEP-0402 #compat: private-storage (XEP-0048) bookmarks read and write the "
           "PEP bookmarks (urn:xmpp:bookmarks:1)."),
    Option("pep_service_cache_size", "integer", 1000, "both",
           "Accounts whose PEP nodes are kept in memory (least recently used are dropped).",
           min=1),
]

VCARD_BEFORE_SET = "vcard-before-set"   # the item kind the vcard module calls before a set
VCARD_FALLBACK = "vcard-fallback"       # ... and asks when it has no vCard stored

FEATURES = ("access-open", "access-presence", "access-roster", "access-whitelist",
            "auto-create", "auto-subscribe", "config-node", "create-and-configure",
            "create-nodes", "delete-items", "delete-nodes", "filtered-notifications",
            "item-ids", "last-published", "manage-affiliations", "manage-subscriptions",
            "modify-affiliations", "multi-items", "outcast-affiliation", "persistent-items",
            "presence-notifications", "presence-subscribe", "publish", "publish-options",
            "purge-nodes", "retract-items", "retrieve-affiliations", "retrieve-default",
            "retrieve-default-sub", "retrieve-items", "retrieve-subscriptions", "subscribe",
            "subscription-options")


def setup(m) -> None:
    pep = PEP(m, vcards=m.depends("vcard", soft=True), private=m.depends("private", soft=True))
    m.provide(pep)
    m.on_unload(pep.close)

    m.add_identity("pubsub", "pep", to="account")
    for var in (ns.PUBSUB, *(f"{ns.PUBSUB}#{f}" for f in FEATURES)):
        m.add_feature(var, to="account")
        m.add_feature(var)

    m.hook_iq("set", ns.PUBSUB, "pubsub", partial(iq.pubsub_set, pep), to=("bare",))
    m.hook_iq("get", ns.PUBSUB, "pubsub", partial(iq.pubsub_get, pep), to=("bare",))
    m.hook_iq("set", ns.PUBSUB_OWNER, "pubsub", partial(iq.owner_set, pep), to=("bare",))
    m.hook_iq("get", ns.PUBSUB_OWNER, "pubsub", partial(iq.owner_get, pep), to=("bare",))
    m.hook("disco-account-items", partial(iq.account_items, pep))
    m.hook(iq_event("get", "bare", ns.DISCO_INFO, "query"), partial(iq.node_info, pep), EARLY)

    # conversions (compat): features, the vCard bridge, the avatar hash in the
    # account's presence (before notify reads it), private-storage bookmarks
    compat = pep.compat
    if compat.avatars_on():
        m.add_feature(ns.VCARD_CONVERSION, to="account")
    if compat.profiles_on():
        m.add_feature(VCARD4, to="account")
        m.hook_iq("get", VCARD4, "vcard", compat.vcard4_get, to=("bare",))
        m.hook_iq("set", VCARD4, "vcard", compat.vcard4_set, to=("bare",), own_account=True)
    if compat.bookmarks_on():
        m.add_feature(f"{ns.BOOKMARKS}#compat", to="account")
    m.add_item(VCARD_BEFORE_SET, compat.vcard_set)
    m.add_item(VCARD_FALLBACK, compat.vcard_from_pep)
    m.hook("resource-bind", compat.on_bind)
    m.hook(stanza_event("presence", "broadcast"), compat.on_own_presence, EARLY)
    for to_type in ("bare", "full"):
        m.hook(stanza_event("presence", to_type, pre=True), compat.on_directed_presence, EARLY)
    m.hook(iq_event("get", "bare", ns.PRIVATE, "query"), compat.private_get, EARLY)
    m.hook(iq_event("set", "bare", ns.PRIVATE, "query"), compat.private_set, EARLY)

    # notifications: who is available, with which caps
    notify = pep.notify
    m.hook(stanza_event("presence", "broadcast"), notify.on_own_presence, EARLY)
    for to_type in ("bare", "full"):
        m.hook(stanza_event("presence", to_type), notify.on_inbound_presence, EARLY)
    m.hook("resource-unbind", notify.on_unbound)
    m.hook(stanza_event("iq", "host"), notify.on_iq_reply, EARLY)
    m.hook("user-deleted", pep.forget_user)

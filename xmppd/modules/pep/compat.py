"""Conversions between PEP data and the older protocols clients still use.

* **Avatars (XEP-0398)**: a PEP avatar (XEP-0084 ``urn:xmpp:avatar:metadata``
  + ``urn:xmpp:avatar:data``) is written into the vCard-temp ``PHOTO`` (through
  what the vcard module provides, when it is loaded), and a vCard the account
  sets with a ``PHOTO`` publishes the PEP avatar (the vcard module calls us,
  an item of its kind ``vcard-before-set``); the avatar's SHA-1 goes into the
  account's outgoing presence as ``<x xmlns='vcard-temp:x:update'><photo/></x>``
  (XEP-0153).
* **Profiles (vCard4, XEP-0292; nickname, XEP-0172)**, as Prosody's
  ``vcard_legacy`` converts them: a vCard the account sets is published as the
  ``urn:xmpp:vcard4`` node (the mapped fields of the vCard4 there replaced, the
  others kept; created ``open``) and its ``NICKNAME`` as the nickname; a vCard4
  or a nickname the account publishes is merged into its stored vCard; an
  account with no stored vCard is shown to vcard-temp readers from its vCard4
  (else its nickname) and avatar, as far as their access to those nodes goes.
  The field mapping is :mod:`xmppd.xmpp.vcard4`.
* **Bookmarks (XEP-0402 ``#compat``)**: a private-storage (XEP-0049) get of
  ``storage:bookmarks`` answers from the ``urn:xmpp:bookmarks:1`` node
  (when it exists, or when the private module is not loaded), and a set
  replaces that node's items.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp import vcard4 as v4
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.stanza import from_xml, to_xml

from xmppd.xmpp.pubsub import PubSubError, Requester

if TYPE_CHECKING:
    from .service import PEP

BOOKMARKS2_OPTIONS = {
    "pubsub#access_model": "whitelist",
    "pubsub#max_items": "max",
    "pubsub#persist_items": True,
    "pubsub#send_last_published_item": "never",
}


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true")


def legacy_to_bookmarks2(conf: ET.Element) -> tuple[str, ET.Element] | None:
    """A XEP-0048 ``<conference/>`` → (room JID, XEP-0402 ``<conference/>``)."""
    jid = conf.get("jid")
    if not jid:
        return None
    out = ET.Element(ns.q(ns.BOOKMARKS, "conference"))
    if conf.get("name"):
        out.set("name", conf.get("name"))
    out.set("autojoin", "true" if _truthy(conf.get("autojoin")) else "false")
    for tag in ("nick", "password"):
        el = conf.find(ns.q(ns.BOOKMARKS_LEGACY, tag))
        if el is not None and (el.text or "").strip():
            ET.SubElement(out, ns.q(ns.BOOKMARKS, tag)).text = el.text.strip()
    return jid, out


def bookmarks2_to_legacy(jid: str, conf: ET.Element) -> ET.Element:
    out = ET.Element(ns.q(ns.BOOKMARKS_LEGACY, "conference"), {"jid": jid})
    if conf.get("name"):
        out.set("name", conf.get("name"))
    out.set("autojoin", "true" if _truthy(conf.get("autojoin")) else "false")
    for tag in ("nick", "password"):
        el = conf.find(ns.q(ns.BOOKMARKS, tag))
        if el is not None and el.text:
            ET.SubElement(out, ns.q(ns.BOOKMARKS_LEGACY, tag)).text = el.text
    return out


def avatar_info(metadata_xml: str) -> tuple[str, str] | None:
    """(sha1 id, mime type) of the first ``<info/>`` of a metadata item; ("", "") if empty."""
    try:
        meta = from_xml(metadata_xml)
    except ET.ParseError:
        return None
    infos = meta.findall(ns.q(ns.AVATAR_METADATA, "info"))
    if not infos:
        return "", ""
    # the one without a url is the one stored in the data node
    info = next((i for i in infos if not i.get("url")), infos[0])
    return info.get("id") or "", info.get("type") or "image/png"


def vcard_photo(vcard: ET.Element) -> tuple[str, bytes] | None:
    """(mime type, bytes) of a vCard's ``PHOTO``; None without a usable one."""
    photo = vcard.find(ns.q(ns.VCARD, "PHOTO"))
    if photo is None:
        return None
    binval = photo.find(ns.q(ns.VCARD, "BINVAL"))
    if binval is None or not (binval.text or "").strip():
        return None
    try:
        data = base64.b64decode("".join(binval.text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    typ = photo.find(ns.q(ns.VCARD, "TYPE"))
    return ((typ.text or "").strip() if typ is not None and typ.text else "image/png"), data


def legacy_request(sev) -> ET.Element | None:
    """The ``<storage xmlns='storage:bookmarks'/>`` of a private-storage IQ that
    holds nothing else."""
    kids = list(sev.payload) if sev.payload is not None else []
    if len(kids) == 1 and kids[0].tag == ns.q(ns.BOOKMARKS_LEGACY, "storage"):
        return kids[0]
    return None


class Compat:
    """The conversions of one host's PEP service. ``vcards`` and ``private`` are
    soft dependencies on those modules (``get()``: the vcard module's vCards)."""

    def __init__(self, pep: "PEP", *, vcards=None, private=None):
        self.pep = pep
        self.m = pep.m
        self.host = pep.host
        self.vcards_dep = vcards
        self.private_dep = private
        self.hashes: dict[str, str | None] = {}    # user -> avatar sha1 ("" = none)

    def avatars_on(self) -> bool:
        return bool(self.m.get_option("pep_vcard_avatar"))

    def profiles_on(self) -> bool:
        return bool(self.m.get_option("pep_vcard4_conversion"))

    def bookmarks_on(self) -> bool:
        return bool(self.m.get_option("pep_bookmarks_compat"))

    def vcards(self):
        """The vcard module's vCards, None while it is not loaded."""
        return self.vcards_dep.get() if self.vcards_dep is not None else None

    def owner(self, user: str) -> Requester:
        return Requester(self.pep.jid(user), is_owner=True, subscription="both")

    def own(self, sev) -> bool:
        """The IQ comes from the account it is addressed to."""
        return sev.from_bare == self.pep.jid(sev.to_node)

    # -- events from the PEP service ----------------------------------------
    async def published(self, user: str, node, item, origin: str) -> None:
        vcards = self.vcards()
        if node.name == ns.AVATAR_METADATA:
            self.hashes.pop(user, None)
            if origin != "vcard" and self.avatars_on() and vcards is not None:
                await self.metadata_to_vcard(vcards, user, item.xml)
        elif origin != "vcard" and node.name in (v4.NODE, ns.NICK) and item.xml \
                and self.profiles_on() and vcards is not None:
            try:
                payload = from_xml(item.xml)
            except ET.ParseError:
                return
            if node.name == v4.NODE:
                await self.vcard4_to_vcard(vcards, user, payload)
            else:
                await self.nick_to_vcard(vcards, user, payload)

    async def retracted(self, user: str, node, item_id: str) -> None:
        if node.name == ns.AVATAR_METADATA:
            self.hashes.pop(user, None)

    async def deleted(self, user: str, node) -> None:
        if node.name == ns.AVATAR_METADATA:
            self.hashes.pop(user, None)

    # -- avatars ---------------------------------------------------------------
    async def avatar_hash(self, user: str) -> str | None:
        """The account's avatar SHA-1 (hex), "" for "no avatar", None if unknown."""
        if user in self.hashes:
            return self.hashes[user]
        h: str | None = None
        svc = await self.pep.service(user)
        meta = svc.nodes.get(ns.AVATAR_METADATA)
        last = meta.last_item() if meta is not None else None
        vcards = self.vcards()
        if last is not None:
            info = avatar_info(last.xml)
            h = info[0] if info else None
        elif vcards is not None:
            vcard = await vcards.get(user)
            if vcard is not None:
                photo = vcard_photo(vcard)
                h = hashlib.sha1(photo[1]).hexdigest() if photo else ""
        self.hashes[user] = h
        return h

    async def outgoing_presence(self, user: str, stanza: ET.Element) -> None:
        """Put the avatar hash (XEP-0153) in a presence the account sends."""
        if not self.avatars_on():
            return
        h = await self.avatar_hash(user)
        if h is None:
            return
        for old in stanza.findall(ns.q(ns.VCARD_UPDATE, "x")):
            stanza.remove(old)
        x = ET.SubElement(stanza, ns.q(ns.VCARD_UPDATE, "x"))
        photo = ET.SubElement(x, ns.q(ns.VCARD_UPDATE, "photo"))
        if h:
            photo.text = h

    async def metadata_to_vcard(self, vcards, user: str, metadata_xml: str) -> None:
        """A published avatar becomes the vCard's ``PHOTO`` (none: no ``PHOTO``)."""
        info = avatar_info(metadata_xml)
        if info is None:
            return
        h, typ = info
        vcard = await self.current_vcard(vcards, user)
        if vcard is None:
            vcard = ET.Element(ns.q(ns.VCARD, "vCard"))
        for old in vcard.findall(ns.q(ns.VCARD, "PHOTO")):
            vcard.remove(old)
        if h:
            svc = await self.pep.service(user)
            data_node = svc.nodes.get(ns.AVATAR_DATA)
            item = data_node.items.get(h) if data_node is not None else None
            if item is None or not item.xml:
                return     # data not (yet) published here: leave the vCard alone
            b64 = "".join((from_xml(item.xml).text or "").split())
            photo = ET.SubElement(vcard, ns.q(ns.VCARD, "PHOTO"))
            ET.SubElement(photo, ns.q(ns.VCARD, "TYPE")).text = typ
            ET.SubElement(photo, ns.q(ns.VCARD, "BINVAL")).text = b64
        if len(vcard) == 0:
            await vcards.delete(user)
        else:
            await vcards.set(user, vcard)

    async def vcard_set(self, user: str, vcard: ET.Element) -> None:
        """The account sets its vCard (the vcard module calls this before storing
        it): its ``PHOTO`` becomes the PEP avatar, the rest its vCard4 and nickname
        (in that order, as Prosody's ``vcard_legacy``)."""
        if self.avatars_on():
            await self.photo_to_avatar(user, vcard)
        if self.profiles_on():
            await self.vcard_to_pep(user, vcard)

    async def photo_to_avatar(self, user: str, vcard: ET.Element) -> None:
        photo = vcard_photo(vcard)
        if photo is None:
            self.hashes.pop(user, None)
            return
        typ, data = photo
        h = hashlib.sha1(data).hexdigest()
        svc = await self.pep.service(user)
        meta = svc.nodes.get(ns.AVATAR_METADATA)
        last = meta.last_item() if meta is not None else None
        if last is not None and (avatar_info(last.xml) or ("",))[0] == h:
            self.hashes[user] = h
            return      # PEP has that avatar already
        owner = self.owner(user)
        d = ET.Element(ns.q(ns.AVATAR_DATA, "data"))
        d.text = base64.b64encode(data).decode("ascii")
        meta = ET.Element(ns.q(ns.AVATAR_METADATA, "metadata"))
        ET.SubElement(meta, ns.q(ns.AVATAR_METADATA, "info"),
                      {"id": h, "bytes": str(len(data)), "type": typ})
        try:
            await self.pep.publish(user, owner, ns.AVATAR_DATA, h, d, origin="vcard")
            await self.pep.publish(user, owner, ns.AVATAR_METADATA, h, meta, origin="vcard")
        except PubSubError as err:
            self.m.log.info("vCard photo of %s not published to PEP: %s", user, err)
        self.hashes[user] = h

    # -- profiles (vCard4, nickname) --------------------------------------------
    async def last_payload(self, user: str, node_name: str,
                           req: Requester | None = None) -> ET.Element | None:
        """The payload of the last item of one of ``user``'s nodes, if ``req`` (default
        the owner) may see it."""
        svc = await self.pep.service(user)
        node = svc.nodes.get(node_name)
        last = node.last_item() if node is not None else None
        if last is None or not last.xml or not svc.may_access(node, req or self.owner(user)):
            return None
        try:
            return from_xml(last.xml)
        except ET.ParseError:
            return None

    async def publish_derived(self, user: str, node_name: str, item_id: str | None,
                              payload: ET.Element, options: dict | None = None) -> None:
        """Publish what a conversion made (``origin`` "vcard": not converted back),
        unless the node's last item is that already."""
        old = await self.last_payload(user, node_name)
        if old is not None and to_xml(old) == to_xml(payload):
            return
        svc = await self.pep.service(user)
        try:
            await self.pep.publish(user, self.owner(user), node_name, item_id, payload,
                                   options if node_name not in svc.nodes else None,
                                   origin="vcard")
        except PubSubError as err:
            self.m.log.info("%s of %s not published to PEP: %s", node_name, user, err)

    async def vcard_to_pep(self, user: str, vcard: ET.Element) -> None:
        """A vcard-temp the account sets → its vCard4 node and nickname."""
        card = v4.merge_temp_into_vcard4(await self.last_payload(user, v4.NODE), vcard)
        await self.publish_derived(user, v4.NODE, "current", card,
                                   {"pubsub#access_model": "open"})
        nick = v4.nickname(vcard)
        if nick:
            el = ET.Element(ns.q(ns.NICK, "nick"))
            el.text = nick
            await self.publish_derived(user, ns.NICK, "current", el)

    async def on_bind(self, session) -> None:
        """A client logs in: a vCard stored before the conversions existed (or while
        they were off) gets its vCard4, nickname and avatar in PEP, unless PEP has
        them already (Prosody's ``upgrade_legacy_vcards``; the vCard stays stored
        here, it is the vcard-temp answer)."""
        user = session.username
        vcards = self.vcards()
        if not user or vcards is None or not self.m.get_option("upgrade_legacy_vcards"):
            return
        svc = await self.pep.service(user)
        want_profile = self.profiles_on() and v4.NODE not in svc.nodes
        want_avatar = self.avatars_on() and ns.AVATAR_METADATA not in svc.nodes \
            and ns.AVATAR_DATA not in svc.nodes
        if not (want_profile or want_avatar):
            return
        vcard = await vcards.get(user)
        if vcard is None:
            return
        if want_avatar and vcard_photo(vcard) is not None:
            await self.photo_to_avatar(user, vcard)
        if want_profile and len(vcard):
            await self.vcard_to_pep(user, vcard)

    async def current_vcard(self, vcards, user: str) -> ET.Element | None:
        """The account's vcard-temp: the stored one, else the one built from PEP."""
        vcard = await vcards.get(user)
        return vcard if vcard is not None else await self.vcard_from_pep(user, None)

    async def vcard4_to_vcard(self, vcards, user: str, card: ET.Element) -> None:
        """A vCard4 the account publishes → its stored vCard (and nickname)."""
        if card.tag != ns.q(v4.VCARD4, "vcard"):
            return
        stored = await vcards.get(user)
        old = stored if stored is not None else await self.vcard_from_pep(user, None)
        new = v4.merge_vcard4_into_temp(old, card)
        if stored is None or to_xml(stored) != to_xml(new):
            await vcards.set(user, new)
        nick = v4.nickname(new)
        if nick:
            el = ET.Element(ns.q(ns.NICK, "nick"))
            el.text = nick
            await self.publish_derived(user, ns.NICK, "current", el)

    async def nick_to_vcard(self, vcards, user: str, payload: ET.Element) -> None:
        """A nickname the account publishes → the ``NICKNAME`` of its vCard (and vCard4)."""
        nick = (payload.text or "").strip() if payload.tag == ns.q(ns.NICK, "nick") else ""
        if not nick:
            return
        stored = await vcards.get(user)
        old = stored if stored is not None else await self.vcard_from_pep(user, None)
        if stored is not None and v4.nickname(stored) == nick:
            return
        new = v4.with_nickname(old, nick)
        await vcards.set(user, new)
        card = v4.merge_temp_into_vcard4(await self.last_payload(user, v4.NODE), new)
        await self.publish_derived(user, v4.NODE, "current", card,
                                   {"pubsub#access_model": "open"})

    async def vcard_from_pep(self, user: str, jid: str | None) -> ET.Element | None:
        """A vcard-temp from the account's vCard4 (else nickname) and avatar, as
        ``jid`` (None: the account) may see them; None when there is none of them
        (the vcard module's fallback when no vCard is stored)."""
        if not self.profiles_on() and not self.avatars_on():
            return None
        if not await self.pep.account_exists(user):
            return None
        req = await self.pep.requester(user, jid) if jid else self.owner(user)
        out = ET.Element(ns.q(ns.VCARD, "vCard"))
        found = False
        if self.profiles_on():
            card = await self.last_payload(user, v4.NODE, req)
            if card is not None and card.tag == ns.q(v4.VCARD4, "vcard"):
                out = v4.vcard4_to_temp(card)
                found = True
            else:
                nick = await self.last_payload(user, ns.NICK, req)
                if nick is not None and (nick.text or "").strip():
                    ET.SubElement(out, ns.q(ns.VCARD, "NICKNAME")).text = nick.text.strip()
                    found = True
        if self.avatars_on():
            meta = await self.last_payload(user, ns.AVATAR_METADATA, req)
            infos = meta.findall(ns.q(ns.AVATAR_METADATA, "info")) if meta is not None else []
            info = next((i for i in infos if not i.get("url")), infos[0] if infos else None)
            if info is not None:
                photo = ET.SubElement(out, ns.q(ns.VCARD, "PHOTO"))
                if info.get("type"):
                    ET.SubElement(photo, ns.q(ns.VCARD, "TYPE")).text = info.get("type")
                if info.get("url"):
                    ET.SubElement(photo, ns.q(ns.VCARD, "EXTVAL")).text = info.get("url")
                else:
                    svc = await self.pep.service(user)
                    data_node = svc.nodes.get(ns.AVATAR_DATA)
                    item = data_node.items.get(info.get("id") or "") \
                        if data_node is not None and svc.may_access(data_node, req) else None
                    if item is not None and item.xml:
                        ET.SubElement(photo, ns.q(ns.VCARD, "BINVAL")).text = \
                            "".join((from_xml(item.xml).text or "").split())
                found = True
        return out if found else None

    # -- the XEP-0292 IQs (Prosody's mod_vcard4) ---------------------------------
    async def vcard4_get(self, event):
        """``<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>`` get: the last item of the
        account's vCard4 node, as the requester may see it."""
        if not await self.pep.account_exists(event.user):
            raise StanzaError("item-not-found")
        svc = await self.pep.service(event.user)
        node = svc.nodes.get(v4.NODE)
        last = node.last_item() if node is not None else None
        if last is None or not last.xml:
            raise StanzaError("item-not-found")
        req = await self.pep.requester(event.user, event.from_bare) if event.from_bare \
            else self.owner(event.user)
        try:
            svc.check_access(node, req)
        except PubSubError:
            raise StanzaError("forbidden") from None
        return from_xml(last.xml)

    async def vcard4_set(self, event):
        """Set: the account publishes its vCard4 node (converted to vcard-temp as any
        publish is)."""
        card = event.payload
        try:
            await self.pep.publish(event.user, self.owner(event.user), v4.NODE, "current", card,
                                   {"pubsub#access_model": "open"}
                                   if v4.NODE not in (await self.pep.service(event.user)).nodes
                                   else None)
        except PubSubError as err:
            raise StanzaError(err.condition, err.text) from None
        return None

    async def on_own_presence(self, sev):
        """A presence broadcast by one of the host's clients: the avatar hash."""
        origin = sev.origin
        if getattr(origin, "kind", None) == "c2s" and origin.full_jid is not None \
                and sev.stanza.get("type") is None:
            await self.outgoing_presence(origin.username, sev.stanza)
        return None

    async def on_directed_presence(self, sev):
        """A directed presence from one of our clients carries the hash too."""
        origin = sev.origin
        if getattr(origin, "kind", None) == "c2s" and sev.stanza.get("type") is None \
                and origin.username:
            await self.outgoing_presence(origin.username, sev.stanza)
        return None

    # -- bookmarks -------------------------------------------------------------
    async def private_get(self, sev):
        """A legacy bookmarks get, answered from the bookmarks 2 node."""
        if not self.bookmarks_on() or legacy_request(sev) is None:
            return None
        if not self.own(sev):
            return None      # the private module refuses it
        svc = await self.pep.service(sev.to_node)
        node = svc.nodes.get(ns.BOOKMARKS)
        if node is None and self.private_dep is not None and self.private_dep.loaded:
            return None      # nothing converted yet: what private storage holds
        storage = ET.Element(ns.q(ns.BOOKMARKS_LEGACY, "storage"))
        for item in (node.items.values() if node is not None else ()):
            if item.xml:
                storage.append(bookmarks2_to_legacy(item.id, from_xml(item.xml)))
        q = ET.Element(ns.q(ns.PRIVATE, "query"))
        q.append(storage)
        await self.m.send(st.iq_result(sev.stanza, q))
        return HANDLED

    async def private_set(self, sev):
        """A legacy bookmarks set replaces the bookmarks 2 node's items."""
        storage = legacy_request(sev) if self.bookmarks_on() else None
        if storage is None or not self.own(sev):
            return None
        user = sev.to_node
        owner = self.owner(user)
        svc = await self.pep.service(user)
        node = svc.nodes.get(ns.BOOKMARKS)
        wanted: dict[str, ET.Element] = {}
        for conf in storage.findall(ns.q(ns.BOOKMARKS_LEGACY, "conference")):
            got = legacy_to_bookmarks2(conf)
            if got:
                jid, el = got
                old = node.items.get(jid) if node is not None else None
                if old is not None and old.xml:
                    ext = from_xml(old.xml).find(ns.q(ns.BOOKMARKS, "extensions"))
                    if ext is not None:
                        el.append(ext)      # keep what only bookmarks 2 clients know
                wanted[jid] = el
        try:
            for jid, el in wanted.items():
                old = node.items.get(jid) if node is not None else None
                if old is not None and old.xml == to_xml(el):
                    continue
                await self.pep.publish(user, owner, ns.BOOKMARKS, jid, el,
                                       None if node is not None else dict(BOOKMARKS2_OPTIONS),
                                       origin="compat")
                node = svc.nodes.get(ns.BOOKMARKS)
            for jid in [i for i in (node.items if node is not None else ()) if i not in wanted]:
                await self.pep.retract(user, owner, ns.BOOKMARKS, jid, True)
        except PubSubError as err:
            raise StanzaError("internal-server-error", f"bookmarks conversion failed: {err}") from None
        await self.m.send(st.iq_result(sev.stanza))
        return HANDLED

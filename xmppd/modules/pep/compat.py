"""Conversions between PEP data and the older protocols clients still use.

* **Avatars (XEP-0398)**: a PEP avatar (XEP-0084 ``urn:xmpp:avatar:metadata``
  + ``urn:xmpp:avatar:data``) is written into the vCard-temp ``PHOTO`` (the
  vcard module's ``vcard`` store) and a vCard set with a ``PHOTO`` publishes
  the PEP avatar; the avatar's SHA-1 goes into the account's outgoing
  presence as ``<x xmlns='vcard-temp:x:update'><photo/></x>`` (XEP-0153).
* **Bookmarks (XEP-0402 ``#compat``)**: a private-storage (XEP-0049) get of
  ``storage:bookmarks`` answers from the ``urn:xmpp:bookmarks:1`` node
  (when it exists), and a set replaces that node's items.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.core import events as ev
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.stanza import from_xml, to_xml

from .pubsub import PubSubError, Requester

if TYPE_CHECKING:
    from . import PEP

AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
VCARD = "vcard-temp"
VCARD_UPDATE = "vcard-temp:x:update"
PRIVATE = "jabber:iq:private"
LEGACY_BOOKMARKS = "storage:bookmarks"
BOOKMARKS2 = "urn:xmpp:bookmarks:1"
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"

BOOKMARKS2_OPTIONS = {
    "pubsub#access_model": "whitelist",
    "pubsub#max_items": "max",
    "pubsub#persist_items": True,
    "pubsub#send_last_published_item": "never",
}


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true")


def legacy_to_bookmarks2(conf: ET.Element) -> tuple[str, ET.Element] | None:
    """A XEP-0048 ``<conference/>`` → (room JID, XEP-0402 ``<conference/>``)."""
    jid = conf.get("jid")
    if not jid:
        return None
    out = ET.Element(_q(BOOKMARKS2, "conference"))
    if conf.get("name"):
        out.set("name", conf.get("name"))
    out.set("autojoin", "true" if _truthy(conf.get("autojoin")) else "false")
    for tag in ("nick", "password"):
        el = conf.find(_q(LEGACY_BOOKMARKS, tag))
        if el is not None and (el.text or "").strip():
            ET.SubElement(out, _q(BOOKMARKS2, tag)).text = el.text.strip()
    return jid, out


def bookmarks2_to_legacy(jid: str, conf: ET.Element) -> ET.Element:
    out = ET.Element(_q(LEGACY_BOOKMARKS, "conference"), {"jid": jid})
    if conf.get("name"):
        out.set("name", conf.get("name"))
    out.set("autojoin", "true" if _truthy(conf.get("autojoin")) else "false")
    for tag in ("nick", "password"):
        el = conf.find(_q(BOOKMARKS2, tag))
        if el is not None and el.text:
            ET.SubElement(out, _q(LEGACY_BOOKMARKS, tag)).text = el.text
    return out


def avatar_info(metadata_xml: str) -> tuple[str, str] | None:
    """(sha1 id, mime type) of the first ``<info/>`` of a metadata item; ("", "") if empty."""
    try:
        meta = from_xml(metadata_xml)
    except ET.ParseError:
        return None
    infos = meta.findall(_q(AVATAR_META, "info"))
    if not infos:
        return "", ""
    # the one without a url is the one stored in the data node
    info = next((i for i in infos if not i.get("url")), infos[0])
    return info.get("id") or "", info.get("type") or "image/png"


class Compat:
    def __init__(self, pep: "PEP"):
        self.pep = pep
        self.m = pep.m
        self.host = pep.host
        self.vcards = self.m.open_store("vcard", "keyval")
        self.hashes: dict[str, str | None] = {}    # user -> avatar sha1 ("" = none)

    def avatars_on(self) -> bool:
        return bool(self.m.get_option("pep_vcard_avatar"))

    def vcard_loaded(self) -> bool:
        return "vcard" in self.host.modules

    def owner(self, user: str) -> Requester:
        return Requester(self.pep.jid(user), is_owner=True, subscription="both")

    # -- events from the PEP service ----------------------------------------
    async def published(self, user: str, node, item, origin: str) -> None:
        if node.name == AVATAR_META:
            self.hashes.pop(user, None)
            if origin != "vcard" and self.avatars_on() and self.vcard_loaded():
                await self.metadata_to_vcard(user, item.xml)

    async def retracted(self, user: str, node, item_id: str) -> None:
        if node.name == AVATAR_META:
            self.hashes.pop(user, None)

    async def deleted(self, user: str, node) -> None:
        if node.name == AVATAR_META:
            self.hashes.pop(user, None)

    # -- avatars ---------------------------------------------------------------
    async def avatar_hash(self, user: str) -> str | None:
        """The account's avatar SHA-1 (hex), "" for "no avatar", None if unknown."""
        if user in self.hashes:
            return self.hashes[user]
        h: str | None = None
        svc = await self.pep.service(user)
        meta = svc.nodes.get(AVATAR_META)
        last = meta.last_item() if meta is not None else None
        if last is not None:
            info = avatar_info(last.xml)
            h = info[0] if info else None
        elif self.vcard_loaded():
            stored = await self.vcards.get(user)
            if stored:
                photo = self.vcard_photo(from_xml(stored))
                h = hashlib.sha1(photo[1]).hexdigest() if photo else ""
        self.hashes[user] = h
        return h

    async def outgoing_presence(self, user: str, stanza: ET.Element) -> None:
        if not self.avatars_on():
            return
        h = await self.avatar_hash(user)
        if h is None:
            return
        for old in stanza.findall(_q(VCARD_UPDATE, "x")):
            stanza.remove(old)
        x = ET.SubElement(stanza, _q(VCARD_UPDATE, "x"))
        photo = ET.SubElement(x, _q(VCARD_UPDATE, "photo"))
        if h:
            photo.text = h

    @staticmethod
    def vcard_photo(vcard: ET.Element) -> tuple[str, bytes] | None:
        photo = vcard.find(_q(VCARD, "PHOTO"))
        if photo is None:
            return None
        binval = photo.find(_q(VCARD, "BINVAL"))
        if binval is None or not (binval.text or "").strip():
            return None
        try:
            data = base64.b64decode("".join(binval.text.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        typ = photo.find(_q(VCARD, "TYPE"))
        return ((typ.text or "").strip() if typ is not None and typ.text else "image/png"), data

    async def metadata_to_vcard(self, user: str, metadata_xml: str) -> None:
        info = avatar_info(metadata_xml)
        if info is None:
            return
        h, typ = info
        stored = await self.vcards.get(user)
        vcard = from_xml(stored) if stored else ET.Element(_q(VCARD, "vCard"))
        for old in vcard.findall(_q(VCARD, "PHOTO")):
            vcard.remove(old)
        if h:
            svc = await self.pep.service(user)
            data_node = svc.nodes.get(AVATAR_DATA)
            item = data_node.items.get(h) if data_node is not None else None
            if item is None or not item.xml:
                return     # data not (yet) published here: leave the vCard alone
            b64 = "".join((from_xml(item.xml).text or "").split())
            photo = ET.SubElement(vcard, _q(VCARD, "PHOTO"))
            ET.SubElement(photo, _q(VCARD, "TYPE")).text = typ
            ET.SubElement(photo, _q(VCARD, "BINVAL")).text = b64
        if len(vcard) == 0:
            await self.vcards.delete(user)
        else:
            await self.vcards.set(user, to_xml(vcard))

    async def vcard_set(self, sev) -> None:
        """Before the vcard module stores a vCard: publish its PHOTO as the PEP avatar."""
        if not self.avatars_on() or sev.from_bare != f"{sev.to_node}@{self.host.name}":
            return None
        user = sev.to_node
        photo = self.vcard_photo(sev.payload)
        if photo is None:
            self.hashes.pop(user, None)
            return None
        typ, data = photo
        h = hashlib.sha1(data).hexdigest()
        if await self.avatar_hash(user) == h:
            return None
        owner = self.owner(user)
        d = ET.Element(_q(AVATAR_DATA, "data"))
        d.text = base64.b64encode(data).decode("ascii")
        meta = ET.Element(_q(AVATAR_META, "metadata"))
        ET.SubElement(meta, _q(AVATAR_META, "info"), {"id": h, "bytes": str(len(data)), "type": typ})
        try:
            await self.pep.publish(user, owner, AVATAR_DATA, h, d, origin="vcard")
            await self.pep.publish(user, owner, AVATAR_META, h, meta, origin="vcard")
        except PubSubError as err:
            self.m.log.info("vCard photo of %s not published to PEP: %s", user, err)
        self.hashes[user] = h
        return None

    # -- bookmarks -------------------------------------------------------------
    def bookmarks_on(self) -> bool:
        return bool(self.m.get_option("pep_bookmarks_compat"))

    @staticmethod
    def legacy_request(sev) -> ET.Element | None:
        kids = list(sev.payload) if sev.payload is not None else []
        if len(kids) == 1 and kids[0].tag == _q(LEGACY_BOOKMARKS, "storage"):
            return kids[0]
        return None

    async def private_get(self, sev):
        if not self.bookmarks_on() or self.legacy_request(sev) is None:
            return None
        if sev.from_bare != f"{sev.to_node}@{self.host.name}":
            return None      # the private module refuses it
        svc = await self.pep.service(sev.to_node)
        node = svc.nodes.get(BOOKMARKS2)
        if node is None and "private" in self.host.modules:
            return None      # nothing converted yet: what private storage holds
        storage = ET.Element(_q(LEGACY_BOOKMARKS, "storage"))
        for item in (node.items.values() if node is not None else ()):
            if item.xml:
                storage.append(bookmarks2_to_legacy(item.id, from_xml(item.xml)))
        q = ET.Element(_q(PRIVATE, "query"))
        q.append(storage)
        await self.m.send(st.iq_result(sev.stanza, q))
        return ev.HANDLED

    async def private_set(self, sev):
        storage = self.legacy_request(sev) if self.bookmarks_on() else None
        if storage is None or sev.from_bare != f"{sev.to_node}@{self.host.name}":
            return None
        user = sev.to_node
        owner = self.owner(user)
        svc = await self.pep.service(user)
        node = svc.nodes.get(BOOKMARKS2)
        wanted: dict[str, ET.Element] = {}
        for conf in storage.findall(_q(LEGACY_BOOKMARKS, "conference")):
            got = legacy_to_bookmarks2(conf)
            if got:
                jid, el = got
                old = node.items.get(jid) if node is not None else None
                if old is not None and old.xml:
                    ext = from_xml(old.xml).find(_q(BOOKMARKS2, "extensions"))
                    if ext is not None:
                        el.append(ext)      # keep what only bookmarks 2 clients know
                wanted[jid] = el
        try:
            for jid, el in wanted.items():
                old = node.items.get(jid) if node is not None else None
                if old is not None and old.xml == to_xml(el):
                    continue
                await self.pep.publish(user, owner, BOOKMARKS2, jid, el,
                                       None if node is not None else dict(BOOKMARKS2_OPTIONS),
                                       origin="compat")
                node = svc.nodes.get(BOOKMARKS2)
            for jid in [i for i in (node.items if node is not None else ()) if i not in wanted]:
                await self.pep.retract(user, owner, BOOKMARKS2, jid, True)
        except PubSubError as err:
            raise StanzaError("internal-server-error", f"bookmarks conversion failed: {err}") from None
        await self.m.send(st.iq_result(sev.stanza))
        return ev.HANDLED

    # -------------------------------------------------------------------------
    def setup(self, m) -> None:
        if self.avatars_on():
            m.add_feature(NS_CONVERSION, to="account")
        if self.bookmarks_on():
            m.add_feature(f"{BOOKMARKS2}#compat", to="account")
        m.hook(ev.iq_event("set", "bare", VCARD, "vCard"), self.vcard_set, ev.EARLY)
        m.hook(ev.iq_event("get", "bare", PRIVATE, "query"), self.private_get, ev.EARLY)
        m.hook(ev.iq_event("set", "bare", PRIVATE, "query"), self.private_set, ev.EARLY)

"""Archive preferences (XEP-0441): per account, a default (``always``, ``never``
or ``roster``: contacts on the account's roster) and ``always``/``never`` lists
of bare JIDs (``never`` wins). Stored in the ``archive_prefs`` keyval store, with
a small cache of the accounts last used; an account without preferences has the
host's ``default_archive_policy``."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd.moduleapi import IQEvent
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare

if TYPE_CHECKING:
    from .service import MamService

CACHE_SIZE = 4096
POLICIES = ("always", "never", "roster")
PREFS = f"{{{ns.MAM}}}prefs"
JID = f"{{{ns.MAM}}}jid"


async def get(svc: "MamService", user: str) -> dict:
    """The account's preferences (``{}`` when it set none)."""
    p = svc.prefs_cache.get(user)
    if p is None:
        p = await svc.prefs_store.get(user) or {}
        svc.prefs_cache[user] = p
        if len(svc.prefs_cache) > CACHE_SIZE:
            svc.prefs_cache.popitem(last=False)
    else:
        svc.prefs_cache.move_to_end(user)
    return p


async def shall_store(svc: "MamService", user: str, contact: str | None) -> bool:
    """Whether the account's preferences archive a message with ``contact`` (a bare JID)."""
    p = await get(svc, user)
    if contact:
        if contact in (p.get("never") or ()):
            return False
        if contact in (p.get("always") or ()):
            return True
    policy = p.get("default") or svc.default_policy
    if policy == "always":
        return True
    if policy == "never":
        return False
    return bool(contact) and (contact == svc.jid_of(user)
                              or await svc.host.roster.get_item(user, contact) is not None)


def element(svc: "MamService", p: dict) -> ET.Element:
    """``<prefs default><always><jid/>…</always><never>…</never></prefs>``."""
    el = ET.Element(PREFS, {"default": p.get("default") or svc.default_policy})
    for kind in ("always", "never"):
        lst = ET.SubElement(el, f"{{{ns.MAM}}}{kind}")
        for jid in p.get(kind) or ():
            ET.SubElement(lst, JID).text = jid
    return el


def parse(el: ET.Element) -> dict:
    """Preferences as a client sets them: JIDs made bare, duplicates dropped, a JID
    on both lists kept on ``never`` only."""
    default = el.get("default")
    if default not in POLICIES:
        raise StanzaError("bad-request", "default must be always, never or roster")
    new: dict = {"default": default}
    for kind in ("always", "never"):
        jids: list[str] = []
        lst = el.find(f"{{{ns.MAM}}}{kind}")
        if lst is not None:
            for j in lst.findall(JID):
                b = bare((j.text or "").strip())
                if b is None:
                    raise StanzaError("jid-malformed", f"bad JID in <{kind}/>")
                if b not in jids:
                    jids.append(b)
        new[kind] = jids
    new["always"] = [j for j in new["always"] if j not in new["never"]]
    return new


async def prefs_get(svc: "MamService", event: IQEvent) -> ET.Element:
    return element(svc, await get(svc, event.user))


async def prefs_set(svc: "MamService", event: IQEvent) -> ET.Element:
    new = parse(event.payload)
    await svc.prefs_store.set(event.user, new)
    svc.prefs_cache[event.user] = new
    return element(svc, new)

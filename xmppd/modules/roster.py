"""The roster protocol (RFC 6121 §2): ``jabber:iq:roster`` get and set from the
account itself, pushes to every *interested* resource (those that fetched the
roster), roster versioning (§2.6), and the ``rosterver`` and ``pre-approval``
stream features.

The rosters themselves and the subscription state machine are the core's roster
service (``host.roster``, ``xmppd/core/roster.py``), which the presence module and
every other module use too, whether or not this module is enabled.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.moduleapi import roster as rs
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split

PROTOCOLS = ["RFC 6121 §2", "RFC 6121 §2.6 (roster versioning)", "RFC 6121 §3.4 (pre-approval)"]
OPTIONS: list = []   # max_roster_items is the roster service's (a core option)

MAX_TEXT = 1023      # bytes, for a name or a group (RFC 6121 §2.3.3 lets the server choose)


def _text_ok(text: str, what: str) -> None:
    if len(text.encode("utf-8")) > MAX_TEXT:
        raise StanzaError("not-acceptable", f"{what} longer than {MAX_TEXT} bytes")


def parse_set(payload: ET.Element, own_bare: str) -> tuple[str, dict | None, bool]:
    """Check a roster set (§2.3.3, §2.5); returns ``(contact, fields, remove)``."""
    items = list(payload)
    if len(items) != 1 or items[0].tag != rs.ITEM:
        raise StanzaError("bad-request", "a roster set carries exactly one item")
    el = items[0]
    raw = el.get("jid")
    if not raw:
        raise StanzaError("bad-request", "the item has no jid")
    try:
        node, domain, resource = jid_split(raw)
    except InvalidJID:
        raise StanzaError("jid-malformed", "invalid jid") from None
    if resource:
        raise StanzaError("bad-request", "roster items are bare JIDs")
    contact = f"{node}@{domain}" if node else domain
    if contact == own_bare:
        raise StanzaError("not-allowed", "you cannot add yourself to your roster")
    if el.get("subscription") == "remove":
        return contact, None, True
    name = el.get("name") or None
    if name is not None:
        _text_ok(name, "name")
    groups: list[str] = []
    for child in el:
        if child.tag != rs.GROUP:
            continue
        g = child.text or ""
        if not g:
            raise StanzaError("not-acceptable", "empty group name")
        _text_ok(g, "group name")
        if g in groups:
            raise StanzaError("bad-request", f"duplicate group {g!r}")
        groups.append(g)
    return contact, {"name": name, "groups": groups}, False


async def roster_get(event):
    roster = event.host.roster
    user = event.user
    event.origin.interested = True
    ver = await roster.version(user)
    asked = event.payload.get("ver")
    if asked is not None and asked == str(ver):
        return None     # §2.6.3: unchanged, empty result; pushes follow
    return await roster.result_query(user)


async def roster_set(event):
    roster = event.host.roster
    user = event.user
    contact, fields, remove = parse_set(event.payload, f"{user}@{event.host.name}")
    if remove:
        if await roster.remove(user, contact, session=event.origin) is None:
            raise StanzaError("item-not-found")
        return None
    def change(item):
        item = item or rs.new_item()
        item["listed"] = True
        item["name"] = fields["name"]
        item["groups"] = fields["groups"]
        return item
    _old, new, ver = await roster.update(user, contact, change)
    roster.push(user, contact, new, ver)
    return None


def setup(m) -> None:
    m.add_feature(ns.ROSTER)
    m.add_stream_feature(lambda s: ET.Element(f"{{{ns.ROSTER_VER}}}ver"), stage="bound")
    m.add_stream_feature(lambda s: ET.Element(f"{{{ns.PRE_APPROVAL}}}sub"), stage="bound")
    m.hook_iq("get", ns.ROSTER, "query", roster_get, to=("bare",), own_account=True)
    m.hook_iq("set", ns.ROSTER, "query", roster_set, to=("bare",), own_account=True)

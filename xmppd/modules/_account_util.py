"""Helpers shared by the account-service modules (offline, vcard, private,
blocklist, lastactivity, register). Not a module: the leading underscore keeps
it out of ``modules_enabled``.

* ``to_xml`` / ``from_xml``: stanzas and payloads are stored as strings.
* ``subscription(host, user, contact)``: the roster subscription state of
  ``contact`` in ``user``'s roster, through the roster module's helpers when
  that module is there; the one place to adapt if their signature changes.
"""
from __future__ import annotations

import inspect
import time
import xml.etree.ElementTree as ET

from xmppd.stream import serialize

NS_DELAY = "urn:xmpp:delay"


def to_xml(el: ET.Element) -> str:
    """Serialize with every namespace declared, so the string parses on its own."""
    return serialize(el, default_ns="")


def from_xml(text: str) -> ET.Element:
    # Only strings we stored ourselves, from elements our stream parser built
    # (which refuses DTDs and entities), are ever parsed here.
    return ET.fromstring(text)


def utc_stamp(when: float | None = None) -> str:
    """XEP-0082 DateTime, UTC, whole seconds: ``2026-11-27T04:50:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


def add_delay(stanza: ET.Element, from_: str, when: float | None = None) -> ET.Element:
    """Append a XEP-0203 ``<delay/>`` to ``stanza`` and return it."""
    ET.SubElement(stanza, f"{{{NS_DELAY}}}delay", {"from": from_, "stamp": utc_stamp(when)})
    return stanza


def copy_element(el: ET.Element) -> ET.Element:
    """A shallow-enough copy to add children to without touching the original."""
    out = ET.Element(el.tag, dict(el.attrib))
    out.text = el.text
    out.extend(list(el))
    return out


async def subscription(host, user: str, contact: str) -> str:
    """``none``/``to``/``from``/``both`` for ``contact`` (a bare JID) in ``user``'s roster.

    Uses ``xmppd.modules.roster.get_item(host, user, contact)`` when the roster
    module is loaded on ``host``; without it, a user is only "subscribed" to
    themselves.
    """
    if contact == f"{user}@{host.name}":
        return "both"
    if "roster" not in getattr(host, "modules", {}):
        return "none"
    try:
        from xmppd.modules import roster
        get_item = roster.get_item
    except (ImportError, AttributeError):
        return "none"
    item = get_item(host, user, contact)
    if inspect.isawaitable(item):
        item = await item
    if item is None:
        return "none"
    if isinstance(item, dict):
        return item.get("subscription") or "none"
    return getattr(item, "subscription", None) or "none"


def has_presence_of(sub: str) -> bool:
    """The user receives the contact's presence (``to`` or ``both``)."""
    return sub in ("to", "both")


def sends_presence_to(sub: str) -> bool:
    """The contact receives the user's presence (``from`` or ``both``)."""
    return sub in ("from", "both")

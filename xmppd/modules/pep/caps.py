"""Entity capabilities (XEP-0115) as PEP uses them: which ``NODE+notify``
features each available entity advertises.

* ``parse_caps(presence)`` reads ``<c xmlns='http://jabber.org/protocol/caps'/>``;
* ``verify`` checks a ver with the §5 algorithm (:mod:`xmppd.xmpp.caps`) on a
  disco#info ``<query/>``;
* ``CapsCache`` remembers verified feature sets by (hash, ver) in memory (the
  ``pep_caps`` store behind it, so a restart does not refetch them, is
  :mod:`.notify`'s) and tracks the disco#info requests in flight (one per
  ver, matched by IQ id).
"""
from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from xmppd.xmpp import ns
from xmppd.xmpp.caps import HASHES, compute_ver, verification_string  # noqa: F401 (used by notify)

NOTIFY = "+notify"


@dataclass(frozen=True)
class Caps:
    node: str
    ver: str
    hash: str      # "" for legacy caps (no verification possible)

    @property
    def key(self) -> str:
        return f"{self.hash}:{self.ver}" if self.hash else f"legacy:{self.node}#{self.ver}"


def parse_caps(stanza: ET.Element) -> Caps | None:
    c = stanza.find(ns.q(ns.CAPS, "c"))
    if c is None:
        return None
    node, ver = c.get("node"), c.get("ver")
    if not node or not ver:
        return None
    h = c.get("hash") or ""
    if h and h not in HASHES:
        return None
    return Caps(node, ver, h)


def verify(caps: Caps, query: ET.Element) -> bool:
    if not caps.hash:
        return True
    return compute_ver(query, caps.hash) == caps.ver


def features_of(query: ET.Element) -> frozenset[str]:
    return frozenset(f.get("var", "") for f in query.findall(ns.q(ns.DISCO_INFO, "feature")))


def notify_nodes(features: frozenset[str]) -> frozenset[str]:
    """``{'urn:xmpp:avatar:metadata', ...}`` from ``urn:xmpp:avatar:metadata+notify`` ..."""
    return frozenset(f[:-len(NOTIFY)] for f in features if f.endswith(NOTIFY))


RETRY_FAILED = 3600    # seconds before asking again for caps that got no usable answer


class CapsCache:
    """Verified caps -> the nodes they want notifications for."""

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self.known: dict[str, frozenset[str]] = {}
        self.pending: dict[str, tuple[Caps, str]] = {}     # iq id -> (caps, full jid asked)
        self.pending_keys: dict[str, str] = {}             # caps key -> iq id
        self._failed: dict[str, float] = {}                # caps key -> do not ask before

    def get(self, key: str) -> frozenset[str] | None:
        return self.known.get(key)

    def put(self, key: str, nodes: frozenset[str]) -> None:
        if len(self.known) >= self.limit:
            self.known.pop(next(iter(self.known)))
        self.known[key] = nodes

    def failed(self, key: str) -> bool:
        """Asked for recently without a usable answer (an error, no answer)."""
        until = self._failed.get(key)
        if until is None:
            return False
        if until < time.monotonic():
            del self._failed[key]
            return False
        return True

    def fail(self, key: str) -> None:
        """Do not ask for ``key`` again for ``RETRY_FAILED`` seconds (one query per hash)."""
        self._failed[key] = time.monotonic() + RETRY_FAILED
        while len(self._failed) > 10000:
            self._failed.pop(next(iter(self._failed)))

    def request(self, caps: Caps, full: str, from_: str) -> ET.Element | None:
        """The disco#info IQ to send for unknown ``caps`` (None: one is in flight)."""
        if caps.key in self.pending_keys:
            return None
        iq_id = "caps-" + secrets.token_hex(6)
        self.pending[iq_id] = (caps, full)
        self.pending_keys[caps.key] = iq_id
        iq = ET.Element(ns.q(ns.CLIENT, "iq"), {"type": "get", "id": iq_id, "to": full, "from": from_})
        ET.SubElement(iq, ns.q(ns.DISCO_INFO, "query"), {"node": f"{caps.node}#{caps.ver}"})
        return iq

    def take(self, iq_id: str) -> tuple[Caps, str] | None:
        got = self.pending.pop(iq_id, None)
        if got is not None:
            self.pending_keys.pop(got[0].key, None)
        return got

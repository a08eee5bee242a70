"""JIDs (RFC 7622) on slixmpp's JID; maps are keyed by normalised strings.

``split`` normalises and splits, ``bare`` gives the normalised bare JID (or None
for an address that is not a JID), ``join`` puts the parts back together.
"""
from __future__ import annotations

from functools import lru_cache

from slixmpp.jid import JID, InvalidJID

from .errors import StanzaError

__all__ = ["JID", "InvalidJID", "split", "parse", "bare", "domain_of", "join", "nodeprep",
           "resourceprep", "nameprep"]


@lru_cache(maxsize=65536)
def split(s: str) -> tuple[str, str, str]:
    """Normalised ``(node, domain, resource)``; raises InvalidJID.

    The result is a fixpoint: splitting its own join gives the same parts. (slixmpp's
    normalisation is not always idempotent: ``Ϲ9`` becomes ``Σ9``, which becomes
    ``σ9``; without the second pass two spellings of one domain would be two keys.)"""
    j = JID(s)
    for _ in range(3):
        if not j.domain:
            raise InvalidJID("empty domain")
        again = JID(str(j))
        if (again.user, again.domain, again.resource) == (j.user, j.domain, j.resource):
            break
        j = again
    else:
        raise InvalidJID("the address does not normalise to a stable form")
    return j.user, j.domain, j.resource


def parse(s: str) -> tuple[str, str, str]:
    """Like ``split`` but a bad JID is a ``jid-malformed`` stanza error."""
    try:
        return split(s)
    except InvalidJID as exc:
        raise StanzaError("jid-malformed", str(exc) or None) from None


def bare(s: str | None) -> str | None:
    """The normalised bare JID of ``s`` (``node@domain`` or ``domain``); None when
    ``s`` is empty or not a valid JID."""
    if not s:
        return None
    try:
        node, domain, _ = split(s)
    except InvalidJID:
        return None
    return f"{node}@{domain}" if node else domain


def domain_of(s: str | None) -> str | None:
    """The normalised domain of ``s``; None when it is not a valid JID."""
    if not s:
        return None
    try:
        return split(s)[1]
    except InvalidJID:
        return None


def join(node: str | None, domain: str, resource: str | None = None) -> str:
    s = f"{node}@{domain}" if node else domain
    return f"{s}/{resource}" if resource else s


def nodeprep(s: str) -> str:
    """Normalise a localpart; raises InvalidJID if it is not a valid one."""
    if not s or "@" in s or "/" in s:
        raise InvalidJID(f"invalid localpart {s!r}")
    node, _, _ = split(f"{s}@example.invalid")
    return node


def resourceprep(s: str) -> str:
    if not s:
        raise InvalidJID("empty resource")
    _, _, res = split(f"example.invalid/{s}")
    return res


def nameprep(s: str) -> str:
    _, dom, _ = split(s)
    if "@" in s or "/" in s:
        raise InvalidJID(f"not a domain: {s!r}")
    return dom

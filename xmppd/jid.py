"""JID parsing (RFC 7622) on top of slixmpp's JID; maps are keyed by normalised strings."""
from __future__ import annotations

from functools import lru_cache

from slixmpp.jid import JID, InvalidJID

from .errors import StanzaError

__all__ = ["JID", "InvalidJID", "parse", "split", "nodeprep", "resourceprep", "nameprep"]


@lru_cache(maxsize=65536)
def split(s: str) -> tuple[str, str, str]:
    """Normalised ``(node, domain, resource)``; raises InvalidJID."""
    j = JID(s)
    if not j.domain:
        raise InvalidJID("empty domain")
    return j.user, j.domain, j.resource


def parse(s: str) -> tuple[str, str, str]:
    """Like ``split`` but a bad JID is a ``jid-malformed`` stanza error."""
    try:
        return split(s)
    except InvalidJID as exc:
        raise StanzaError("jid-malformed", str(exc) or None) from None


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

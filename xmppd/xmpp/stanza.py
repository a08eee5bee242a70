"""Small builders for stanzas on the routing path (plain ElementTree, no wrappers)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from .errors import StanzaError

C = "{jabber:client}"
KINDS = {"message", "presence", "iq"}


_KIND_OF = {f"{{{n}}}{k}": k for n in ("jabber:client", "jabber:server", "jabber:component:accept")
            for k in KINDS}


def kind_of(el: ET.Element) -> str | None:
    """``message``/``presence``/``iq`` for a stanza in a content namespace, else None."""
    tag = el.tag
    kind = _KIND_OF.get(tag)
    if kind is not None:
        return kind
    i = tag.find("}")
    local = tag[i + 1:] if i >= 0 else tag
    return local if local in KINDS else None


def make(kind: str, attrs: dict[str, str] | None = None, ns: str = "jabber:client") -> ET.Element:
    el = ET.Element(f"{{{ns}}}{kind}")
    if attrs:
        for k, v in attrs.items():
            if v is not None:
                el.set(k, v)
    return el


def iq_result(iq: ET.Element, payload: ET.Element | None = None) -> ET.Element:
    """The result of ``iq``: from/to swapped, same id."""
    el = ET.Element(iq.tag, {"type": "result", "id": iq.get("id", "")})
    if iq.get("from"):
        el.set("to", iq.get("from"))
    if iq.get("to"):
        el.set("from", iq.get("to"))
    if payload is not None:
        el.append(payload)
    return el


def error_reply(stanza: ET.Element, err: StanzaError, *, by: str | None = None,
                from_: str | None = None) -> ET.Element:
    """The error reply to ``stanza`` (RFC 6120 §8.3): swapped addresses, same id.

    The original payload is kept for IQs (clients match on it); messages and
    presences are answered with their error only.
    """
    el = ET.Element(stanza.tag, {"type": "error"})
    if stanza.get("id") is not None:
        el.set("id", stanza.get("id"))
    if stanza.get("from"):
        el.set("to", stanza.get("from"))
    src = from_ or stanza.get("to")
    if src:
        el.set("from", src)
    if kind_of(stanza) == "iq":
        for child in stanza:
            if not child.tag.endswith("}error"):
                el.append(child)
                break
    el.append(err.to_element(by=by))
    return el


def may_answer_with_error(stanza: ET.Element) -> bool:
    """Never an error in reply to an error, nor to an IQ result (RFC 6120 §8.3.1)."""
    t = stanza.get("type")
    if t == "error":
        return False
    if t == "result" and kind_of(stanza) == "iq":
        return False
    return True


def first_child(el: ET.Element) -> ET.Element | None:
    for child in el:
        return child
    return None


def split_tag(tag: str) -> tuple[str, str]:
    """``{ns}local`` → ``(ns, local)``."""
    if tag[:1] == "{":
        i = tag.index("}")
        return tag[1:i], tag[i + 1:]
    return "", tag


def to_client_ns(el: ET.Element, stream_ns: str) -> ET.Element:
    """Rename ``{stream_ns}`` tags (jabber:server, jabber:component:accept) to
    ``{jabber:client}`` in place: inside the server every stanza is in the client
    namespace, whatever stream it came from; the serializer writes it back as
    the default namespace of whatever stream it leaves on."""
    prefix = "{" + stream_ns + "}"
    n = len(prefix)
    stack = [el]
    while stack:
        e = stack.pop()
        tag = e.tag
        if tag.startswith(prefix):
            e.tag = C + tag[n:]
            stack.extend(e)
    return el


# -- copies ------------------------------------------------------------------------------

def copy(el: ET.Element, *, drop=None, **attrs: str | None) -> ET.Element:
    """A copy of ``el`` sharing its children (one level deep): attributes may be
    changed (``None`` removes one) and children added or removed without touching
    the original. ``drop(child)`` true leaves a child out."""
    out = ET.Element(el.tag, dict(el.attrib))
    out.text = el.text
    out.extend(el if drop is None else (c for c in el if not drop(c)))
    for k, v in attrs.items():
        k = k.rstrip("_")   # from_= for 'from'
        if v is None:
            out.attrib.pop(k, None)
        else:
            out.set(k, v)
    return out


def deep_client_ns(el: ET.Element) -> ET.Element:
    """A deep copy of ``el`` with ``jabber:server`` tags as ``jabber:client``."""
    def conv(e):
        tag = e.tag
        if tag.startswith("{jabber:server}"):
            tag = C + tag[15:]
        out = ET.Element(tag, dict(e.attrib))
        out.text, out.tail = e.text, e.tail
        out.extend(conv(c) for c in e)
        return out
    return conv(el)


# -- reading stanzas ----------------------------------------------------------------------

BODY = C + "body"
PRIORITY = C + "priority"


def has_body(stanza: ET.Element) -> bool:
    """A ``<body/>`` in the client namespace (or namespace-less, from older code paths)."""
    return stanza.find(BODY) is not None or stanza.find("body") is not None


def namespace_of(tag: str) -> str:
    """``{ns}local`` → ``ns`` (``""`` without one)."""
    return tag[1:tag.index("}")] if tag[:1] == "{" else ""


def parse_priority(stanza: ET.Element) -> int:
    """``<priority/>`` of a presence as Prosody reads it: an integer clamped to
    -128..127, else 0 (RFC 6121 §4.7.2.3)."""
    el = stanza.find(PRIORITY)
    text = (el.text or "").strip() if el is not None else ""
    try:
        p = int(text, 10)
    except ValueError:
        return 0
    return max(-128, min(127, p))


# -- stored stanzas -------------------------------------------------------------------------

def to_xml(el: ET.Element) -> str:
    """A string for storage, with every namespace declared so that it parses alone."""
    from ..stream import serialize
    return serialize(el, default_ns="")


def from_xml(text: str) -> ET.Element:
    """An element back from :func:`to_xml`. Only strings we stored ourselves, from
    elements our stream parser built (it refuses DTDs and entities), come here."""
    return ET.fromstring(text)


def add_delay(stanza: ET.Element, from_: str, when: float | None = None) -> ET.Element:
    """Append a XEP-0203 ``<delay/>`` (whole seconds) to ``stanza`` and return it."""
    from .time import utc_stamp
    ET.SubElement(stanza, "{urn:xmpp:delay}delay", {"from": from_, "stamp": utc_stamp(when)})
    return stanza

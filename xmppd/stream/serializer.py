"""Fast serializer for stdlib ``ElementTree`` elements on an XMPP stream.

Namespace rules (the stream header declares the default namespace and the
``stream:`` prefix, so stanzas are written relative to them):

* an element whose namespace equals the namespace in scope gets no ``xmlns``; the
  top-level element starts with ``default_ns`` in scope, so ``{jabber:client}message``
  goes out as ``<message>``;
* an element in another namespace gets ``xmlns='...'`` and its children inherit it;
* an element with a bare tag (no ``{ns}``) is written without ``xmlns``, i.e. it is in
  the namespace in scope (its parent's, or ``default_ns`` at the top);
* an element in a namespace that has a stream-level prefix (``prefixes``; always
  ``http://etherx.jabber.org/streams`` -> ``stream``) is written with that prefix and
  does not change the namespace in scope: ``<stream:features>``, ``<stream:error>``;
* ``{http://www.w3.org/XML/1998/namespace}lang`` is written ``xml:lang``; any other
  namespaced attribute gets a generated prefix declared on its element.

Escaping: ``&``, ``<``, ``>`` in text (so ``]]>`` cannot appear); ``&``, ``<``, ``'``
and TAB/LF/CR (as character references, so they survive attribute normalisation) in
attribute values, which are single-quoted.  Characters not allowed in XML 1.0 (most
C0 controls, lone surrogates, U+FFFE/U+FFFF) are NOT filtered on this hot path: the
parser can never produce them, so only code that builds text from non-XML sources
must clean it first with :func:`strip_invalid_chars`.

The root element's ``tail`` is not written; comments and processing instructions in
the tree are skipped.

Copies of one template (a groupchat message fanned out to every occupant, a cached
roster) are :class:`Copy` elements sharing a :class:`SharedContent`: their children
and text are serialized once per namespace in scope, and each copy writes only its
own start tag. A copy whose children were changed after it was made (a filter added
one) is serialized in full, so sharing never changes what goes on the wire.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..xmpp import ns
from ..xmpp.errors import StreamError

__all__ = [
    "Copy", "SharedContent", "copy_of", "serialize", "stream_header", "stream_footer", "serialize_error",
    "escape_text", "escape_attr", "strip_invalid_chars",
]

_XML_NS = ns.XML
_STREAM_PREFIXES = {ns.STREAM: "stream"}

# tag -> (local name, namespace or None); bounded memo
_tags: dict[str, tuple[str, str | None]] = {}
_TAGS_MAX = 4096


def _split(tag: str) -> tuple[str, str | None]:
    if tag[:1] == "{":
        uri, _, local = tag[1:].partition("}")
        res = (local, uri)
    else:
        res = (tag, None)
    if len(_tags) >= _TAGS_MAX:
        _tags.clear()
    _tags[tag] = res
    return res


def escape_text(s: str) -> str:
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    return s


_ATTR_SPECIAL = re.compile(r"[&<'\n\r\t]")
_ATTR_TABLE = str.maketrans({
    "&": "&amp;", "<": "&lt;", "'": "&apos;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;",
})


def escape_attr(s: str) -> str:
    if _ATTR_SPECIAL.search(s) is None:
        return s
    return s.translate(_ATTR_TABLE)


_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def strip_invalid_chars(s: str) -> str:
    """Drop characters XML 1.0 forbids (for text that did not come from XML)."""
    return _INVALID_XML.sub("", s)


def _attr_name(key: str, decls: list[str]) -> str:
    """Prefixed name for a namespaced attribute key; appends declarations to decls."""
    local, uri = _tags.get(key) or _split(key)
    if uri is None:
        return key
    if uri == _XML_NS:
        return "xml:" + local
    prefix = "ns%d" % (len(decls))
    decls.append(f" xmlns:{prefix}='{escape_attr(uri)}'")
    return f"{prefix}:{local}"


class SharedContent:
    """The children and text shared by copies of one template (see :func:`copy_of`).

    The children must not change once copies are made; the serialized form is
    cached per namespace in scope.
    """
    __slots__ = ("kids", "text", "_xml")

    def __init__(self, template: ET.Element):
        self.kids = tuple(template)
        self.text = template.text
        self._xml: dict[str, str] = {}

    def preset(self, cur: str, text: str) -> None:
        """Give the serialized content for namespace ``cur`` in scope, when the
        caller has it already: it must be exactly the children serialized one
        after the other (``serialize(child, default_ns=cur)`` each, no text or tails)."""
        self._xml[cur] = text


class Copy(ET.Element):
    """An element whose content is a :class:`SharedContent` (``shared``)."""
    __slots__ = ("shared",)


def copy_of(template: ET.Element, shared: SharedContent | None = None, **attrs: str) -> Copy:
    """A new element with ``template``'s tag and attributes (updated by ``attrs``)
    whose children and text are ``shared`` (made from ``template`` if not given)."""
    if shared is None:
        shared = SharedContent(template)
    el = Copy(template.tag, template.attrib)
    if attrs:
        el.attrib.update(attrs)
    el.text = shared.text
    el.extend(shared.kids)
    el.shared = shared
    return el


def _ser_shared(el: Copy, s: str, name: str, cur: str, prefixes: dict[str, str]) -> str | None:
    """The rest of a copy after its start tag ``s``, or None if it must be
    serialized in full (its children changed, or an unusual prefix map)."""
    sh = el.shared
    if prefixes is not _STREAM_PREFIXES or el.text is not sh.text or tuple(el) != sh.kids:
        return None
    inner = sh._xml.get(cur)
    if inner is None:
        parts = [escape_text(sh.text)] if sh.text else []
        for child in sh.kids:
            parts.append(_ser(child, cur, prefixes))
            tail = child.tail
            if tail:
                parts.append(escape_text(tail))
        inner = sh._xml[cur] = "".join(parts)
    if not inner:
        return s + "/>"
    return s + ">" + inner + "</" + name + ">"


def _ser(el: ET.Element, cur: str, prefixes: dict[str, str]) -> str:
    # Hot path: plain str concatenation and `in` tests measured fastest here.
    tag = el.tag
    try:
        local, uri = _tags[tag]
    except KeyError:
        if tag.__class__ is not str:  # Comment / ProcessingInstruction factories
            return ""
        local, uri = _split(tag)
    if uri is None or uri == cur:
        name = local
        s = "<" + local
    else:
        pfx = prefixes.get(uri)
        if pfx is not None:
            name = pfx + ":" + local
            s = "<" + name
        else:
            name = local
            s = f"<{local} xmlns='{escape_attr(uri)}'"
            cur = uri
    attrib = el.attrib
    if attrib:
        decls = None
        a = ""
        for k, v in attrib.items():
            if "{" in k:
                if decls is None:
                    decls = []
                k = _attr_name(k, decls)
            if "&" in v or "<" in v or "'" in v or "\n" in v or "\r" in v or "\t" in v:
                v = v.translate(_ATTR_TABLE)
            a += f" {k}='{v}'"
        if decls:
            s += "".join(decls)
        s += a
    if el.__class__ is Copy:
        out = _ser_shared(el, s, name, cur, prefixes)
        if out is not None:
            return out
    text = el.text
    n = len(el)
    if n:
        if n > 8:  # many children (a roster, a disco list): join once, no quadratic +=
            parts = [s, ">", escape_text(text)] if text else [s, ">"]
            for child in el:
                parts.append(_ser(child, cur, prefixes))
                tail = child.tail
                if tail:
                    parts.append(escape_text(tail))
            parts.append("</" + name + ">")
            return "".join(parts)
        s += ">"
        if text:
            s += escape_text(text)
        for child in el:
            s += _ser(child, cur, prefixes)
            tail = child.tail
            if tail:
                s += escape_text(tail)
        return s + "</" + name + ">"
    if text:
        if "&" in text or "<" in text or ">" in text:
            text = escape_text(text)
        return f"{s}>{text}</{name}>"
    return s + "/>"


def serialize(el: ET.Element, default_ns: str = ns.CLIENT,
              prefixes: dict[str, str] | None = None) -> str:
    """Serialize ``el`` for a stream whose default namespace is ``default_ns``.

    ``prefixes`` maps namespace URI -> prefix for namespaces declared on the
    stream header (e.g. ``{'jabber:server:dialback': 'db'}``); the stream
    namespace always uses ``stream:``.
    """
    if prefixes:
        prefixes = {**_STREAM_PREFIXES, **prefixes}
    else:
        prefixes = _STREAM_PREFIXES
    return _ser(el, default_ns, prefixes)


def stream_header(default_ns: str = ns.CLIENT, *, from_: str | None = None,
                  to: str | None = None, id: str | None = None,
                  version: str | None = "1.0", lang: str | None = "en",
                  extra_ns: dict[str, str] | None = None) -> str:
    """``<?xml version='1.0'?><stream:stream xmlns=... xmlns:stream=... ...>``.

    ``extra_ns`` maps prefix -> URI (e.g. ``{'db': 'jabber:server:dialback'}``).
    """
    parts = ["<?xml version='1.0'?><stream:stream xmlns='", escape_attr(default_ns),
             "' xmlns:stream='", ns.STREAM, "'"]
    if extra_ns:
        for prefix, uri in extra_ns.items():
            parts.append(f" xmlns:{prefix}='{escape_attr(uri)}'")
    for key, value in (("from", from_), ("to", to), ("id", id), ("version", version),
                       ("xml:lang", lang)):
        if value is not None:
            parts.append(f" {key}='{escape_attr(value)}'")
    parts.append(">")
    return "".join(parts)


def stream_footer() -> str:
    return "</stream:stream>"


def serialize_error(error: StreamError, default_ns: str = ns.CLIENT) -> str:
    """``<stream:error><condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>...``."""
    return serialize(error.to_element(), default_ns)

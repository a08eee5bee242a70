"""Events produced by :class:`xmppd.stream.StreamParser` (sans-I/O, h11 style).

``StreamOpen`` and ``StreamClose`` are frozen dataclasses.  ``StanzaEvent`` is on
the hot path (one per stanza), so it is a hand-written slotted class: creating a
frozen dataclass costs several times more.  Treat it as immutable all the same.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ..xmpp import ns


@dataclass(frozen=True, slots=True)
class StreamOpen:
    """The peer's ``<stream:stream ...>`` header.

    ``attrs`` holds the header's attributes; namespaced ones use Clark notation,
    so the language is under ``xmppd.xmpp.ns.XML_LANG``
    (``'{http://www.w3.org/XML/1998/namespace}lang'``), exactly as on stanza
    elements.  The properties below are shortcuts for the usual ones.
    """

    attrs: dict[str, str] = field(default_factory=dict)
    default_ns: str = ns.CLIENT
    stream_ns: str = ns.STREAM
    #: namespace declarations on the header, prefix -> URI ('' is the default
    #: namespace); e.g. ``'db'`` tells an s2s peer supports dialback (XEP-0220).
    namespaces: dict[str, str] = field(default_factory=dict)

    @property
    def to(self) -> str | None:
        return self.attrs.get("to")

    @property
    def from_(self) -> str | None:
        return self.attrs.get("from")

    @property
    def id(self) -> str | None:
        return self.attrs.get("id")

    @property
    def version(self) -> str | None:
        return self.attrs.get("version")

    @property
    def lang(self) -> str | None:
        return self.attrs.get(ns.XML_LANG)


class StanzaEvent:
    """One complete top-level child of ``<stream:stream>`` (stanza or nonza)."""

    __slots__ = ("element",)
    __match_args__ = ("element",)

    def __init__(self, element: ET.Element):
        self.element = element

    def __repr__(self) -> str:
        return f"StanzaEvent({self.element.tag!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not StanzaEvent:
            return NotImplemented
        return self.element is other.element

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StreamClose:
    """The peer sent ``</stream:stream>``."""


Event = StreamOpen | StanzaEvent | StreamClose

"""Sans-I/O XML stream: ``StreamParser.feed(bytes) -> events`` and a fast serializer.

No sockets here: the network layer feeds received bytes in and writes the strings
produced by :func:`serialize` / :func:`stream_header` out (encoded as UTF-8).
"""
from .events import Event, StanzaEvent, StreamClose, StreamOpen
from .parser import DEFAULT_NAMESPACES, StreamParser
from .serializer import (
    Copy, SharedContent, copy_of, escape_attr, escape_text, serialize, serialize_error,
    stream_footer, stream_header, strip_invalid_chars,
)

__all__ = [
    "StreamParser", "DEFAULT_NAMESPACES", "Event", "StreamOpen", "StanzaEvent",
    "StreamClose", "serialize", "serialize_error", "stream_header", "stream_footer",
    "escape_text", "escape_attr", "strip_invalid_chars", "Copy", "SharedContent", "copy_of",
]

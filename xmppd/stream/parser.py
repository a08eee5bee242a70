"""Sans-I/O XMPP stream parser: bytes in, events out (RFC 6120 §4, §11).

Built on pyexpat directly so every event is ours to accept or refuse:

* the depth-1 element must be ``<stream:stream>`` in the stream namespace, with a
  supported default (content) namespace;
* every complete depth-2 element becomes a :class:`StanzaEvent` holding a stdlib
  ``xml.etree.ElementTree.Element`` with Clark-notation tags and attribute names
  (``{jabber:client}message``, ``{http://www.w3.org/XML/1998/namespace}lang``);
* DOCTYPE, DTD declarations, entity references other than the five predefined ones,
  processing instructions and comments are refused with ``restricted-xml``;
* any other XML error is ``not-well-formed`` (``bad-namespace-prefix`` for an
  unbound prefix, ``unsupported-encoding`` for a non-UTF-8 document);
* a stanza (or a pending, not yet complete start tag) larger than
  ``max_stanza_size`` bytes is ``policy-violation``, detected while it arrives.

Hot-path notes: tags are translated to Clark notation through a dict cache; the
tree of a stanza is built by a C ``TreeBuilder`` whose ``data`` method is installed
as expat's character-data handler while the stanza is open, so text costs no
Python frame.  Byte counting uses expat's ``CurrentByteIndex``, never per-byte work.

Parsers between stanzas are shared: an expat parser holds about 14 KiB (buffers, name
pools, interned names), and most connections are idle most of the time.  When a
``feed`` ends between stanzas with nothing pending, the expat parser goes back to a
small pool keyed by the stream header's namespace declarations; the next ``feed``
takes one from the pool (or a fresh one primed with a copy of those declarations)
and points its handlers at this stream.  Every parser in the pool is inside a
``<stream:stream>`` with the same declarations in scope, so what it does with the
next bytes is exactly what this stream's own parser would have done.

Tiny pieces: expat rescans an unfinished token from its start on every ``Parse``,
so a huge start tag trickled in byte by byte would cost quadratic time.  ``feed``
holds back (unparsed, but counted against the size limit) pieces that contain no
``>`` while a large unit is pending; since no event can complete without a ``>``,
this never delays an event, and the work stays linear.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pyexpat import ExpatError, ParserCreate, errors as expat_errors
import pyexpat

from ..xmpp import ns
from ..xmpp.errors import StreamError
from .events import StanzaEvent, StreamClose, StreamOpen
from .serializer import escape_attr

__all__ = ["StreamParser", "DEFAULT_NAMESPACES"]

DEFAULT_NAMESPACES = frozenset({ns.CLIENT, ns.SERVER, ns.COMPONENT})

_STREAM_TAG = "{%s}stream" % ns.STREAM
_SEP = "}"
_XML_WS = " \t\r\n"

# Input is split into pieces of at most this many bytes so a huge chunk is
# checked against the stanza size limit while it is parsed, not after.
_MAX_PIECE = 65536
_PIECE_MIN = 4096
# Bytes without '>' are held back only once this much of a unit is pending.
_HOLD_MIN = 2048

_C = expat_errors.codes
_EXPAT_CONDITIONS = {
    _C[expat_errors.XML_ERROR_UNBOUND_PREFIX]: "bad-namespace-prefix",
    _C[expat_errors.XML_ERROR_UNKNOWN_ENCODING]: "unsupported-encoding",
    _C[expat_errors.XML_ERROR_INCORRECT_ENCODING]: "unsupported-encoding",
    _C[expat_errors.XML_ERROR_UNDEFINED_ENTITY]: "restricted-xml",
    _C[expat_errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING]: "restricted-xml",
    _C[expat_errors.XML_ERROR_RECURSIVE_ENTITY_REF]: "restricted-xml",
    _C[expat_errors.XML_ERROR_BINARY_ENTITY_REF]: "restricted-xml",
    _C[expat_errors.XML_ERROR_ASYNC_ENTITY]: "restricted-xml",
    _C[expat_errors.XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF]: "restricted-xml",
}

# expat name ("uri}local" or "local") -> Clark name ("{uri}local" or "local").
# Shared by all parsers; bounded so a peer inventing names cannot grow it forever.
_names: dict[str, str] = {}
_NAMES_MAX = 4096


def _clark(name: str) -> str:
    if _SEP in name:
        clark = "{" + name
    else:
        clark = name
    if len(_names) >= _NAMES_MAX:
        _names.clear()
    _names[name] = clark
    return clark


_TreeBuilder = ET.TreeBuilder


def _restricted(*_args):
    raise StreamError("restricted-xml")


# Idle expat parsers, each inside a stream header whose namespace declarations are
# the key (sorted (prefix, uri) pairs). Bounded both ways: a peer inventing prefixes
# gets no pool.
_pool: dict[tuple, list] = {}
_POOL_PER_KEY = 16
_POOL_KEYS = 64


def _new_expat():
    p = ParserCreate("UTF-8", _SEP)
    if hasattr(p, "SetReparseDeferralEnabled"):  # expat >= 2.6: no latency games
        p.SetReparseDeferralEnabled(False)
    # buffered character data, in a 1 KiB buffer rather than the default 8 KiB
    # (longer text just arrives in pieces)
    p.buffer_size = 1024
    p.buffer_text = True
    p.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.CommentHandler = _restricted
    p.ProcessingInstructionHandler = _restricted
    p.StartDoctypeDeclHandler = _restricted
    p.EntityDeclHandler = _restricted
    p.UnparsedEntityDeclHandler = _restricted
    p.NotationDeclHandler = _restricted
    p.ElementDeclHandler = _restricted
    p.AttlistDeclHandler = _restricted
    p.ExternalEntityRefHandler = _restricted
    p.SkippedEntityHandler = _restricted
    return p


def _primed_expat(key: tuple):
    """A new parser already inside ``<stream:stream>`` with ``key``'s declarations."""
    p = _new_expat()
    decls = "".join(f" xmlns='{escape_attr(uri)}'" if not pfx else
                    f" xmlns:{pfx}='{escape_attr(uri)}'" for pfx, uri in key)
    p.Parse(f"<stream:stream{decls}>".encode(), False)
    return p


class StreamParser:
    """Incremental parser for one XML stream (one direction of one connection).

    ``feed(data)`` returns the events completed by ``data`` (possibly none) and
    raises :class:`xmppd.xmpp.errors.StreamError` on bad input; after an error the
    parser stays failed and every later ``feed`` raises the same error.  Data may
    be split anywhere, including inside a UTF-8 sequence or a tag.

    ``reset()`` starts a fresh stream (after STARTTLS ``<proceed/>`` and after
    SASL success), dropping any buffered bytes.  Events returned by the same
    ``feed`` after the one that triggers a reset (e.g. stanzas pipelined after
    ``<starttls/>``) must be discarded by the caller.

    ``max_stanza_size`` caps, in bytes, each top-level element; ``max_depth`` caps
    element nesting inside a stanza (the stanza element itself is depth 1).
    """

    __slots__ = (
        "max_stanza_size", "max_depth", "namespaces", "_p", "_depth", "_tb", "_events",
        "_fed", "_mark", "_closed", "_error", "_decls", "_opened", "_chars_out", "_head",
        "_held", "_held_len", "_key",
    )

    def __init__(self, max_stanza_size: int = 262144, max_depth: int = 64,
                 namespaces: frozenset[str] | set[str] = DEFAULT_NAMESPACES):
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self.namespaces = frozenset(namespaces)
        self._chars_out = self._chars_outside
        self.reset()

    # -- public API ---------------------------------------------------------

    def reset(self) -> None:
        """Forget everything and expect a new ``<stream:stream>``."""
        p = _new_expat()
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars_out
        p.StartNamespaceDeclHandler = self._ns_decl
        p.XmlDeclHandler = self._xml_decl
        self._p = p
        self._key: tuple | None = None   # the header's declarations, once received
        self._depth = 0
        self._tb: ET.TreeBuilder | None = None
        self._events: list = []
        self._held: list[bytes] = []  # bytes not yet given to expat (see feed)
        self._held_len = 0
        self._head = b""       # first two bytes, for the encoding check
        self._fed = 0          # bytes given to this expat parser
        self._mark = 0         # byte index where the current unit (stanza/header) began
        self._closed = False
        self._error: StreamError | None = None
        self._decls: dict[str, str] = {}
        self._opened: StreamOpen | None = None

    @property
    def stream(self) -> StreamOpen | None:
        """The current stream's header, once received."""
        return self._opened

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def released(self) -> bool:
        """True while this stream holds no expat parser (between stanzas)."""
        return self._p is None

    def release(self) -> bool:
        """Give the expat parser back to the pool if the stream is between stanzas
        with nothing pending (``feed`` does this itself). Returns whether it did."""
        p = self._p
        if (p is None or self._depth != 1 or self._key is None or self._held
                or self._closed or self._error is not None or p.CurrentByteIndex != self._fed):
            return False
        self._p = None
        idle = _pool.get(self._key)
        if idle is None:
            if len(_pool) >= _POOL_KEYS:
                return True
            idle = _pool[self._key] = []
        if len(idle) < _POOL_PER_KEY:
            idle.append(p)
        return True

    def _acquire(self) -> None:
        """An expat parser for this stream's next bytes: from the pool, or new."""
        idle = _pool.get(self._key)
        p = idle.pop() if idle else _primed_expat(self._key)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars_out
        self._p = p
        # byte counts are the parser's own: start them where it stands
        self._fed = self._mark = p.CurrentByteIndex

    def feed(self, data: bytes) -> list[StreamOpen | StanzaEvent | StreamClose]:
        if self._error is not None:
            raise self._error
        if self._closed or not data:
            return []
        if self._p is None:
            self._acquire()
        if self._fed < 2:
            self._check_encoding(data)
        n = len(data)
        fed = self._fed = self._fed + n
        limit = self.max_stanza_size
        # Expat rescans an unfinished token (a start tag with a huge attribute, say)
        # from its beginning on every Parse call: fed in tiny pieces that is
        # quadratic.  No event can complete without a '>' byte, so bytes without
        # one may be held back, unparsed, until they are a fair share of the
        # pending unit; this keeps the total work linear and delays no event.
        pending = fed - self._mark
        if pending > _HOLD_MIN and b">" not in data:
            held = self._held_len + n
            if held * 2 < pending:
                self._held.append(bytes(data))
                self._held_len = held
                if pending > limit:
                    self._fail(StreamError("policy-violation", "stanza too large"))
                return []
        if self._held:
            self._held.append(bytes(data))
            data = b"".join(self._held)
            self._held = []
            self._held_len = 0
        try:
            if len(data) <= _PIECE_MIN:
                self._p.Parse(data, False)
                if fed - self._mark > limit and not self._closed:
                    raise StreamError("policy-violation", "stanza too large")
            else:
                # Split big chunks so the size limit is enforced while they parse.
                piece = _MAX_PIECE if limit > _MAX_PIECE else max(limit, _PIECE_MIN)
                base = fed - len(data)
                view = memoryview(data)
                for i in range(0, len(data), piece):
                    chunk = view[i:i + piece]
                    self._p.Parse(chunk, False)
                    if self._closed:
                        break
                    if base + i + len(chunk) - self._mark > limit:
                        raise StreamError("policy-violation", "stanza too large")
        except StreamError as e:
            self._fail(e)
        except ExpatError as e:
            self._fail(StreamError(_EXPAT_CONDITIONS.get(e.code, "not-well-formed"),
                                   expat_errors.messages.get(e.code)))
        except RecursionError:  # pragma: no cover - depth is capped well below this
            self._fail(StreamError("policy-violation", "too deeply nested"))
        if self._depth == 1:
            self.release()   # between stanzas: the parser goes back to the pool
        events = self._events
        if not events:
            return []
        self._events = []
        return events

    # -- internals ----------------------------------------------------------

    def _check_encoding(self, data: bytes) -> None:
        """Refuse UTF-16/32 (BOM or NUL bytes) before expat auto-detects them."""
        head = self._head = (self._head + bytes(data[:2]))[:2]
        if b"\x00" in head or head[:1] in (b"\xfe", b"\xff"):
            self._fail(StreamError("unsupported-encoding", "only UTF-8 is allowed"))

    def _fail(self, err: StreamError) -> None:
        if self._closed:  # whatever follows </stream:stream> is ignored
            return
        self._error = err
        self._events = []
        self._tb = None
        raise err from None

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        d = self._depth = self._depth + 1
        if d == 2:
            p = self._p
            self._mark = p.CurrentByteIndex
            tb = self._tb = _TreeBuilder()
            p.CharacterDataHandler = tb.data
        elif d == 1:
            return self._open(name, attrs)
        elif d > self.max_depth + 1:
            raise StreamError("policy-violation", "too deeply nested")
        try:
            tag = _names[name]
        except KeyError:
            tag = _clark(name)
        if attrs:
            for k in attrs:
                if _SEP in k:
                    attrs = {(_names.get(k) or _clark(k)): v for k, v in attrs.items()}
                    break
        self._tb.start(tag, attrs)

    def _end(self, name: str) -> None:
        d = self._depth
        self._depth = d - 1
        if d > 2:
            self._tb.end(name)
        elif d == 2:
            el = self._tb.end(name)
            self._tb = None
            p = self._p
            p.CharacterDataHandler = self._chars_out
            idx = p.CurrentByteIndex
            if idx - self._mark > self.max_stanza_size:
                raise StreamError("policy-violation", "stanza too large")
            self._mark = idx
            self._events.append(StanzaEvent(el))
        else:
            self._closed = True
            self._events.append(StreamClose())

    def _chars_outside(self, data: str) -> None:
        """Text at depth 0/1: only whitespace (keepalives) is allowed."""
        if data.strip(_XML_WS):
            raise StreamError("not-well-formed", "text outside stanzas")
        idx = self._p.CurrentByteIndex
        if idx > self._mark:
            self._mark = idx

    def _ns_decl(self, prefix: str | None, uri: str) -> None:
        self._decls.setdefault(prefix or "", uri)

    def _xml_decl(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
            raise StreamError("unsupported-encoding", f"encoding {encoding!r}")

    def _open(self, name: str, attrs: dict[str, str]) -> None:
        p = self._p
        p.StartNamespaceDeclHandler = None  # only the header's declarations matter
        p.XmlDeclHandler = None
        tag = _names.get(name) or _clark(name)
        if tag != _STREAM_TAG:
            if tag.rpartition("}")[2] == "stream":
                raise StreamError("invalid-namespace", "stream element in wrong namespace")
            raise StreamError("invalid-xml", "expected <stream:stream>")
        decls = self._decls
        self._decls = {}
        prefixes = [pfx for pfx, uri in decls.items() if uri == ns.STREAM]
        if prefixes and "stream" not in prefixes:
            raise StreamError("bad-namespace-prefix", "stream namespace prefix must be 'stream'")
        default_ns = decls.get("")
        if default_ns is None or default_ns not in self.namespaces:
            raise StreamError("invalid-namespace", f"unsupported content namespace {default_ns!r}")
        if attrs:
            attrs = {(_names.get(k) or _clark(k)): v for k, v in attrs.items()}
        version = attrs.get("version")
        if version:
            major = version.partition(".")[0]
            if major.isdigit() and int(major) > 1:
                raise StreamError("unsupported-version", f"version {version!r}")
        self._mark = p.CurrentByteIndex
        self._opened = StreamOpen(attrs, default_ns, ns.STREAM, decls)
        self._key = tuple(sorted(decls.items()))
        self._events.append(self._opened)

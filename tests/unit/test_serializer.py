"""xmppd.stream serializer: namespaces, escaping, stream header/footer/errors, round-trips."""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError, StreamError
from xmppd.stream import (
    SharedContent, StanzaEvent, StreamOpen, StreamParser, copy_of, escape_attr, escape_text, serialize,
    serialize_error, stream_footer, stream_header, strip_invalid_chars,
)

C = "{jabber:client}"


def parse_one(wire: str, default_ns: str = ns.CLIENT) -> ET.Element:
    """Parse one serialized stanza inside a stream with default_ns."""
    p = StreamParser()
    events = p.feed((stream_header(default_ns) + wire).encode())
    assert isinstance(events[0], StreamOpen)
    [ev] = events[1:]
    assert isinstance(ev, StanzaEvent)
    return ev.element


def canon(el: ET.Element):
    return (el.tag, dict(el.attrib), el.text or "", el.tail or "", [canon(c) for c in el])


def roundtrip(el: ET.Element, default_ns: str = ns.CLIENT) -> ET.Element:
    return parse_one(serialize(el, default_ns), default_ns)


# -- basic shapes --------------------------------------------------------------------

def test_message():
    msg = ET.Element(C + "message", {"to": "romeo@example.net", "from": "juliet@example.com/balcony",
                                     "type": "chat", "id": "1"})
    ET.SubElement(msg, C + "body").text = "hi"
    assert serialize(msg) == ("<message to='romeo@example.net' from='juliet@example.com/balcony' "
                              "type='chat' id='1'><body>hi</body></message>")


def test_empty_elements_self_close():
    assert serialize(ET.Element(C + "presence")) == "<presence/>"
    el = ET.Element(C + "presence", {"type": "unavailable"})
    assert serialize(el) == "<presence type='unavailable'/>"
    el.text = ""
    assert serialize(el) == "<presence type='unavailable'/>"


def test_namespaced_children_inherit():
    iq = ET.Element(C + "iq", {"type": "result", "id": "r1"})
    q = ET.SubElement(iq, "{jabber:iq:roster}query")
    item = ET.SubElement(q, "{jabber:iq:roster}item", {"jid": "a@b"})
    ET.SubElement(item, "{jabber:iq:roster}group").text = "Friends"
    ET.SubElement(q, "{jabber:iq:roster}item", {"jid": "c@d"})
    assert serialize(iq) == ("<iq type='result' id='r1'><query xmlns='jabber:iq:roster'>"
                             "<item jid='a@b'><group>Friends</group></item><item jid='c@d'/>"
                             "</query></iq>")


def test_sibling_namespaces_each_declared():
    msg = ET.Element(C + "message")
    ET.SubElement(msg, "{urn:a}x")
    ET.SubElement(msg, "{urn:b}y")
    ET.SubElement(msg, C + "body").text = "t"
    assert serialize(msg) == "<message><x xmlns='urn:a'/><y xmlns='urn:b'/><body>t</body></message>"


def test_back_to_default_namespace_inside_foreign():
    # a forwarded message inside a carbon: jabber:client again below urn:xmpp:forward:0
    msg = ET.Element(C + "message")
    fwd = ET.SubElement(ET.SubElement(msg, "{urn:xmpp:carbons:2}received"), "{urn:xmpp:forward:0}forwarded")
    inner = ET.SubElement(fwd, C + "message", {"to": "x@y"})
    ET.SubElement(inner, C + "body").text = "inner"
    wire = serialize(msg)
    assert wire == ("<message><received xmlns='urn:xmpp:carbons:2'>"
                    "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='x@y'>"
                    "<body>inner</body></message></forwarded></received></message>")
    assert canon(parse_one(wire)) == canon(msg)


def test_bare_tags_take_the_namespace_in_scope():
    msg = ET.Element("message", {"to": "a@b"})
    ET.SubElement(msg, "body").text = "x"
    q = ET.SubElement(msg, "{urn:x}q")
    ET.SubElement(q, "child")
    assert serialize(msg) == "<message to='a@b'><body>x</body><q xmlns='urn:x'><child/></q></message>"
    back = parse_one(serialize(msg))
    assert back.tag == C + "message" and back[0].tag == C + "body"
    assert back[1][0].tag == "{urn:x}child"


def test_stanza_error_element():
    iq = ET.Element(C + "iq", {"type": "error", "id": "1"})
    iq.append(StanzaError("item-not-found", "no such item").to_element())
    assert serialize(iq) == (
        "<iq type='error' id='1'><error type='cancel'>"
        "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such item</text></error></iq>")


def test_other_default_namespaces():
    for default_ns in (ns.SERVER, ns.COMPONENT):
        msg = ET.Element(f"{{{default_ns}}}message", {"to": "a@b"})
        assert serialize(msg, default_ns) == "<message to='a@b'/>"
        # a jabber:client stanza on a server stream must say so
        assert serialize(ET.Element(C + "message"), default_ns) == "<message xmlns='jabber:client'/>"
        assert roundtrip(msg, default_ns).tag == f"{{{default_ns}}}message"


def test_stream_prefix_for_features_and_error():
    feats = ET.Element(f"{{{ns.STREAM}}}features")
    tls = ET.SubElement(feats, f"{{{ns.TLS}}}starttls")
    ET.SubElement(tls, f"{{{ns.TLS}}}required")
    mechs = ET.SubElement(feats, f"{{{ns.SASL}}}mechanisms")
    ET.SubElement(mechs, f"{{{ns.SASL}}}mechanism").text = "PLAIN"
    wire = serialize(feats)
    assert wire == ("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                    "</starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
    assert canon(parse_one(wire)) == canon(feats)


def test_serialize_error():
    wire = serialize_error(StreamError("not-well-formed"))
    assert wire == ("<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                    "</stream:error>")
    wire = serialize_error(StreamError("policy-violation", "stanza too large & <bad>"))
    assert wire == ("<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza too large &amp; "
                    "&lt;bad&gt;</text></stream:error>")
    el = parse_one(wire)
    assert el.tag == f"{{{ns.STREAM}}}error"
    assert el[0].tag == f"{{{ns.STREAMS_ERR}}}policy-violation"


def test_extra_stream_prefixes():
    result = ET.Element("{jabber:server:dialback}result", {"from": "a", "to": "b", "type": "valid"})
    assert serialize(result, ns.SERVER) == "<result xmlns='jabber:server:dialback' from='a' to='b' type='valid'/>"
    assert serialize(result, ns.SERVER, prefixes={"jabber:server:dialback": "db"}) == (
        "<db:result from='a' to='b' type='valid'/>")


# -- attributes ----------------------------------------------------------------------

def test_xml_lang_attribute():
    msg = ET.Element(C + "message", {ns.XML_LANG: "fr"})
    ET.SubElement(msg, C + "body", {ns.XML_LANG: "de"}).text = "Hallo"
    assert serialize(msg) == "<message xml:lang='fr'><body xml:lang='de'>Hallo</body></message>"
    assert canon(roundtrip(msg)) == canon(msg)


def test_other_namespaced_attributes_get_declared_prefixes():
    el = ET.Element(C + "message", {"{urn:a}one": "1", "plain": "p", "{urn:b}two": "2"})
    wire = serialize(el)
    assert wire == ("<message xmlns:ns0='urn:a' xmlns:ns1='urn:b' ns0:one='1' plain='p' ns1:two='2'/>")
    assert canon(parse_one(wire)) == canon(el)


def test_attribute_escaping():
    value = "a&b<c>d\"e'f\ng\rh\ti]]>"
    el = ET.Element(C + "message", {"x": value})
    wire = serialize(el)
    assert wire == "<message x='a&amp;b&lt;c>d\"e&apos;f&#10;g&#13;h&#9;i]]>'/>"
    assert roundtrip(el).get("x") == value


def test_text_escaping():
    text = "a & b < c > d ]]> e \"quoted\" 'single' \t\n tab-newline"
    msg = ET.Element(C + "message")
    ET.SubElement(msg, C + "body").text = text
    wire = serialize(msg)
    assert "]]>" not in wire
    assert wire == ("<message><body>a &amp; b &lt; c &gt; d ]]&gt; e \"quoted\" 'single' \t\n "
                    "tab-newline</body></message>")
    assert roundtrip(msg)[0].text == text


def test_tail_text_escaped_and_root_tail_dropped():
    body = ET.Element(C + "body")
    body.text = "x"
    b = ET.SubElement(body, "{http://www.w3.org/1999/xhtml}b")
    b.text = "bold"
    b.tail = " & more <"
    body.tail = "root tail is not part of the stanza"
    assert serialize(body) == ("<body>x<b xmlns='http://www.w3.org/1999/xhtml'>bold</b> &amp; more &lt;"
                               "</body>")


def test_escape_helpers():
    assert escape_text("plain") == "plain"
    assert escape_text("<&>") == "&lt;&amp;&gt;"
    assert escape_attr("plain") == "plain"
    assert escape_attr("'&<\n") == "&apos;&amp;&lt;&#10;"
    assert strip_invalid_chars("a\x00b\x1fc\tok\ufffe\U0001F600") == "abc\tok\U0001F600"


def test_non_ascii_passes_through():
    msg = ET.Element(C + "message")
    ET.SubElement(msg, C + "body").text = "Grüße 你好 😀"
    assert serialize(msg) == "<message><body>Grüße 你好 😀</body></message>"
    assert roundtrip(msg)[0].text == "Grüße 你好 😀"


def test_comments_in_tree_are_skipped():
    msg = ET.Element(C + "message")
    msg.append(ET.Comment("secret"))
    ET.SubElement(msg, C + "body").text = "x"
    assert serialize(msg) == "<message><body>x</body></message>"


# -- header / footer -----------------------------------------------------------------

def test_stream_header_and_footer():
    h = stream_header(ns.CLIENT, from_="example.com", id="abc", to="juliet@example.com")
    assert h == ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' "
                 "to='juliet@example.com' id='abc' version='1.0' xml:lang='en'>")
    assert stream_footer() == "</stream:stream>"
    p = StreamParser()
    [ev] = p.feed(h.encode())
    assert ev.attrs == {"from": "example.com", "to": "juliet@example.com", "id": "abc",
                        "version": "1.0", ns.XML_LANG: "en"}
    assert [type(e).__name__ for e in p.feed(stream_footer().encode())] == ["StreamClose"]


def test_stream_header_options():
    h = stream_header(ns.SERVER, version=None, lang=None, extra_ns={"db": "jabber:server:dialback"},
                      to="o'brien.example")
    assert h == ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
                 "to='o&apos;brien.example'>")
    [ev] = StreamParser().feed(h.encode())
    assert ev.default_ns == ns.SERVER and ev.namespaces["db"] == "jabber:server:dialback"
    assert ev.to == "o'brien.example"


# -- round-trips ---------------------------------------------------------------------

ROUNDTRIP_DOCS = [
    "<message to='a@b' type='chat' id='1'><body>hi</body></message>",
    "<presence/>",
    "<presence xml:lang='en'><show>away</show><status>Out &amp; about</status>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
    "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='a@b' subscription='remove'/>"
    "</query></iq>",
    "<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    "<p>one <b>two</b> three<br/>four</p></body></html></message>",
    "<iq type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'>"
    "<item id='1'><entry xmlns='http://www.w3.org/2005/Atom'><title>T</title></entry></item>"
    "</items></pubsub></iq>",
    "<message xmlns:x='urn:x' x:a='1'><x:y><x:z>t</x:z></x:y></message>",
]


@pytest.mark.parametrize("wire", ROUNDTRIP_DOCS)
def test_parse_serialize_parse(wire):
    first = parse_one(wire)
    again = parse_one(serialize(first))
    assert canon(again) == canon(first)
    # serializing is deterministic and a fixed point after the first round
    assert serialize(again) == serialize(first)


def test_matches_stdlib_tree_semantics():
    for wire in ROUNDTRIP_DOCS:
        ours = parse_one(wire)
        full = ET.fromstring(f"<r xmlns='jabber:client'>{wire}</r>")[0]
        assert canon(ours) == canon(full)


def _random_tree(rng: random.Random, depth: int = 0) -> ET.Element:
    namespaces = ["jabber:client", "urn:a", "urn:b", "http://www.w3.org/1999/xhtml"]
    chars = "abc xyz&<>\"']]>\n\t\r é€😀"

    def text() -> str | None:
        if rng.random() < 0.4:
            return None
        return "".join(rng.choice(chars) for _ in range(rng.randint(0, 12))) or None

    tag = "{%s}%s" % (rng.choice(namespaces), rng.choice(["message", "x", "item", "body"]))
    attrs = {}
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(["to", "id", "type", ns.XML_LANG, "{urn:c}flag", "{urn:a}q"])
        attrs[name] = text() or ""
    el = ET.Element(tag, attrs)
    el.text = text()
    if depth < 4:
        for _ in range(rng.randint(0, 3)):
            child = _random_tree(rng, depth + 1)
            child.tail = text()
            el.append(child)
    return el


def _normalize(el: ET.Element) -> ET.Element:
    """What a parser gives back: \\r\\n and lone \\r in text become \\n; no root tail."""
    def fix(s):
        return s.replace("\r\n", "\n").replace("\r", "\n") if s else s
    out = ET.Element(el.tag, dict(el.attrib))
    out.text = fix(el.text)
    for c in el:
        n = _normalize(c)
        n.tail = fix(c.tail)
        out.append(n)
    return out


def test_random_trees_roundtrip_with_random_chunking():
    rng = random.Random(2024)
    for _ in range(200):
        tree = _random_tree(rng)
        tree.tail = None
        wire = serialize(tree).encode()
        p = StreamParser()
        p.feed(stream_header().encode())
        events, i = [], 0
        while i < len(wire):
            n = rng.randint(1, 40)
            events += p.feed(wire[i:i + n])
            i += n
        [ev] = events
        assert canon(ev.element) == canon(_normalize(tree))


# -- copies sharing their content (MUC fan-out, cached rosters) ---------------------

def _template() -> ET.Element:
    m = ET.Element("{jabber:client}message", {"type": "groupchat", "from": "r@muc/n", "id": "1"})
    ET.SubElement(m, "{jabber:client}body").text = "a < b & c"
    ET.SubElement(m, "{urn:xmpp:sid:0}stanza-id", {"id": "x", "by": "r@muc"})
    return m


def _plain(el: ET.Element) -> ET.Element:
    """The same tree as ordinary elements (what the serializer writes for it in full)."""
    out = ET.Element(el.tag, dict(el.attrib))
    out.text = el.text
    out.extend(el)
    return out


def test_copies_serialize_like_plain_elements():
    tmpl = _template()
    shared = SharedContent(tmpl)
    a = copy_of(tmpl, shared, to="a@x/1")
    b = copy_of(tmpl, shared, to="b@x/2")
    assert a.get("to") == "a@x/1" and tmpl.get("to") is None
    for el in (a, b):
        assert serialize(el) == serialize(_plain(el))
        assert serialize(el, ns.SERVER) == serialize(_plain(el), ns.SERVER)  # cached per namespace
    assert set(shared._xml) == {ns.CLIENT}   # the top element declares jabber:client on s2s


def test_a_copy_changed_after_it_was_made_is_serialized_in_full():
    tmpl = _template()
    shared = SharedContent(tmpl)
    a = copy_of(tmpl, shared, to="a@x/1")
    serialize(copy_of(tmpl, shared, to="b@x/2"))          # fills the cache
    ET.SubElement(a, "{urn:xmpp:delay}delay", {"stamp": "2026-01-01T00:00:00Z"})
    out = serialize(a)
    assert "urn:xmpp:delay" in out and out == serialize(_plain(a))
    b = copy_of(tmpl, shared, to="b@x/2")
    b.remove(b[0])
    assert "<body>" not in serialize(b)


def test_copy_inside_a_wrapper_and_an_empty_copy():
    tmpl = _template()
    wrapper = ET.Element("{urn:xmpp:forward:0}forwarded")
    wrapper.append(copy_of(tmpl, to="a@x/1"))
    assert serialize(wrapper) == serialize(_plain_tree(wrapper))
    empty = ET.Element("{jabber:client}presence", {"from": "r@muc"})
    assert serialize(copy_of(empty, to="a@x")) == "<presence from='r@muc' to='a@x'/>"


def _plain_tree(el: ET.Element) -> ET.Element:
    out = ET.Element(el.tag, dict(el.attrib))
    out.text, out.tail = el.text, el.tail
    out.extend(_plain_tree(c) for c in el)
    return out


def test_preset_content_is_what_the_serializer_would_write():
    """What the roster module presets (its items serialized one by one) is exactly
    what serializing the shared children gives."""
    q = ET.Element("{jabber:iq:roster}query")
    for i in range(3):
        item = ET.SubElement(q, "{jabber:iq:roster}item", {"jid": f"c{i}@x", "name": f"<{i}>"})
        ET.SubElement(item, "{jabber:iq:roster}group").text = "a & b"
    computed = serialize(copy_of(q, SharedContent(q), ver="1"))
    shared = SharedContent(q)
    shared.preset("jabber:iq:roster", "".join(serialize(k, default_ns="jabber:iq:roster") for k in q))
    assert serialize(copy_of(q, shared, ver="1")) == computed

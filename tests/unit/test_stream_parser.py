"""xmppd.stream.StreamParser: events, limits and every stream error it raises."""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from xmppd.xmpp import ns
from xmppd.xmpp.errors import StreamError
from xmppd.stream import StanzaEvent, StreamClose, StreamOpen, StreamParser, serialize

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
          b"from='juliet@example.com' version='1.0' xml:lang='en'>")
MSG = b"<message to='romeo@example.net' type='chat' id='m1'><body>Wherefore art thou?</body></message>"


def opened(**kw) -> StreamParser:
    p = StreamParser(**kw)
    events = p.feed(HEADER)
    assert len(events) == 1 and isinstance(events[0], StreamOpen)
    return p


def stanzas(events) -> list[ET.Element]:
    return [e.element for e in events if isinstance(e, StanzaEvent)]


def feed_bytewise(p: StreamParser, data: bytes) -> list:
    events = []
    for i in range(len(data)):
        events.extend(p.feed(data[i:i + 1]))
    return events


def error_of(data: bytes, **kw) -> str:
    p = StreamParser(**kw)
    with pytest.raises(StreamError) as info:
        p.feed(data)
    return info.value.condition


def assert_trees_equal(a: ET.Element, b: ET.Element) -> None:
    assert a.tag == b.tag
    assert a.attrib == b.attrib
    assert (a.text or "") == (b.text or "")
    assert (a.tail or "") == (b.tail or "")
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert_trees_equal(x, y)


# -- stream open / stanzas / close ---------------------------------------------------

def test_stream_open_attributes():
    p = StreamParser()
    [ev] = p.feed(HEADER)
    assert ev == p.stream
    assert ev.default_ns == ns.CLIENT
    assert ev.stream_ns == ns.STREAM
    assert ev.attrs == {"to": "example.com", "from": "juliet@example.com", "version": "1.0",
                        ns.XML_LANG: "en"}
    assert (ev.to, ev.from_, ev.version, ev.lang, ev.id) == (
        "example.com", "juliet@example.com", "1.0", "en", None)
    assert ev.namespaces == {"": ns.CLIENT, "stream": ns.STREAM}


@pytest.mark.parametrize("default_ns", [ns.CLIENT, ns.SERVER, ns.COMPONENT])
def test_content_namespaces(default_ns):
    p = StreamParser()
    header = (f"<stream:stream xmlns='{default_ns}' xmlns:db='jabber:server:dialback' "
              f"xmlns:stream='{ns.STREAM}'>").encode()
    [ev, st] = p.feed(header + b"<presence/>")
    assert ev.default_ns == default_ns
    assert ev.namespaces["db"] == "jabber:server:dialback"
    assert st.element.tag == f"{{{default_ns}}}presence"


def test_stanza_tree():
    p = opened()
    [el] = stanzas(p.feed(MSG))
    assert el.tag == "{jabber:client}message"
    assert el.attrib == {"to": "romeo@example.net", "type": "chat", "id": "m1"}
    [body] = el
    assert body.tag == "{jabber:client}body"
    assert body.text == "Wherefore art thou?"


def test_namespaced_children():
    p = opened()
    [iq] = stanzas(p.feed(b"<iq type='result' id='r'><query xmlns='jabber:iq:roster' ver='1'>"
                          b"<item jid='a@b' name='A'><group>Friends</group></item><item jid='c@d'/>"
                          b"</query></iq>"))
    assert iq.tag == "{jabber:client}iq"
    query = iq.find("{jabber:iq:roster}query")
    assert query is not None and query.get("ver") == "1"
    items = query.findall("{jabber:iq:roster}item")
    assert [i.get("jid") for i in items] == ["a@b", "c@d"]
    assert items[0].find("{jabber:iq:roster}group").text == "Friends"


def test_prefixed_elements_become_clark():
    p = opened()
    [el] = stanzas(p.feed(b"<message xmlns:x='urn:x'><x:y x:attr='1' plain='2'/></message>"))
    [y] = el
    assert y.tag == "{urn:x}y"
    assert y.attrib == {"{urn:x}attr": "1", "plain": "2"}


def test_xml_lang_on_stanza_is_clark():
    p = opened()
    [el] = stanzas(p.feed(b"<message xml:lang='fr'><body xml:lang='de'>Hallo</body></message>"))
    assert el.get(ns.XML_LANG) == "fr"
    assert el[0].get(ns.XML_LANG) == "de"


def test_nonzas_in_their_namespaces():
    p = opened()
    els = stanzas(p.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                         b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
                         b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"))
    assert [e.tag for e in els] == [f"{{{ns.TLS}}}starttls", f"{{{ns.SASL}}}auth",
                                    f"{{{ns.STREAM}}}features"]
    assert els[1].text == "AGEAYg=="
    assert els[2][0].tag == f"{{{ns.BIND}}}bind"


def test_mixed_content_text_and_tail():
    p = opened()
    [el] = stanzas(p.feed(b"<message><body>a<b>x</b>tail&amp;<c/>end</body></message>"))
    body = el[0]
    assert body.text == "a"
    assert body[0].text == "x" and body[0].tail == "tail&"
    assert body[1].tail == "end"


def test_entities_and_char_refs_and_cdata():
    p = opened()
    [el] = stanzas(p.feed(b"<message a='&quot;&apos;&lt;&gt;&amp;&#10;'><body>&lt;&#x263A;&#9731;"
                          b"<![CDATA[<raw> & ]]></body></message>"))
    assert el.get("a") == "\"'<>&\n"
    assert el[0].text == "<\u263a\u2603<raw> & "


def test_whitespace_keepalives_produce_no_events():
    p = opened()
    assert p.feed(b" ") == []
    assert p.feed(b"\n\r\t  \n") == []
    assert len(stanzas(p.feed(b" " + MSG + b"\n "))) == 1
    assert p.feed(b"    ") == []


def test_whitespace_between_header_parts():
    p = StreamParser()
    events = p.feed(b"<?xml version='1.0' encoding='UTF-8'?>\n" + HEADER[21:] + b"\n" + MSG)
    assert [type(e) for e in events] == [StreamOpen, StanzaEvent]


def test_returned_lists_are_not_reused():
    p = StreamParser()
    first = p.feed(HEADER[:10])
    assert first == []
    p.feed(HEADER[10:])
    assert first == []


def test_stream_close():
    p = opened()
    events = p.feed(MSG + b"</stream:stream>")
    assert [type(e) for e in events] == [StanzaEvent, StreamClose]
    assert p.closed
    assert p.feed(b"<message/>") == []  # ignored after close


def test_data_after_close_in_same_chunk_is_ignored():
    p = opened()
    events = p.feed(b"</stream:stream>garbage<!-- x --><?pi?>")
    assert [type(e) for e in events] == [StreamClose]
    assert p.feed(b"more") == []


def test_many_stanzas_in_one_chunk_keep_order():
    p = opened()
    data = b"".join(b"<message id='%d'/>" % i for i in range(500))
    assert [e.get("id") for e in stanzas(p.feed(data))] == [str(i) for i in range(500)]


def test_stanza_split_over_feeds():
    p = opened()
    assert p.feed(MSG[:40]) == []
    assert p.feed(MSG[40:-3]) == []
    [el] = stanzas(p.feed(MSG[-3:]))
    assert el[0].text == "Wherefore art thou?"


def test_every_split_point_gives_same_result():
    doc = HEADER + MSG + b" <iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
    expected = StreamParser().feed(doc)
    for cut in range(1, len(doc)):
        p = StreamParser()
        events = p.feed(doc[:cut]) + p.feed(doc[cut:])
        assert [type(e) for e in events] == [type(e) for e in expected], cut
        for a, b in zip(stanzas(events), stanzas(expected)):
            assert_trees_equal(a, b)


def test_one_byte_chunks_with_multibyte_utf8():
    text = "Grüße — 你好 — 😀"
    doc = HEADER + f"<message><body>{text}</body></message>".encode() + b"</stream:stream>"
    events = feed_bytewise(StreamParser(), doc)
    assert [type(e) for e in events] == [StreamOpen, StanzaEvent, StreamClose]
    assert events[1].element[0].text == text


def test_random_chunking():
    rng = random.Random(6120)
    body = "".join(rng.choice("abc <>&'\"é€😀\n") for _ in range(300))
    msg = ET.Element("{jabber:client}message", {"to": "a@b", "note": body})
    ET.SubElement(msg, "{jabber:client}body").text = body
    wire = serialize(msg).encode()
    doc = HEADER + wire * 20 + b"</stream:stream>"
    for _ in range(30):
        p = StreamParser()
        events, i = [], 0
        while i < len(doc):
            n = rng.randint(1, 97)
            events += p.feed(doc[i:i + n])
            i += n
        els = stanzas(events)
        assert len(els) == 20 and isinstance(events[-1], StreamClose)
        for el in els:
            assert el.get("note") == body and el[0].text == body


# -- reset ---------------------------------------------------------------------------

def test_reset_starts_new_stream_and_drops_buffered_bytes():
    p = opened()
    assert p.feed(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message><bo") != []
    p.reset()
    assert p.stream is None
    events = p.feed(HEADER + MSG)
    assert [type(e) for e in events] == [StreamOpen, StanzaEvent]


def test_reset_after_close_and_after_error():
    p = opened()
    p.feed(b"</stream:stream>")
    p.reset()
    assert len(p.feed(HEADER)) == 1
    with pytest.raises(StreamError):
        p.feed(b"<message><</message>")
    p.reset()
    assert [type(e) for e in p.feed(HEADER + MSG)] == [StreamOpen, StanzaEvent]


def test_error_is_sticky():
    p = opened()
    with pytest.raises(StreamError) as first:
        p.feed(b"<message></presence>")
    with pytest.raises(StreamError) as second:
        p.feed(MSG)
    assert second.value is first.value


# -- stream errors -------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"<message></presence>",
    b"<message a='1' a='2'/>",
    b"<message><body>x</message>",
    b"<message><>",
    b"\x00",
    b"<message>\xff\xfe</message>",
    b"plain text",
    b"<message a=1/>",
    b"<message>&#0;</message>",
    b"<?xml version='1.0'?>",  # an XML declaration anywhere but at the start
])
def test_not_well_formed(data):
    p = opened()
    with pytest.raises(StreamError) as info:
        p.feed(data)
    assert info.value.condition == "not-well-formed"


def test_not_well_formed_before_stream():
    assert error_of(b" <?xml version='1.0'?>" + HEADER[21:]) == "not-well-formed"
    assert error_of(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") == "not-well-formed"
    assert error_of(b"\x16\x03\x01\x02\x00\x01\x00") == "not-well-formed"  # TLS ClientHello


@pytest.mark.parametrize("data", [
    b"<!DOCTYPE stream>",
    b"<!DOCTYPE stream [<!ENTITY x 'y'>]>",
    b"<!DOCTYPE stream SYSTEM 'file:///etc/passwd'>",
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]>",
    b"<!-- hello -->",
    b"<?xml-stylesheet href='x'?>",
])
def test_restricted_xml_before_stream(data):
    assert error_of(data + HEADER) == "restricted-xml"


@pytest.mark.parametrize("data", [
    b"<!-- keepalive -->",
    b"<message><!-- c --></message>",
    b"<?pi data?>",
    b"<message><?pi data?></message>",
    b"<message>&custom;</message>",
    b"<message a='&ext;'/>",
])
def test_restricted_xml_in_stream(data):
    p = opened()
    with pytest.raises(StreamError) as info:
        p.feed(data)
    assert info.value.condition == "restricted-xml"


@pytest.mark.parametrize("data", [
    b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:],
    b"<?xml version='1.0' encoding='UTF-16'?>" + HEADER[21:],
])
def test_unsupported_encoding(data):
    assert error_of(data) == "unsupported-encoding"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_are_refused(codec):
    data = HEADER[21:].decode().encode(codec)
    assert error_of(data) == "unsupported-encoding"
    p = StreamParser()
    with pytest.raises(StreamError) as info:
        feed_bytewise(p, data)
    assert info.value.condition == "unsupported-encoding"


def test_utf8_bom_is_accepted():
    assert [type(e) for e in StreamParser().feed(b"\xef\xbb\xbf" + HEADER)] == [StreamOpen]


@pytest.mark.parametrize("header", [
    # stream element in the wrong namespace
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://example.com/streams'>",
    b"<stream xmlns='jabber:client'>",
    # unsupported or missing content namespace
    b"<stream:stream xmlns='jabber:iq:roster' xmlns:stream='http://etherx.jabber.org/streams'>",
    b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
])
def test_invalid_namespace(header):
    assert error_of(header) == "invalid-namespace"


def test_wrong_root_element():
    assert error_of(b"<message xmlns='jabber:client'/>") == "invalid-xml"


def test_bad_namespace_prefix():
    assert error_of(b"<foobar:stream xmlns:foobar='http://etherx.jabber.org/streams' "
                    b"xmlns='jabber:client'>") == "bad-namespace-prefix"
    assert error_of(b"<stream:stream xmlns='jabber:client'>") == "bad-namespace-prefix"
    assert error_of(b"<stream xmlns='http://etherx.jabber.org/streams'>") == "bad-namespace-prefix"
    p = opened()
    with pytest.raises(StreamError) as info:
        p.feed(b"<message><x:y/></message>")
    assert info.value.condition == "bad-namespace-prefix"


def test_unsupported_version():
    header = HEADER[21:]
    assert error_of(header.replace(b"version='1.0'", b"version='2.0'")) == "unsupported-version"
    for version in (b"1.1", b"0.9", b"1.0", b"x"):
        [ev] = StreamParser().feed(header.replace(b"version='1.0'", b"version='" + version + b"'"))
        assert ev.version == version.decode()
    [ev] = StreamParser().feed(header.replace(b" version='1.0'", b""))
    assert ev.version is None


def test_text_at_stream_level():
    p = opened()
    with pytest.raises(StreamError) as info:
        p.feed(b"  hello ")
    assert info.value.condition == "not-well-formed"


# -- limits --------------------------------------------------------------------------

def test_stanza_at_limit_is_accepted():
    p = opened(max_stanza_size=1000)
    msg = b"<message><body>" + b"x" * 900 + b"</body></message>"
    assert len(stanzas(p.feed(msg))) == 1
    assert len(stanzas(feed_bytewise(p, msg))) == 1


def test_stanza_too_large_in_one_chunk():
    p = opened(max_stanza_size=1000)
    with pytest.raises(StreamError) as info:
        p.feed(b"<message><body>" + b"x" * 2000 + b"</body></message>")
    assert info.value.condition == "policy-violation"
    assert info.value.text == "stanza too large"


def test_stanza_too_large_detected_before_it_ends():
    p = opened(max_stanza_size=1000)
    p.feed(b"<message><body>")
    with pytest.raises(StreamError) as info:
        for _ in range(100):
            p.feed(b"y" * 100)
    assert info.value.condition == "policy-violation"


def test_huge_chunk_detected_without_parsing_it_all():
    p = opened(max_stanza_size=10_000)
    with pytest.raises(StreamError) as info:
        p.feed(b"<message><body>" + b"z" * 5_000_000)
    assert info.value.condition == "policy-violation"


def test_huge_unfinished_start_tag():
    p = opened(max_stanza_size=1000)
    with pytest.raises(StreamError) as info:
        p.feed(b"<message to='" + b"a" * 2000)
    assert info.value.condition == "policy-violation"


def test_limit_is_per_stanza_not_per_stream():
    p = opened(max_stanza_size=500)
    msg = b"<message><body>" + b"x" * 300 + b"</body></message>"
    for _ in range(50):
        assert len(stanzas(p.feed(msg + b" "))) == 1
    # the same, with whitespace keepalives in between over a long time
    for _ in range(600):
        assert p.feed(b" ") == []
    assert len(stanzas(p.feed(msg))) == 1


def test_depth_limit():
    p = opened(max_depth=5)
    ok = b"<a>" * 4 + b"</a>" * 4
    assert len(stanzas(p.feed(b"<message>" + ok + b"</message>"))) == 1
    with pytest.raises(StreamError) as info:
        p.feed(b"<message>" + b"<a>" * 5)
    assert info.value.condition == "policy-violation"


def test_deep_nesting_default_limit():
    p = opened()
    with pytest.raises(StreamError) as info:
        p.feed(b"<message>" + b"<a>" * 100_000)
    assert info.value.condition == "policy-violation"


# -- tiny pieces: no quadratic rescans, no delayed events -----------------------------

def test_event_delivered_on_the_byte_that_completes_it():
    p = opened()
    msg = b"<message note='" + b"n" * 10_000 + b"'><body>" + b"b" * 10_000 + b"</body></message>"
    for i in range(len(msg) - 1):
        assert p.feed(msg[i:i + 1]) == [], i
    [el] = stanzas(p.feed(msg[-1:]))
    assert len(el.get("note")) == 10_000 and len(el[0].text) == 10_000
    # and the next stanza (below the hold-back threshold) is not delayed either
    assert len(stanzas(p.feed(b"<presence/>"))) == 1


def test_huge_attribute_in_tiny_pieces_is_linear():
    import time
    p = opened(max_stanza_size=1_000_000)
    msg = b"<message a='" + b"x" * 600_000 + b"'/>"
    t = time.perf_counter()
    events = []
    for i in range(0, len(msg), 16):
        events += p.feed(msg[i:i + 16])
    elapsed = time.perf_counter() - t
    assert len(stanzas(events)) == 1
    assert elapsed < 5, elapsed  # quadratic rescanning took minutes


def test_held_back_bytes_still_count_against_the_limit():
    p = opened(max_stanza_size=5000)
    p.feed(b"<message a='")
    with pytest.raises(StreamError) as info:
        for _ in range(10_000):
            p.feed(b"x")
    assert info.value.condition == "policy-violation"


def test_errors_in_held_back_bytes_surface_at_next_gt():
    p = opened()
    p.feed(b"<message a='" + b"x" * 5000)
    p.feed(b"\x00")  # invalid, but expat has not seen it yet
    with pytest.raises(StreamError) as info:
        p.feed(b"'/>")
    assert info.value.condition == "not-well-formed"


# -- expat parsers shared between streams (released between stanzas) -----------------

def test_parser_is_released_between_stanzas_and_taken_back_transparently():
    p = opened()
    assert p.released                        # the header is complete: nothing pending
    assert len(stanzas(p.feed(MSG))) == 1 and p.released
    assert p.feed(MSG[:30]) == [] and not p.released     # the next stanza, in pieces
    [el] = stanzas(p.feed(MSG[30:]))
    assert el.tag == "{jabber:client}message" and el.findtext("{jabber:client}body") == "Wherefore art thou?"
    assert p.released and p.stream.to == "example.com"
    assert isinstance(p.feed(b"</stream:stream>")[0], StreamClose)


def test_interleaved_streams_share_parsers_without_mixing():
    a, b = opened(), opened()
    assert a.feed(MSG[:40]) == []            # a keeps its parser: a stanza is pending
    [eb] = stanzas(b.feed(MSG.replace(b"m1", b"m2")))
    [ea] = stanzas(a.feed(MSG[40:]))
    assert (ea.get("id"), eb.get("id")) == ("m1", "m2")
    for i in range(20):                      # many streams, one pool
        [e] = stanzas((a if i % 2 else b).feed(MSG.replace(b"m1", b"x%d" % i)))
        assert e.get("id") == "x%d" % i


def test_no_release_while_something_is_pending():
    p = StreamParser()
    assert not p.release()                   # no stream yet
    p.feed(HEADER)
    p.feed(MSG[:20])                         # inside a start tag
    assert not p.released and not p.release()
    p.feed(MSG[20:60])                       # inside the stanza
    assert not p.released
    p.feed(MSG[60:] + b"<message to='a>b'")  # a '>' inside a pending attribute value
    assert not p.released
    [el] = stanzas(p.feed(b"/>"))
    assert el.get("to") == "a>b" and p.released


def test_streams_with_other_declarations_get_their_own_parsers():
    header = (b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
              b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    s2s = StreamParser(max_stanza_size=200)
    s2s.feed(header)
    c2s = opened()
    [el] = stanzas(s2s.feed(b"<db:result from='a.example' to='b.example'>key</db:result>"))
    assert el.tag == "{jabber:server:dialback}result" and el.text == "key"
    with pytest.raises(StreamError) as info:
        c2s.feed(b"<db:result/>")            # no db prefix on a client stream
    assert info.value.condition == "bad-namespace-prefix"
    [el] = stanzas(s2s.feed(b"<message/>"))
    assert el.tag == "{jabber:server}message"
    with pytest.raises(StreamError) as info:  # limits are the stream's own
        s2s.feed(b"<message><body>" + b"x" * 300 + b"</body></message>")
    assert info.value.condition == "policy-violation"


def test_released_stream_still_refuses_bad_xml():
    for bad, condition in ((b"<!-- a comment --><message/>", "restricted-xml"),
                           (b"<?xml version='1.0'?><message/>", "not-well-formed"),
                           (b"<foo:bar/>", "bad-namespace-prefix"),
                           (b"</wrong>", "not-well-formed")):
        p = opened()
        assert p.released
        with pytest.raises(StreamError) as info:
            p.feed(bad)
        assert info.value.condition == condition, bad
    p = opened()                              # the pool was not poisoned by those
    assert len(stanzas(p.feed(MSG))) == 1

"""The sans-I/O parts of XMPP over WebSocket (RFC 7395) and of the file share's
upload authorizations."""
import time
import xml.etree.ElementTree as ET

from xmppd.http.websocket import FRAMING, frame_header, opening, standalone
from xmppd.xmpp import ns


def test_outgoing_elements_become_documents_of_their_own():
    assert standalone("<message to='a@b'><body>x</body></message>") == \
        "<message xmlns='jabber:client' to='a@b'><body>x</body></message>"
    assert standalone("<iq/>") == "<iq xmlns='jabber:client'/>"
    assert standalone("<presence xmlns='jabber:client'/>") == "<presence xmlns='jabber:client'/>"
    feats = standalone("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
    assert ET.fromstring(feats).tag == f"{{{ns.STREAM}}}features"
    # an element with its own namespace is left alone
    assert standalone("<a xmlns='urn:xmpp:sm:3' h='1'/>") == "<a xmlns='urn:xmpp:sm:3' h='1'/>"
    # a tag that only begins like a stanza's is not one
    assert standalone("<iqx/>") == "<iqx/>" and standalone("<iq") == "<iq"


def test_open_and_close_become_the_stream_header_and_footer():
    header = opening(f"<open xmlns='{FRAMING}' to='example.com' version='1.0' xml:lang='de'/>")
    assert header.startswith(f"<stream:stream xmlns='jabber:client' xmlns:stream='{ns.STREAM}'")
    assert "to='example.com'" in header and "xml:lang='de'" in header and header.endswith(">")
    assert opening(f"<close xmlns='{FRAMING}'/>") == "</stream:stream>"
    assert opening("<open/>") is None                     # not the framing namespace
    assert opening(f"<open xmlns='{FRAMING}' to='a'") is None   # not well-formed


def test_server_frames_are_unmasked_text_frames():
    assert frame_header(4) == b"\x81\x04"
    assert frame_header(200) == b"\x81\x7e\x00\xc8"
    assert frame_header(70000) == b"\x81\x7f" + (70000).to_bytes(8, "big")


def test_upload_tokens_are_signed_and_expire():

    from xmppd.modules.http_file_share import FileShare
    share = FileShare.__new__(FileShare)
    share.secret = b"k"
    good = share.sign({"slot": "s", "exp": int(time.time()) + 60})
    assert share.verify(good)["slot"] == "s"
    body, mac = good.split(".")
    assert share.verify(body + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB")) is None
    assert share.verify(share.sign({"slot": "s", "exp": int(time.time()) - 1})) is None
    other = FileShare.__new__(FileShare)
    other.secret = b"another key"
    assert other.verify(good) is None
    assert share.verify("garbage") is None and share.verify("") is None


def client_frame(payload: bytes, op: int = 1, fin: bool = True, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | op,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    else:
        head += bytes((0x80 | 127,)) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def test_frame_reader_unmasks_and_reassembles():
    import pytest

    from xmppd.http.websocket import FrameError, FrameReader
    r = FrameReader(100_000)
    big = b"<message>" + b"x" * 70_000 + b"</message>"
    data = client_frame(b"<open/>") + client_frame(big) + client_frame(b"hi", op=9)
    got = []
    for i in range(0, len(data), 777):           # any split of the byte stream
        got += r.feed(data[i:i + 777])
    assert got == [(1, b"<open/>"), (1, big), (9, b"hi")]
    # a fragmented message, with a ping between its fragments
    got = r.feed(client_frame(b"<mess", fin=False) + client_frame(b"p", op=9)
                 + client_frame(b"age/>", op=0))
    assert got == [(9, b"p"), (1, b"<message/>")]
    # violations, each with its close code
    for data, code in ((bytes((0x81, 0x02)) + b"hi", 1002),              # not masked
                       (client_frame(b"x", op=3), 1002),                  # reserved opcode
                       (client_frame(b"x" * 200, op=9), 1002),            # long control frame
                       (client_frame(b"x", op=0), 1002),                  # continuation of nothing
                       (client_frame(b"x" * 100_001), 1009)):             # too large
        with pytest.raises(FrameError) as e:
            FrameReader(100_000).feed(data)
        assert e.value.code == code, data[:4]
    # a large frame is refused from its header, before its payload arrives
    with pytest.raises(FrameError) as e:
        FrameReader(1000).feed(bytes((0x81, 0x80 | 127)) + (10 ** 9).to_bytes(8, "big"))
    assert e.value.code == 1009

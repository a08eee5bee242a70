"""A raw client of the extensible SASL profile (XEP-0388), Bind 2 (XEP-0386) and
FAST (XEP-0484) for the tests: it sends what it is told and parses what comes
back, so the tests can send what a broken client would."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
import xml.etree.ElementTree as ET

from scramp import ScramClient

from .rawclient import Raw

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
SASL2 = "urn:xmpp:sasl:2"
BIND2 = "urn:xmpp:bind:0"
FAST = "urn:xmpp:fast:0"
SM = "urn:xmpp:sm:3"
UPGRADE = "urn:xmpp:sasl:upgrade:0"
SCRAM_UPGRADE = "urn:xmpp:scram-upgrade:0"

_TOP = re.compile(rb"<(challenge|success|failure|continue|task-data)\b")


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


async def tls_stream(srv, *, frm: str | None = None) -> tuple[Raw, str]:
    raw = await Raw.connect(srv.port)
    await raw.open()
    await raw.starttls(srv.cafile)
    feats = await raw.open()
    return raw, feats


def authentication(feats: str) -> ET.Element | None:
    m = re.search(r"<authentication xmlns=[\"']urn:xmpp:sasl:2[\"'].*?</authentication>", feats, re.S)
    return ET.fromstring(m.group(0)) if m else None


def end_point(raw: Raw) -> bytes:
    der = raw.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return hashlib.sha256(der).digest()


async def read_element(raw: Raw, timeout: float = 10) -> ET.Element:
    """The next top-level element of the profile the server sends."""
    async def go():
        while True:
            m = _TOP.search(raw.buf)
            if m:
                name = m.group(1)
                start = m.start()
                head_end = raw.buf.find(b">", start)
                if head_end != -1 and raw.buf[head_end - 1:head_end] == b"/":
                    end = head_end + 1
                else:
                    close = raw.buf.find(b"</" + name + b">", start)
                    end = close + len(name) + 3 if close != -1 else -1
                if end != -1:
                    el, raw.buf = raw.buf[start:end], raw.buf[end:]
                    return ET.fromstring(el)
            chunk = await raw.reader.read(65536)
            if not chunk:
                raise ConnectionError(f"closed; got {raw.buf!r}")
            raw.buf += chunk
    return await asyncio.wait_for(go(), timeout)


def authenticate_xml(mech: str, initial: bytes | None, *, ua_id: str | None = None,
                     extra: str = "") -> str:
    ir = f"<initial-response>{b64(initial) if initial else ''}</initial-response>" if initial is not None else ""
    ua = (f"<user-agent id='{ua_id}'><software>tests</software><device>pytest</device></user-agent>"
          if ua_id else "")
    return f"<authenticate xmlns='{SASL2}' mechanism='{mech}'>{ir}{ua}{extra}</authenticate>"


async def scram2(raw: Raw, mech: str, user: str, password: str, *, cb=None, ua_id=None,
                 extra: str = "") -> tuple[ET.Element, ScramClient]:
    """A SCRAM exchange in the extensible profile; returns the element that ends
    it (success, failure or continue), the server's signature checked."""
    client = ScramClient([mech], user, password, channel_binding=cb)
    raw.send(authenticate_xml(mech, client.get_client_first().encode(), ua_id=ua_id, extra=extra))
    el = await read_element(raw)
    if el.tag != q(SASL2, "challenge"):
        return el, client
    client.set_server_first(base64.b64decode(el.text).decode())
    raw.send(f"<response xmlns='{SASL2}'>{b64(client.get_client_final())}</response>")
    el = await read_element(raw)
    if el.tag in (q(SASL2, "success"), q(SASL2, "continue")):
        data = el.findtext(q(SASL2, "additional-data"))
        assert data, "SCRAM's server-final message is the additional data"
        client.set_server_final(base64.b64decode(data).decode())   # verifies the server
    return el, client


def ht_initial(user: str, token: str, cb_data: bytes = b"") -> bytes:
    """HT-SHA-256-*'s initial response (draft-schmaus-kitten-sasl-ht)."""
    proof = hmac.new(token.encode(), b"Initiator" + cb_data, hashlib.sha256).digest()
    return user.encode() + b"\0" + proof


def ht_responder(token: str, cb_data: bytes = b"") -> bytes:
    return hmac.new(token.encode(), b"Responder" + cb_data, hashlib.sha256).digest()


def new_ua() -> str:
    return str(uuid.uuid4())

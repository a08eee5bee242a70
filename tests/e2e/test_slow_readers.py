"""A client that does not read what it is sent cannot grow the server without
limit (``limits = { c2s = { send_buffer = ... } }``): once more than the limit waits
for it, its stream is closed with an error, and what it never took goes where it
would go had it gone offline: offline storage, stream management's queue."""
from __future__ import annotations

import asyncio
import base64
import re
import socket

from slixmpp.exceptions import IqError

from .clients import logged_in, slix_close, slix_connect
from .conftest import start_server
from .rawclient import Raw
from .test_sasl import SASL, tls_stream

LIMIT = 200_000
CONFIG = f'limits = {{ c2s = {{ rate = "10mb/s"; send_buffer = {LIMIT} }} }}\n'
HOST = ('    modules_enabled = { "disco", "ping", "offline", "smacks" }\n'
        '    offline_max_messages = 10000\n')


async def small_buffer_stream(srv) -> Raw:
    """A TLS stream whose socket takes little before it stops acknowledging (16 kB
    receive buffer, no autotuning): on loopback the kernel would otherwise take
    megabytes for a client that never reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", srv.port))
    r, w = await asyncio.open_connection(sock=s, limit=16384)
    raw = Raw(r, w)
    await raw.open()
    await raw.starttls(srv.cafile)
    await raw.open()
    return raw


async def stuck_client(srv, user: str, resource: str, *, sm: str | None = None) -> Raw:
    """A raw client that logs in, says it is available, and then reads nothing."""
    raw = await small_buffer_stream(srv)
    plain = base64.b64encode(f"\0{user}\0secret".encode()).decode()
    raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>")
    assert "<success" in await raw.read_until(b"/>")
    await raw.open()
    raw.send(f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             f"<resource>{resource}</resource></bind></iq>")
    await raw.read_until(b"</iq>")
    if sm:
        raw.send(f"<enable xmlns='urn:xmpp:sm:3' {sm}/>")
        await raw.read_until(b"/>")
    raw.send("<presence><priority>1</priority></presence>")
    await raw.read_until(b"</presence>")
    return raw


def session_of(srv, user, resource):
    return srv.server.hosts["xmppd.test"].sessions_of(user).get(resource)


async def flood(sender, to: str, n: int) -> list[str]:
    ids = []
    pad = "x" * 900
    for i in range(n):
        mid = f"flood{i}"
        ids.append(mid)
        m = sender.make_message(mto=to, mbody=f"{mid} {pad}", mtype="chat")
        m["id"] = mid
        m.send()
        if i % 50 == 0:
            await asyncio.sleep(0)   # let the server route as the messages come
    return ids


async def sent_and_handled(client) -> None:
    """Everything the client queued has reached the server and been handled: slixmpp
    sends in order, the server handles a session's stanzas in order, so the answer
    to one more IQ comes after all of them (without it, the end of a flood could
    still sit in slixmpp's queue when the client disconnects)."""
    iq = client.make_iq_get(queryxmlns="urn:xmpp:ping", ito="xmppd.test")
    try:
        await iq.send(timeout=60)
    except IqError:
        pass     # an error answer proves the same


async def wait_until(cond, timeout=20.0, sample=None):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if sample is not None:
            sample()
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def offline_ids(srv, jid, want: set[str] = frozenset()) -> set[str]:
    """Log in and collect the ids of what arrives until the stream is quiet, or
    until every id of ``want`` has arrived (nothing left to wait for)."""
    got = set()
    c = await slix_connect(srv, jid)
    try:
        while not (want and want <= got):
            try:
                m = await c.next_message(timeout=2)
            except asyncio.TimeoutError:
                break
            got.add(m["id"])
    finally:
        await slix_close(c)
    return got


async def test_a_client_that_does_not_read_is_closed_and_loses_nothing(tmp_path, certs):
    srv = await start_server(tmp_path, certs, CONFIG, host_extra=HOST)
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        bob = await stuck_client(srv, "bob", "stuck")
        peak = [0]

        def sample():   # what the server holds for bob: waiting, and in the transport
            s = session_of(srv, "bob", "stuck")
            if s is not None and s.transport is not None:
                peak[0] = max(peak[0], s._out_size + s.transport.get_write_buffer_size())

        async with logged_in(srv, "alice@xmppd.test/desk") as alice:
            ids = await flood(alice, "bob@xmppd.test/stuck", 3000)   # ~3 MB of messages
            await sent_and_handled(alice)
            await wait_until(lambda: session_of(srv, "bob", "stuck") is None, sample=sample)
        # the server held at most about the limit for the client, and then let go
        assert peak[0] <= 2 * LIMIT
        # what bob's TCP took is in its socket; the rest is in offline storage
        rest = await bob.read_to_close()
        bob.writer.transport.abort()
        assert "<policy-violation" in rest
        in_socket = set(re.findall(r"id='(flood\d+)'", rest)) | set(re.findall(r"id=\"(flood\d+)\"", rest))
        stored = await offline_ids(srv, "bob@xmppd.test/later", set(ids) - in_socket)
        assert len(stored) > 0
        assert set(ids) <= in_socket | stored, f"lost: {len(set(ids) - in_socket - stored)}"
    finally:
        await srv.server.stop()


async def test_with_stream_management_the_session_hibernates_and_resumes(tmp_path, certs):
    srv = await start_server(tmp_path, certs, CONFIG,
                             host_extra=HOST + "    smacks_max_queue_size = 5000\n")
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        bob = await stuck_client(srv, "bob", "phone", sm="resume='true'")
        async with logged_in(srv, "alice@xmppd.test/desk") as alice:
            await flood(alice, "bob@xmppd.test/phone", 3000)
            await wait_until(lambda: (s := session_of(srv, "bob", "phone")) is not None and s.hibernating)
        bob.writer.transport.abort()   # a client that does not read cannot close cleanly
        sess = session_of(srv, "bob", "phone")
        sm = sess.state["smacks"]
        assert len(sm.queue) > 0     # nothing acknowledged: all kept for the client
    finally:
        await srv.server.stop()


async def test_an_account_flooding_itself_with_vcards_is_closed(tmp_path, certs):
    """The report's case: a user asks for its own 28 kB vCard again and again and
    never reads. The stream is closed; another user's pings are still answered."""
    srv = await start_server(tmp_path, certs, CONFIG, host_extra='    modules_enabled = { "disco", "ping", "vcard" }\n')
    try:
        await srv.adduser("mallory@xmppd.test")
        await srv.adduser("carol@xmppd.test")
        photo = base64.b64encode(bytes(range(256)) * 80).decode()   # ~27 kB of base64
        raw, _ = await tls_stream(srv)
        plain = base64.b64encode(b"\0mallory\0secret").decode()
        raw.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>")
        assert "<success" in await raw.read_until(b"/>")
        await raw.open()
        raw.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        await raw.read_until(b"</iq>")
        raw.send(f"<iq type='set' id='v'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>"
                 f"<BINVAL>{photo}</BINVAL></PHOTO></vCard></iq>")
        assert "type='result'" in await raw.read_until(b"id='v'")
        raw.send("".join(f"<iq type='get' id='g{i}'><vCard xmlns='vcard-temp'/></iq>" for i in range(400)))
        host = srv.server.hosts["xmppd.test"]
        await wait_until(lambda: not host.sessions_of("mallory"))
        async with logged_in(srv, "carol@xmppd.test/c", send_presence=False) as carol:
            await carol.plugin["xep_0199"].ping("xmppd.test", timeout=5)
        raw.writer.transport.abort()
    finally:
        await srv.server.stop()

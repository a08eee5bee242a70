"""HTTP File Upload (XEP-0363) on Component "upload.xmppd.test" "http_file_share":
slixmpp's own upload (disco, slot, PUT) against the real server, downloads with
Range, and every bad input answered without changing anything."""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import tracemalloc
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver

from .clients import slix_close, slix_connect
from .conftest import DOMAIN, HTTP, start_server
from .wsclient import client_ssl

UPLOAD = f"upload.{DOMAIN}"
NS = "urn:xmpp:http:upload:0"


def component(options: str = "") -> str:
    return f'Component "{UPLOAD}" "http_file_share"\n' + options


class Loopback(AbstractResolver):
    """Every name is this machine (the test's hosts are not in DNS)."""
    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


def http_client(srv) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=client_ssl(srv.cafile), resolver=Loopback()))


async def share_server(tmp_path, certs, options: str = ""):
    srv = await start_server(tmp_path, certs, extra=HTTP + component(options))
    srv.https = srv.server.ports("https")[0]
    return srv


@pytest.fixture
async def share(tmp_path, certs):
    srv = await share_server(tmp_path, certs)
    try:
        yield srv
    finally:
        await srv.server.stop()


async def request_slot(c, filename, size, ctype="image/jpeg"):
    iq = c.Iq(stype="get", sto=UPLOAD)
    iq.append(ET.fromstring(f"<request xmlns='{NS}' filename='{filename}' size='{size}' "
                            f"content-type='{ctype}'/>"))
    return await iq.send(timeout=10)


def slot_of(res):
    slot = res.xml.find(f"{{{NS}}}slot")
    put = slot.find(f"{{{NS}}}put")
    auth = put.find(f"{{{NS}}}header").text
    return put.get("url"), auth, slot.find(f"{{{NS}}}get").get("url")


async def test_slixmpp_uploads_and_the_file_comes_back_byte_for_byte(share, tmp_path, monkeypatch):
    import slixmpp.plugins.xep_0363.http_upload as http_upload
    await share.adduser(f"alice@{DOMAIN}")
    c = await slix_connect(share, f"alice@{DOMAIN}")
    try:
        c.register_plugin("xep_0363")
        data = os.urandom(300_000)
        src = tmp_path / "photo.jpg"
        src.write_bytes(data)
        # slixmpp's upload as it is, with a connector that trusts the test CA
        monkeypatch.setattr(http_upload, "ClientSession",
                            lambda **kw: aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                                ssl=client_ssl(share.cafile), resolver=Loopback()), **kw))
        url = await c.plugin["xep_0363"].upload_file(src, domain=DOMAIN, timeout=10)
        assert url.startswith(f"https://{UPLOAD}:{share.https}/file_share/")
        async with http_client(share) as http:
            async with http.get(url) as r:
                assert r.status == 200 and await r.read() == data
                assert r.headers["Content-Type"] == "image/jpeg"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Content-Disposition"].startswith("inline;")
                assert "default-src 'none'" in r.headers["Content-Security-Policy"]
                assert r.headers["Access-Control-Allow-Origin"] == "*"
            async with http.get(url, headers={"Range": "bytes=100-199"}) as r:
                assert r.status == 206 and await r.read() == data[100:200]
            async with http.head(url) as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)
    finally:
        await slix_close(c)


async def test_service_is_discovered_with_its_limit(share):
    await share.adduser(f"alice@{DOMAIN}")
    c = await slix_connect(share, f"alice@{DOMAIN}")
    try:
        info = await c.plugin["xep_0030"].get_info(jid=UPLOAD, timeout=10)
        assert NS in info["disco_info"]["features"]
        assert ("store", "file", None, "HTTP File Upload") in info["disco_info"]["identities"]
        form = info.xml.find(".//{jabber:x:data}x")
        values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form}
        assert values == {"FORM_TYPE": NS, "max-file-size": str(10 * 1024 * 1024)}
    finally:
        await slix_close(c)


async def test_bad_uploads_change_nothing(share):
    await share.adduser(f"alice@{DOMAIN}")
    c = await slix_connect(share, f"alice@{DOMAIN}")
    try:
        # too large: file-too-large with the limit
        with pytest.raises(Exception) as e:
            await request_slot(c, "big.bin", 10 * 1024 * 1024 + 1)
        err = e.value.iq.xml.find("{jabber:client}error")
        assert err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
        assert err.findtext(f"{{{NS}}}file-too-large/{{{NS}}}max-file-size") == str(10 * 1024 * 1024)
        # path tricks and nonsense sizes
        for name, size in (("../../etc/passwd", 10), ("a/b", 10), ("ok.txt", -1), ("ok.txt", "x")):
            with pytest.raises(Exception) as e:
                await request_slot(c, name, size)
            assert e.value.iq["error"]["condition"] == "bad-request", (name, size)
        put, auth, get = slot_of(await request_slot(c, "cat.jpg", 1000))
        async with http_client(share) as http:
            # no token, a forged one, another slot's
            async with http.put(put, data=b"x" * 1000) as r:
                assert r.status == 401
            forged = auth[:-4] + ("AAAA" if not auth.endswith("AAAA") else "BBBB")
            async with http.put(put, data=b"x" * 1000, headers={"Authorization": forged}) as r:
                assert r.status == 403
            other = put.rsplit("/", 2)[0] + "/someotherslot0123456789/cat.jpg"
            async with http.put(other, data=b"x" * 1000, headers={"Authorization": auth}) as r:
                assert r.status == 403
            # slots that are paths, or not what the server makes
            base = put.rsplit("/", 2)[0]
            for bad in ("..%2F..%2Fetc%2Fpasswd/x", ".hidden0123456789abc/x", "a%00b0123456789abcdef/x"):
                async with http.get(f"{base}/{bad}") as r:
                    assert r.status == 400, bad
            # the wrong length
            async with http.put(put, data=b"x" * 999, headers={"Authorization": auth}) as r:
                assert r.status == 413
            async with http.get(get) as r:
                assert r.status == 404              # nothing was stored
            # the right one, once
            async with http.put(put, data=b"y" * 1000, headers={"Authorization": auth}) as r:
                assert r.status == 201
            async with http.put(put, data=b"z" * 1000, headers={"Authorization": auth}) as r:
                assert r.status == 409
            async with http.get(get) as r:
                assert await r.read() == b"y" * 1000
            # a browser's preflight for the PUT
            async with http.options(put, headers={"Origin": "https://web.example",
                                                  "Access-Control-Request-Method": "PUT"}) as r:
                assert r.status == 200 and "PUT" in r.headers["Access-Control-Allow-Methods"]
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        files = list((share.server.data_path / "http_file_share" / UPLOAD).iterdir())
        assert [f.name for f in files] == [get.split("/")[-2]]     # no leftovers
    finally:
        await slix_close(c)


async def test_quotas_types_and_strangers(tmp_path, certs):
    srv = await share_server(tmp_path, certs, options="""
        http_file_share_size_limit = 1000
        http_file_share_daily_quota = 2500
        http_file_share_allowed_file_types = { "image/*", "text/plain" }
    """)
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        c = await slix_connect(srv, f"alice@{DOMAIN}")
        try:
            with pytest.raises(Exception) as e:
                await request_slot(c, "a.exe", 10, "application/x-msdownload")
            assert e.value.iq["error"]["condition"] == "not-acceptable"
            await request_slot(c, "1.png", 1000, "image/png")
            await request_slot(c, "2.txt", 1000, "text/plain")
            with pytest.raises(Exception) as e:
                await request_slot(c, "3.png", 1000, "image/png")
            assert e.value.iq["error"]["condition"] == "resource-constraint"
            assert e.value.iq["error"]["type"] == "wait"
        finally:
            await slix_close(c)
    finally:
        await srv.server.stop()


async def test_executable_types_are_downloads_and_files_go_with_the_account(share):
    await share.adduser(f"alice@{DOMAIN}")
    c = await slix_connect(share, f"alice@{DOMAIN}")
    try:
        put, auth, get = slot_of(await request_slot(c, "page.html", 20, "text/html"))
        async with http_client(share) as http:
            async with http.put(put, data=b"<script>1</script>xx", headers={"Authorization": auth}) as r:
                assert r.status == 201
            async with http.get(get) as r:
                assert r.headers["Content-Disposition"].startswith("attachment;")
                assert r.headers["Content-Type"] == "text/html"
    finally:
        await slix_close(c)
    await share.server.accounts.delete(DOMAIN, "alice")
    for _ in range(50):
        if not any((share.server.data_path / "http_file_share" / UPLOAD).iterdir()):
            break
        await asyncio.sleep(0.05)
    async with http_client(share) as http:
        async with http.get(get) as r:
            assert r.status == 404
    assert not any((share.server.data_path / "http_file_share" / UPLOAD).iterdir())


async def test_a_100_mb_upload_streams_to_disk(tmp_path, certs):
    srv = await share_server(tmp_path, certs, options="""
        http_file_share_size_limit = 104857600
    """)
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        c = await slix_connect(srv, f"alice@{DOMAIN}")
        try:
            size = 100 * 1024 * 1024
            put, auth, get = slot_of(await request_slot(c, "big.bin", size, "application/octet-stream"))
            digest = hashlib.sha256()
            block = os.urandom(1024 * 1024)

            async def body():
                for _ in range(100):
                    digest.update(block)
                    yield block
            async with http_client(srv) as http:
                # what Python holds at most while 100 MB go through (client and server
                # are in this process): chunks, never the file
                tracemalloc.start()
                try:
                    async with http.put(put, data=body(), headers={
                            "Authorization": auth, "Content-Length": str(size)}) as r:
                        assert r.status == 201
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                assert peak < 16 * 1024 * 1024, peak
                got = hashlib.sha256()
                async with http.get(get) as r:
                    async for chunk in r.content.iter_chunked(1 << 20):
                        got.update(chunk)
            assert got.hexdigest() == digest.hexdigest()
        finally:
            await slix_close(c)
    finally:
        await srv.server.stop()


async def test_files_are_served_for_the_component_name_only(tmp_path, certs):
    srv = await start_server(tmp_path, certs, extra=HTTP + component(),
                             host_extra='modules_enabled = { "disco", "websocket" }\n')
    try:
        await srv.adduser(f"alice@{DOMAIN}")
        c = await slix_connect(srv, f"alice@{DOMAIN}")
        try:
            put, auth, get = slot_of(await request_slot(c, "a.txt", 3, "text/plain"))
        finally:
            await slix_close(c)
        async with http_client(srv) as http:
            async with http.put(put, data=b"abc", headers={"Authorization": auth}) as r:
                assert r.status == 201
            async with http.get(get) as r:
                assert await r.read() == b"abc"
            # the same path under another host's name, or a name no host has: nothing
            for name in (DOMAIN, "nowhere.test"):
                async with http.get(get, headers={"Host": name}) as r:
                    assert r.status == 404, name
    finally:
        await srv.server.stop()


async def test_expired_files_are_deleted(share):
    import time
    await share.adduser(f"alice@{DOMAIN}")
    c = await slix_connect(share, f"alice@{DOMAIN}")
    try:
        put, auth, get = slot_of(await request_slot(c, "old.txt", 3, "text/plain"))
    finally:
        await slix_close(c)
    async with http_client(share) as http:
        async with http.put(put, data=b"old", headers={"Authorization": auth}) as r:
            assert r.status == 201
        svc = share.server.hosts[UPLOAD].provided("http_file_share")
        assert await svc.expire(now=time.time() + 6 * 86400) == 0      # a week by default
        assert await svc.expire(now=time.time() + 8 * 86400) == 1
        async with http.get(get) as r:
            assert r.status == 404
    assert not any((share.server.data_path / "http_file_share" / UPLOAD).iterdir())

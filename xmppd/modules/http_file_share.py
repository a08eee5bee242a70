"""HTTP File Upload (XEP-0363), Prosody's ``mod_http_file_share``: phones and web
clients send pictures and files by asking this component for a slot, PUTting the
file over HTTPS and sending its URL.

    Component "upload.falcot.com" "http_file_share"

A slot request (``<request xmlns='urn:xmpp:http:upload:0' filename size
content-type/>``) from a local user gets a PUT URL with a signed ``Authorization``
header valid for ten minutes, and the GET URL. The upload is streamed to disk under
``data_path`` (never held in memory), must have the size asked for, and may be made
once. Downloads support ``Range`` and ``HEAD`` and are served safely: the type
given at upload, ``nosniff``, a content security policy that runs nothing, and
``Content-Disposition: attachment`` for types a browser could execute. Files expire
after ``http_file_share_expires_after`` and go with their uploader's account.

Prosody's options, names and defaults; errors as Prosody gives them (``file-too-large``
with the limit, ``resource-constraint`` for quotas, ``not-acceptable`` for a type
not allowed).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from xmppd.moduleapi import HttpRoute, Option, parse_period
from xmppd.xmpp import disco, forms, ns
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import InvalidJID, split as jid_split

PROTOCOLS = ["XEP-0363"]
NS = "urn:xmpp:http:upload:0"
STORE = "http_file_share"
TOKEN_TTL = 600           # seconds a slot's PUT authorization lasts
CHUNK = 64 * 1024
EXPIRY_EVERY = 3600       # seconds between expiry runs
_SLOT = re.compile(r"[A-Za-z0-9_-]{16,64}")

OPTIONS = [
    Option("http_file_share_size_limit", "integer", 10 * 1024 * 1024, "both",
           "largest file, in bytes (10 MiB)", min=0, limit=True),
    Option("http_file_share_daily_quota", "integer", None, "both",
           "bytes one user may upload in 24 hours (default: 10 times the size limit)",
           min=0, limit=True),
    Option("http_file_share_global_quota", "integer", None, "both",
           "bytes all files together may take (default: unlimited)", min=0, limit=True),
    Option("http_file_share_expires_after", "any", "1w", "both",
           "how long files are kept (\"1w\", \"30d\", \"never\")"),
    Option("http_file_share_allowed_file_types", "list", [], "both",
           "MIME types that may be uploaded (\"image/*\" for a family); empty: any"),
    Option("http_file_share_safe_file_types", "list",
           ["image/*", "video/*", "audio/*", "text/plain"], "both",
           "types shown in the browser (inline); any other is a download (attachment)"),
    Option("http_file_share_access", "list", [], "both",
           "JIDs or domains that may upload besides the users of this server's hosts"),
    Option("http_file_share_base_url", "string", None, "both",
           "the URL files are reached at, when a proxy serves them elsewhere"),
    Option("http_file_share_secret", "string", None, "both",
           "key the upload authorizations are signed with (default: random at each start)"),
]

SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; media-src 'self'; frame-ancestors 'none';",
    "X-Frame-Options": "DENY",
    "Cache-Control": "max-age=31556952, immutable",
    "Access-Control-Allow-Origin": "*",
}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "7200",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def type_matches(ctype: str, patterns) -> bool:
    family = ctype.split("/", 1)[0] + "/*"
    return ctype in patterns or family in patterns


class FileShare:
    """The slots, the files on disk and their limits, for one component."""

    def __init__(self, m, root: Path):
        self.m = m
        self.host = m.host.name
        self.root = root
        self.store = m.open_store(STORE, "archive")
        get = m.get_option
        self.size_limit = int(get("http_file_share_size_limit"))
        daily = get("http_file_share_daily_quota")
        self.daily_quota = int(daily) if daily is not None else self.size_limit * 10
        total = get("http_file_share_global_quota")
        self.global_quota = int(total) if total is not None else None
        try:
            self.expires = parse_period(get("http_file_share_expires_after"))
        except ValueError as exc:
            raise m.option_error("http_file_share_expires_after", str(exc)) from None
        self.allowed = set(get("http_file_share_allowed_file_types") or ())
        self.safe = set(get("http_file_share_safe_file_types") or ())
        self.access = {str(a).lower() for a in get("http_file_share_access") or ()}
        secret = get("http_file_share_secret")
        self.secret = (secret or secrets.token_urlsafe(32)).encode()
        self.base_url = get("http_file_share_base_url")
        self.total: int | None = None      # bytes of every slot, read once then kept
        self.lock = asyncio.Lock()

    # -- slots ----------------------------------------------------------------
    def may_upload(self, uploader: str) -> bool:
        domain = uploader.split("@", 1)[-1]
        local = self.m.server.hosts.get(domain)
        return ((local is not None and local.is_virtualhost)
                or uploader in self.access or domain in self.access)

    async def used_today(self, uploader: str, now: float) -> int:
        items = await self.store.query(None, with_jid=uploader, start=now - 86400)
        return sum(int(i.value.get("size", 0)) for i in items)

    async def total_used(self) -> int:
        if self.total is None:
            self.total = sum(int(i.value.get("size", 0)) for i in await self.store.query(None))
        return self.total

    async def request_slot(self, event) -> ET.Element:
        req = event.payload
        sender = event.stanza.get("from") or ""
        try:
            node, domain, _ = jid_split(sender)
        except InvalidJID:
            raise StanzaError("bad-request", "no sender") from None
        uploader = f"{node}@{domain}" if node else domain
        if not self.may_upload(uploader):
            raise StanzaError("forbidden", "only users of this server may upload files here")
        filename = req.get("filename") or ""
        if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
            raise StanzaError("bad-request", "Invalid filename")
        try:
            size = int(req.get("size", ""))
        except ValueError:
            size = -1
        if size < 0:
            raise StanzaError("bad-request", "File size must be positive integer")
        if size > self.size_limit:
            too = ET.Element(f"{{{NS}}}file-too-large")
            ET.SubElement(too, f"{{{NS}}}max-file-size").text = str(self.size_limit)
            raise StanzaError("not-acceptable", "File too large", app=too)
        ctype = (req.get("content-type") or "application/octet-stream").strip().lower()
        if self.allowed and not type_matches(ctype, self.allowed):
            raise StanzaError("not-acceptable", "File type not allowed")
        now = time.time()
        async with self.lock:
            total = await self.total_used()
            if self.global_quota is not None and total + size > self.global_quota:
                self.m.log.warning("global storage quota reached: %d of %d bytes", total,
                                   self.global_quota)
                raise StanzaError("resource-constraint", "Server global storage quota reached",
                                  type="wait")
            if await self.used_today(uploader, now) + size > self.daily_quota:
                raise StanzaError("resource-constraint", "Daily quota reached", type="wait")
            slot = secrets.token_urlsafe(18)
            await self.store.append(None, {"filename": filename, "size": size, "type": ctype},
                                    with_jid=uploader, when=now, key=slot)
            self.total = total + size
        self.m.log.info("upload slot for %s: %s, %d bytes", uploader, filename, size)
        url = self.url(slot, filename)
        token = self.sign({"slot": slot, "sub": uploader, "size": size, "type": ctype,
                           "exp": int(now) + TOKEN_TTL})
        out = ET.Element(f"{{{NS}}}slot")
        put = ET.SubElement(out, f"{{{NS}}}put", url=url)
        ET.SubElement(put, f"{{{NS}}}header", name="Authorization").text = f"Bearer {token}"
        ET.SubElement(out, f"{{{NS}}}get", url=url)
        return out

    def url(self, slot: str, filename: str) -> str:
        base = self.base_url or self.m.server.http.url(self.m.host, "file_share")
        return f"{base.rstrip('/')}/{slot}/{quote(filename)}"

    def sign(self, claims: dict) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def verify(self, token: str) -> dict | None:
        body, _, mac = token.partition(".")
        try:
            good = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(good, _unb64(mac)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < time.time():
            return None
        return claims

    # -- files ----------------------------------------------------------------
    def path(self, slot: str) -> Path:
        return self.root / slot

    async def handle(self, request) -> web.StreamResponse:
        raw = request.raw
        slot, _, _name = request.path.partition("/")
        if raw.method == "OPTIONS":
            return web.Response(status=200, headers=CORS)
        if not _SLOT.fullmatch(slot):      # what request_slot makes: never a path
            return _error(400, "Invalid upload slot")
        if raw.method == "PUT":
            return await self.upload(request, slot)
        if raw.method in ("GET", "HEAD"):
            return await self.download(slot)
        return _error(405, "Method not allowed", {"Allow": "GET, HEAD, PUT, OPTIONS"})

    async def upload(self, request, slot: str) -> web.StreamResponse:
        raw = request.raw
        auth = raw.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "Missing or malformed Authorization header",
                          {"WWW-Authenticate": "Bearer"})
        claims = self.verify(auth[7:].strip())
        if claims is None or claims.get("slot") != slot:
            return _error(403, "Unauthorized or invalid token")
        size = int(claims["size"])
        if raw.content_length is not None and raw.content_length != size:
            return _error(413, f"File size must be {size} bytes, as requested")
        target = self.path(slot)
        part = target.with_name(slot + ".part")
        if target.exists():
            return _error(409, "Upload already completed")
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            return _error(409, "Upload in progress")
        got = 0
        ok = False
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in raw.content.iter_chunked(CHUNK):
                    got += len(chunk)
                    if got > size:
                        break
                    await asyncio.to_thread(f.write, chunk)
                if got == size:
                    await asyncio.to_thread(f.flush)
                    await asyncio.to_thread(os.fsync, f.fileno())
                    ok = True
            if ok:
                await asyncio.to_thread(os.replace, part, target)
        finally:
            if not ok:
                await asyncio.to_thread(_unlink, part)
        if not ok:
            return _error(413 if got > size else 400,
                          f"File size must be {size} bytes, as requested (got {got})")
        self.m.log.info("uploaded %s (%d bytes) for %s", slot, size, claims.get("sub"))
        return web.Response(status=201, headers={"Access-Control-Allow-Origin": "*"})

    async def download(self, slot: str) -> web.StreamResponse:
        item = await self.store.get(None, slot)
        target = self.path(slot)
        if item is None:
            return _error(404, "Not found")
        if not await asyncio.to_thread(target.is_file):
            return _error(404 if time.time() - item.when < TOKEN_TTL else 410, "Not available")
        meta = item.value
        ctype = meta.get("type") or "application/octet-stream"
        disposition = "inline" if type_matches(ctype, self.safe) else "attachment"
        headers = dict(SAFE_HEADERS)
        headers["Content-Type"] = ctype
        headers["Content-Disposition"] = (f"{disposition}; filename*=UTF-8''"
                                          f"{quote(meta.get('filename') or slot)}")
        return web.FileResponse(target, headers=headers)

    # -- housekeeping -----------------------------------------------------------
    async def delete(self, items) -> int:
        n = 0
        for item in items:
            await asyncio.to_thread(_unlink, self.path(item.key))
            await asyncio.to_thread(_unlink, self.path(item.key + ".part"))
            await self.store.delete(None, key=item.key)
            if self.total is not None:
                self.total -= int(item.value.get("size", 0))
            n += 1
        return n

    async def expire(self, now: float | None = None) -> int:
        if self.expires is None:
            return 0
        now = time.time() if now is None else now
        old = await self.store.query(None, end=now - self.expires)
        n = await self.delete(old)
        if n:
            self.m.log.info("%d expired files deleted", n)
        return n

    async def account_deleted(self, ev) -> None:
        jid = f"{ev['user']}@{ev['host']}"
        n = await self.delete(await self.store.query(None, with_jid=jid))
        if n:
            self.m.log.info("%d files of deleted account %s deleted", n, jid)

    def disco_info(self, event):
        if event.payload.get("node"):
            raise StanzaError("item-not-found")
        host = event.host
        return disco.info(host.identities, host.features, host.disco_extensions)


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def _error(status: int, text: str, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain",
                        headers={"Access-Control-Allow-Origin": "*", **(headers or {})})


def setup(m) -> None:
    share = FileShare(m, m.server.data_path / "http_file_share" / m.host.name)
    m.add_identity("store", "file", "HTTP File Upload")
    for var in (NS, ns.DISCO_INFO):
        m.add_feature(var)
    m.add_extension(forms.build(NS, [forms.Field("max-file-size", "text-single",
                                                 share.size_limit)], type="result"))
    m.hook_iq("get", ns.DISCO_INFO, "query", share.disco_info)
    m.hook_iq("get", NS, "request", share.request_slot)
    m.add_item("http-route", HttpRoute("file_share", "/file_share", share.handle))
    m.hook_global("account-deleted", share.account_deleted)
    m.add_timer(EXPIRY_EVERY, share.expire, repeat=True)
    m.add_timer(5, share.expire)
    m.provide(share)

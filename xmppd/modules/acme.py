"""Certificates obtained and renewed by xmppd itself (ACME, RFC 8555), as ejabberd's
``acme``: set the option and every VirtualHost gets a certificate from Let's Encrypt
(or any ACME CA) naming it and its components, renewed before it expires.

::

    acme = { contact = "mailto:admin@falcot.com" }

The CA checks each name with an HTTP-01 challenge: it fetches
``http://NAME/.well-known/acme-challenge/TOKEN``, which xmppd's HTTP service answers.
So port 80 of every name must reach it: ``http_ports = { 80 }`` and
``http_interfaces = { "*", "::" }`` (the unit allows binding port 80 with
``CAP_NET_BIND_SERVICE``), or a web server in front proxying that path to port 5280.

Certificates and the account key live in ``data_path/acme`` (0600); the server
serves them before the ``certificates`` directory and loads each new one at once
(``core/certificates.py``). A host whose ``ssl`` option names its own files is left
alone. Uses the ``acme`` library (certbot's, ``python3-acme``), in a thread.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import logging
from pathlib import Path

from xmppd.moduleapi import HttpRoute, Option, write_private

SCOPE = "global"
PROTOCOLS = ["RFC 8555"]

log = logging.getLogger("xmppd.acme")

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
CHECK_EVERY = 12 * 3600          # seconds between renewal checks
RETRY_FIRST, RETRY_MAX = 600, 86400

OPTIONS = [
    Option("acme", "any", None, "global",
           "obtain and renew certificates by ACME: a table { contact = \"mailto:...\"; "
           "directory = URL (default Let's Encrypt); ca_file = PEM file trusted for the "
           "directory's HTTPS (a private CA); renew_before = days (default 30); "
           "key_type = \"ec\" or \"rsa\" }, or true (no contact); false: off"),
]

KEYS = {"contact", "directory", "ca_file", "renew_before", "key_type"}


class Settings:
    def __init__(self, m, value):
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise m.option_error("acme", "expected true, false or a table like "
                                 "{ contact = \"mailto:admin@example.com\" }")
        unknown = set(value) - KEYS
        if unknown:
            raise m.option_error("acme", f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                                 f"(known: {', '.join(sorted(KEYS))})")
        contact = value.get("contact", ())
        self.contact = tuple([contact] if isinstance(contact, str) else contact)
        for c in self.contact:
            if not isinstance(c, str) or ":" not in c:
                raise m.option_error("acme", f"contact {c!r} is not a URL like "
                                     f"\"mailto:admin@example.com\"")
        self.directory = str(value.get("directory", LETS_ENCRYPT))
        ca_file = value.get("ca_file")
        self.verify = str(m.server.resolve_path(ca_file)) if ca_file else True
        try:
            self.renew_before = float(value.get("renew_before", 30))
        except (TypeError, ValueError):
            raise m.option_error("acme", "renew_before must be a number of days") from None
        self.key_type = value.get("key_type", "ec")
        if self.key_type not in ("ec", "rsa"):
            raise m.option_error("acme", "key_type must be \"ec\" or \"rsa\"")


def setup(m) -> None:
    value = m.get_option("acme")
    if value in (None, False):
        return
    settings = Settings(m, value)
    tokens: dict[str, str] = {}      # token -> key authorization, while a CA checks

    async def challenge(request):
        from aiohttp import web
        token = request.path.rsplit("/", 1)[-1]
        answer = tokens.get(token)
        if answer is None:
            return web.Response(status=404, text="No such challenge.\n", content_type="text/plain")
        log.info("ACME: %s fetched the challenge for %s", request.remote,
                 request.raw.host or "?")
        return web.Response(text=answer, content_type="application/octet-stream")

    m.add_item("http-route", HttpRoute("acme_challenge", "/.well-known/acme-challenge", challenge))
    renewer = Renewer(m, settings, tokens)
    m.hook("server-listening", renewer.start)
    m.on_unload(renewer.stop)
    if m.server.listeners:      # loaded by a reload: the server listens already
        asyncio.get_running_loop().create_task(renewer.start())


class Renewer:
    def __init__(self, m, settings: Settings, tokens: dict):
        self.m = m
        self.server = m.server
        self.settings = settings
        self.tokens = tokens
        self.task: asyncio.Task | None = None
        self.retry: dict[str, float] = {}      # host -> seconds to wait after a failure

    async def start(self, _server=None) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run(), name="acme")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def run(self) -> None:
        while True:
            delay = CHECK_EVERY
            for host, names in self.wanted().items():
                try:
                    if await asyncio.to_thread(self.needs_certificate, host, names):
                        await self.obtain(host, names)
                    self.retry.pop(host, None)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    wait = min(self.retry.get(host, RETRY_FIRST / 2) * 2, RETRY_MAX)
                    self.retry[host] = wait
                    delay = min(delay, wait)
                    log.error("ACME: no certificate for %s from %s: %s; trying again in %d min",
                              ", ".join(names), self.settings.directory, _reason(exc), wait // 60)
            await asyncio.sleep(delay)

    def wanted(self) -> dict[str, list[str]]:
        """VirtualHost -> the names its certificate must carry (it, its components)."""
        cfg = self.server.config
        out: dict[str, list[str]] = {}
        hosts = [h for h in self.server.hosts.values()]
        for h in hosts:
            if not h.is_virtualhost or _own_files(cfg, h.name):
                continue
            names = [h.name] + sorted(c.name for c in hosts if not c.is_virtualhost
                                      and c.name.endswith("." + h.name)
                                      and not _own_files(cfg, c.name))
            out[h.name] = names
        return out

    def needs_certificate(self, host: str, names: list[str]) -> bool:
        from cryptography import x509
        crt, _key = self.server.obtained_certificate_files(host)
        try:
            cert = x509.load_pem_x509_certificates(crt.read_bytes())[0]
        except (OSError, ValueError):
            return True
        try:
            have = set(cert.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            have = set()
        if not set(names) <= have:
            log.info("ACME: the certificate for %s lacks %s; asking for a new one", host,
                     ", ".join(sorted(set(names) - have)))
            return True
        left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
        if left < datetime.timedelta(days=self.settings.renew_before):
            log.info("ACME: the certificate for %s expires on %s; renewing", host,
                     f"{cert.not_valid_after_utc:%Y-%m-%d}")
            return True
        return False

    async def obtain(self, host: str, names: list[str]) -> None:
        log.info("ACME: asking %s for a certificate for %s", self.settings.directory, ", ".join(names))
        account = self.server.data_path / "acme" / "account.json"
        fullchain, key_pem = await asyncio.to_thread(
            obtain, self.settings, account, names, self.tokens, self.server.version)
        for name in names:
            crt, key = self.server.obtained_certificate_files(name)
            write_private(key, key_pem, 0o600)
            write_private(crt, fullchain, 0o644)
        from cryptography import x509
        until = x509.load_pem_x509_certificates(fullchain)[0].not_valid_after_utc
        log.info("ACME: certificate for %s obtained, valid until %s", ", ".join(names), f"{until:%Y-%m-%d}")
        for r in await self.server.reload_certificates():
            if r["error"]:
                log.error("ACME: the new certificate for %s cannot be used: %s",
                          ", ".join(r["names"]), r["error"])


def _own_files(cfg, name: str) -> bool:
    ssl = cfg.get("ssl", host=name)
    return isinstance(ssl, dict) and bool(ssl.get("certificate")) and bool(ssl.get("key"))


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


# -- the ACME exchange (blocking: runs in a thread) --------------------------------------

def _account_key(path: Path):
    import josepy as jose
    from cryptography.hazmat.primitives.asymmetric import rsa
    try:
        saved = json.loads(path.read_text())
        return jose.JWKRSA.json_loads(json.dumps(saved["key"])), saved.get("uri")
    except (OSError, ValueError, KeyError):
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jose.JWKRSA(key=key), None


def _save_account(path: Path, jwk, uri: str) -> None:
    write_private(path, json.dumps({"key": jwk.to_json(), "uri": uri}).encode(), 0o600)


def _certificate_key(key_type: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    key = ec.generate_private_key(ec.SECP256R1()) if key_type == "ec" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def obtain(settings: Settings, account_path: Path, names: list[str], tokens: dict,
           version: str) -> tuple[bytes, bytes]:
    """``(fullchain PEM, key PEM)`` for ``names`` by HTTP-01; ``tokens`` is what the
    HTTP route answers while the CA checks."""
    from acme import challenges, client, crypto_util, errors, messages
    jwk, uri = _account_key(account_path)
    net = client.ClientNetwork(jwk, user_agent=f"xmppd/{version}", verify_ssl=settings.verify)
    directory = client.ClientV2.get_directory(settings.directory, net)
    acme = client.ClientV2(directory, net)
    if uri:
        net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
    else:
        new = messages.NewRegistration(contact=settings.contact, terms_of_service_agreed=True)
        try:
            regr = acme.new_account(new)
        except errors.ConflictError as exc:      # the key has an account already
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            net.account = regr
        _save_account(account_path, jwk, regr.uri)
        log.info("ACME: account %s registered at %s", regr.uri, settings.directory)
    key_pem = _certificate_key(settings.key_type)
    order = acme.new_order(crypto_util.make_csr(key_pem, names))
    published = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            chall = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                         None)
            if chall is None:
                raise RuntimeError(f"the CA offers no HTTP-01 challenge for {authz.body.identifier.value}")
            response, validation = chall.response_and_validation(jwk)
            token = chall.chall.encode("token")
            tokens[token] = validation
            published.append(token)
            acme.answer_challenge(chall, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=120)
        try:
            order = acme.poll_and_finalize(order, deadline)
        except errors.ValidationError as exc:
            problems = []
            for authz in exc.failed_authzrs:
                for c in authz.body.challenges:
                    if c.error is not None:
                        problems.append(f"{authz.body.identifier.value}: {c.error.detail or c.error}")
            raise RuntimeError("the CA could not check "
                               + "; ".join(problems or ["the names"])
                               + " (is port 80 of each name served by xmppd's HTTP service?)") from None
    finally:
        for token in published:
            tokens.pop(token, None)
    return order.fullchain_pem.encode(), key_pem

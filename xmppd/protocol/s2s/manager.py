"""Federation: outgoing links, the streams, policy (RFC 6120 §13, XEP-0178/0368).

* Routing: the router fires the global ``route/remote`` event for any domain not
  served here (local hosts and components are never looked up in DNS); the manager
  takes the stanza and hands it to the outgoing link for (sender's host, remote domain).
* A link connects on first use: SRV/A/AAAA resolution (``net/dns.py``), each
  candidate in turn (and, if the certificate chain does not validate but the domain
  may use dialback, the same address again without the chain check). While it
  connects, stanzas wait in a bounded queue and go out in order once the link is
  authenticated. If every candidate fails, each queued stanza is bounced with
  ``remote-server-not-found`` (``remote-server-timeout`` after a timeout) — never an
  error or an IQ result, which the router refuses to answer.
* Links and incoming streams idle for ``s2s_idle_timeout`` seconds are closed.
* A link whose stream drops while stanzas wait (queued meanwhile, or handed to the
  stream but never written to the socket) connects once more and sends them; if that
  fails they are bounced. Stanzas already written are not tracked (no XEP-0198 on
  s2s): a connection lost with data in flight loses it.
* Bidirectional streams (XEP-0288, negotiated by the ``s2s_bidi`` module): an
  incoming stream on which the peer asked for bidi becomes the link for the reverse
  of each pair it authenticated (no second connection); an outgoing one that
  negotiated it also receives.
* Policy: ``s2s_require_encryption``, ``s2s_secure_auth``, ``s2s_insecure_domains``,
  ``s2s_secure_domains``; trust anchors from ``ssl = { cafile = ..., capath = ... }``
  (else the system store).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import ssl
import time
from typing import TYPE_CHECKING

import dns.exception

from ...core import events as ev
from ...net.dns import NoService, S2SResolver
from ...net.peercert import client_context, identity_matches, server_context
from ...xmpp.errors import StanzaError, StreamError
from ...xmpp.jid import InvalidJID, split
from .incoming import IncomingStream
from .outgoing import OutgoingStream
from .stream import S2SFailure, S2SStream

if TYPE_CHECKING:
    from ...core.server import Server

log = logging.getLogger("xmppd.s2s")

QUEUE_LIMIT = 1000   # stanzas waiting for one link while it connects


class OutgoingLink:
    """Stanzas from one local domain to one remote domain."""

    def __init__(self, manager: "S2SManager", local: str, remote: str):
        self.manager = manager
        self.local = local
        self.remote = remote
        self.queue: collections.deque = collections.deque()
        self.session: S2SStream | None = None         # authenticated
        self.stream_session: OutgoingStream | None = None  # usable before authentication
        self.stream_event = asyncio.Event()
        self.failure: Exception | None = None
        self.task: asyncio.Task | None = None
        self.attempts: list[str] = []
        self.reconnects = 0   # after an established stream dropped with stanzas waiting

    def send(self, stanza) -> bool:
        sess = self.session
        if sess is not None and not sess.closing:
            sess.send(stanza)
            return True
        if len(self.queue) >= QUEUE_LIMIT:
            return False
        self.queue.append(stanza)
        self.start()
        return True

    def start(self) -> None:
        """Connect, unless connecting already (or, done before, once the stream
        it made has gone)."""
        if self.task is not None and not self.task.done():
            return
        if self.task is not None and self.session is not None and not self.session.closing:
            return
        self.attempts = []
        self.failure = None
        self.stream_event.clear()
        self.stream_session = None
        self.task = asyncio.get_running_loop().create_task(self._run())

    def use(self, sess: S2SStream) -> None:
        """Send over ``sess`` (an incoming bidirectional stream) from now on."""
        self.session = sess
        while self.queue and not sess.closing:
            sess.send(self.queue.popleft())

    def lost(self, sess: S2SStream) -> bool:
        """``sess``, this link's stream, is gone: connect again if stanzas are waiting
        (the ones it never wrote first). False: nothing waits, the link can go."""
        self.session = None
        unsent = sess.take_unsent()
        self.queue.extendleft(reversed(unsent))
        if not self.queue:
            return False
        self.reconnects += 1
        log.info("s2s %s -> %s: stream lost with %d stanza(s) waiting; connecting again",
                 self.local, self.remote, len(self.queue))
        self.start()
        return True

    async def _run(self) -> None:
        try:
            sess = await self._connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            timeout = isinstance(exc, S2SFailure) and exc.timeout
            self._failed(exc, "remote-server-timeout" if timeout else "remote-server-not-found")
            return
        self.session = sess
        log.info("s2s %s -> %s established (%s, %s%s)", self.local, self.remote, sess.auth_method, sess.target,
                 ", bidirectional" if sess.bidi else "")
        while self.queue and not sess.closing:
            sess.send(self.queue.popleft())

    async def _connect(self) -> OutgoingStream:
        m = self.manager
        loop = asyncio.get_running_loop()
        try:
            targets = await m.resolver.targets(self.remote)
        except NoService:
            raise S2SFailure(f"{self.remote} publishes no XMPP server service") from None
        except dns.exception.Timeout:
            raise S2SFailure(f"DNS lookup for {self.remote} timed out", timeout=True) from None
        except dns.exception.DNSException as exc:
            raise S2SFailure(f"DNS lookup for {self.remote} failed: {exc}") from None
        last: Exception = S2SFailure(f"no address found for {self.remote}")
        for target in targets:
            try:
                addrs = await m.resolver.addresses(target.host)
            except dns.exception.DNSException as exc:
                last = S2SFailure(f"{target.host}: {exc}")
                continue
            if not addrs:
                last = S2SFailure(f"{target.host} has no address")
            for addr in addrs:
                verify = True
                while True:
                    self.attempts.append(f"{addr}:{target.port}{' tls' if target.direct_tls else ''}"
                                         f"{'' if verify else ' (no chain check)'}")
                    sess = OutgoingStream(m, local=self.local, remote=self.remote,
                                          direct_tls=target.direct_tls, verify_chain=verify,
                                          target=f"{target.host}[{addr}]:{target.port}")
                    ctx = m.client_tls_context(self.local, verify=verify, direct_tls=True) \
                        if target.direct_tls else None
                    try:
                        await asyncio.wait_for(loop.create_connection(
                            lambda: sess, addr, target.port, ssl=ctx,
                            server_hostname=self.remote if ctx else None,
                            ssl_handshake_timeout=m.timeout if ctx else None), m.timeout)
                    except ssl.SSLCertVerificationError as exc:
                        if verify and not m.secure_required(self.local, self.remote):
                            verify = False
                            continue
                        last = S2SFailure(f"certificate of {self.remote} does not validate: "
                                          f"{exc.verify_message}")
                        raise last from None
                    except asyncio.TimeoutError:
                        last = S2SFailure(f"{addr}:{target.port}: connection timed out", timeout=True)
                        break
                    except (OSError, ssl.SSLError) as exc:
                        last = S2SFailure(f"{addr}:{target.port}: {exc.strerror or exc}"
                                          if isinstance(exc, OSError) else f"{addr}:{target.port}: {exc}")
                        break
                    sess.stream_ready.add_done_callback(lambda f, s=sess: self._stream_ready(s, f))
                    try:
                        return await sess.ready
                    except S2SFailure as f:
                        sess.close()
                        last = f
                        if f.retry_insecure and verify:
                            verify = False
                            continue
                        if f.final:
                            raise
                        break
        raise last

    def _stream_ready(self, sess: OutgoingStream, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.stream_session = sess
            self.stream_event.set()

    def _failed(self, exc: Exception, condition: str) -> None:
        log.info("s2s %s -> %s failed: %s (tried %s)", self.local, self.remote, exc,
                 ", ".join(self.attempts) or "nothing")
        self.failure = exc
        self.stream_event.set()
        self.manager.drop_link(self)
        queued, self.queue = list(self.queue), collections.deque()
        router = self.manager.server.router
        text = f"{self.remote}: {exc}"
        for stanza in queued:
            asyncio.get_running_loop().create_task(router.bounce(stanza, StanzaError(condition, text)))

    async def stream(self) -> OutgoingStream:
        """Our own outgoing stream to the remote server, usable once TLS is up (for a
        module's exchanges such as dialback verification; never an incoming
        bidirectional stream, XEP-0288 §2)."""
        sess = self.stream_session
        if sess is not None and not sess.closing:
            return sess
        self.start()
        await asyncio.wait_for(self.stream_event.wait(), self.manager.timeout * 2)
        sess = self.stream_session
        if sess is None or sess.closing:
            raise S2SFailure(str(self.failure or "no stream"))
        return sess


class S2SManager:
    def __init__(self, server: "Server"):
        self.server = server
        cfg = server.config
        self.timeout = float(cfg.get("s2s_timeout", default=90))
        self.idle_timeout = float(cfg.get("s2s_idle_timeout", default=300))
        self.stanza_size_limit = int(cfg.get("s2s_stanza_size_limit", default=524288))
        self.resolver = S2SResolver(list(cfg.get("dns_nameservers", default=None) or ()) or None,
                                    timeout=min(self.timeout, 10.0))
        # a secret made at each start, for keys bound to streams (dialback, XEP-0185)
        self.dialback_secret = secrets.token_bytes(32)
        self.links: dict[tuple[str, str], OutgoingLink] = {}
        self._stopping = False
        self.sessions: set[S2SStream] = set()
        self._contexts: dict[tuple, ssl.SSLContext] = {}
        self._cert_names: dict[str, str | None] = {}
        self._idle_handle: asyncio.TimerHandle | None = None

    # -- policy -------------------------------------------------------------------
    def _opt(self, name: str, local: str | None, default):
        v = self.server.config.get(name, host=local if local in self.server.hosts else None)
        return default if v is None else v

    def secure_required(self, local: str | None, remote: str | None) -> bool:
        """Must ``remote`` prove itself with a valid certificate (no dialback-only)?"""
        if remote and remote in set(self._opt("s2s_insecure_domains", local, ()) or ()):
            return False
        if remote and remote in set(self._opt("s2s_secure_domains", local, ()) or ()):
            return True
        return bool(self._opt("s2s_secure_auth", local, True))

    def require_encryption(self, local: str | None) -> bool:
        return bool(self._opt("s2s_require_encryption", local, True))

    def can_tls(self, local: str | None) -> bool:
        return bool(self.server.certs)

    def can_tls_out(self, local: str | None) -> bool:
        return True

    def cert_name(self, local: str | None) -> str | None:
        """The name whose certificate ``local`` presents: its own, else (a component
        such as ``conference.example.com``) the nearest parent domain's, if that
        certificate is valid for ``local`` (a ``*.example.com`` or explicit name)."""
        certs = self.server.certs
        if not local or not certs:
            return None
        if certs.has_name(local):
            return local
        cached = self._cert_names.get(local, False)
        if cached is not False:
            return cached
        found = None
        parent = local
        while "." in parent and found is None:
            parent = parent.split(".", 1)[1]
            if certs.has_name(parent) and identity_matches(certs.cert_der_for(parent), local):
                found = parent
        self._cert_names[local] = found
        return found

    def has_certificate(self, local: str | None) -> bool:
        return self.cert_name(local) is not None

    def _trust(self, local: str | None) -> tuple[str | None, str | None]:
        ssl_opt = self._opt("ssl", local, None)
        if not isinstance(ssl_opt, dict):
            ssl_opt = self._opt("ssl", None, None)
        if not isinstance(ssl_opt, dict):
            return None, None
        cafile, capath = ssl_opt.get("cafile"), ssl_opt.get("capath")
        return (str(self.server.resolve_path(cafile)) if cafile else None,
                str(self.server.resolve_path(capath)) if capath else None)

    def _request_client_cert(self, local: str | None) -> bool:
        # See net/peercert.py: asking for a certificate refuses peers with invalid ones.
        return bool(self._opt("s2s_secure_auth", local, True)) and not self._opt("s2s_insecure_domains", local, ())

    def server_tls_context(self, local: str | None, *, direct_tls: bool = False) -> ssl.SSLContext:
        key = ("server", local, direct_tls)
        ctx = self._contexts.get(key)
        if ctx is None:
            cert, keyfile = self.server.certs.files_for(self.cert_name(local) or local)
            cafile, capath = self._trust(local)
            ctx = server_context(str(cert), str(keyfile), request_cert=self._request_client_cert(local),
                                 cafile=cafile, capath=capath, direct_tls=direct_tls)
            self._contexts[key] = ctx
        return ctx

    def client_tls_context(self, local: str | None, *, verify: bool, direct_tls: bool = False) -> ssl.SSLContext:
        key = ("client", local, verify, direct_tls)
        ctx = self._contexts.get(key)
        if ctx is None:
            cert = keyfile = None
            if self.has_certificate(local):
                cert, keyfile = self.server.certs.files_for(self.cert_name(local))
            cafile, capath = self._trust(local)
            ctx = client_context(cert, keyfile, verify=verify, cafile=cafile, capath=capath,
                                 direct_tls=direct_tls)
            self._contexts[key] = ctx
        return ctx

    def _direct_tls_listener_context(self) -> ssl.SSLContext:
        """Direct TLS (XEP-0368): SNI picks the host's s2s context."""
        hosts = [h for h in self.server.hosts if self.server.certs.has_name(h)] or [None]
        ctx = server_context(*map(str, self.server.certs.files_for(hosts[0])),
                             request_cert=self._request_client_cert(None),
                             cafile=self._trust(None)[0], capath=self._trust(None)[1], direct_tls=True)

        def sni(sslobj, name, _ctx):
            if name and name in self.server.hosts:
                try:
                    sslobj.context = self.server_tls_context(name, direct_tls=True)
                except Exception:
                    log.exception("s2s SNI: no context for %r", name)
            return None
        ctx.sni_callback = sni
        return ctx

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Once listening: close idle streams from now on."""
        if self.idle_timeout > 0:
            self._schedule_idle()

    def _schedule_idle(self) -> None:
        period = max(1.0, min(self.idle_timeout / 4, 30.0))
        self._idle_handle = asyncio.get_running_loop().call_later(period, self._check_idle)

    def _check_idle(self) -> None:
        now = time.monotonic()
        for sess in list(self.sessions):
            if now - sess.last_activity > self.idle_timeout and (sess.authenticated or sess.pairs):
                log.info("%r: idle for %ds; closing", sess, int(now - sess.last_activity))
                sess.close()
        self._schedule_idle()

    async def stop(self) -> None:
        self._stopping = True
        if self._idle_handle:
            self._idle_handle.cancel()
        for link in list(self.links.values()):
            if link.task:
                link.task.cancel()
        self.links.clear()
        for sess in list(self.sessions):
            sess.stream_error(StreamError("system-shutdown"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while self.sessions and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for sess in list(self.sessions):       # peers that do not read what is left
            if sess.transport is not None:
                sess.transport.abort()

    # -- sessions and links --------------------------------------------------------
    def add_session(self, sess: S2SStream) -> None:
        self.sessions.add(sess)

    def remove_session(self, sess: S2SStream) -> None:
        self.sessions.discard(sess)
        if sess.direction == "out":
            keys = [(sess.local, sess.remote)]
        else:  # an incoming bidirectional stream may carry links too
            keys = [(local, remote) for remote, local in sess.pairs] if sess.bidi else []
        for key in keys:
            link = self.links.get(key)
            if link is not None and link.session is sess:
                if self._stopping or not link.lost(sess):
                    self.drop_link(link)

    def bidi_incoming(self, sess: IncomingStream, local: str, remote: str) -> None:
        """XEP-0288: ``remote`` asked for bidi and is authenticated on ``sess``:
        stanzas from ``local`` to it go over that stream unless a link already works."""
        link = self.link(local, remote)
        if link.session is None or link.session.closing:
            log.info("s2s %s -> %s over %r (bidirectional)", local, remote, sess)
            link.use(sess)

    def drop_link(self, link: OutgoingLink) -> None:
        if self.links.get((link.local, link.remote)) is link:
            del self.links[(link.local, link.remote)]

    def link(self, local: str, remote: str) -> OutgoingLink:
        link = self.links.get((local, remote))
        if link is None:
            link = self.links[(local, remote)] = OutgoingLink(self, local, remote)
        return link

    async def route_remote(self, sev):
        """``route/remote``: a stanza for a domain not served here."""
        stanza = sev.stanza
        if getattr(sev.origin, "kind", None) in ("s2sin", "s2sout"):
            log.info("dropping a %s from %s for %s: servers do not relay", stanza.tag,
                     stanza.get("from"), sev.to_domain)
            return ev.HANDLED
        try:
            local = split(stanza.get("from") or "")[1]
        except InvalidJID:
            local = ""
        if local not in self.server.hosts:
            log.info("dropping a %s for %s: its 'from' (%s) is not a local domain", stanza.tag,
                     sev.to_domain, stanza.get("from"))
            return ev.HANDLED
        if not self.link(local, sev.to_domain).send(stanza):
            await self.server.router.bounce(stanza, StanzaError("resource-constraint",
                                                                "too many stanzas waiting for this server"))
        return ev.HANDLED

    async def stream_to(self, local: str, remote: str) -> OutgoingStream:
        """Our outgoing stream from ``local`` to ``remote``, connected (TLS up) but
        maybe not yet authenticated: where a module asks the remote server something
        (dialback's ``db:verify``). Raises S2SFailure if it cannot be had."""
        return await self.link(local, remote).stream()

    def describe(self) -> list[dict]:
        """Live s2s streams (for ``xmppctl s2s`` / admin tools)."""
        return [s.describe() for s in sorted(self.sessions, key=lambda s: (s.direction, s.local or "",
                                                                          s.remote or ""))]

    def status(self, server) -> dict:
        """The s2s counts of ``xmppctl status``."""
        streams = self.describe()
        return {"s2s": len(streams), "s2s_in": sum(1 for s in streams if s["direction"] == "in"),
                "s2s_out": sum(1 for s in streams if s["direction"] == "out")}

    def metrics(self) -> list:
        """The s2s part of the metrics (a ``metrics`` item): connections (also by
        Prosody's mod_s2s names) and how many remote domains have a stream each way."""
        from ...core.metrics import MetricFamily
        count = {"in": 0, "out": 0}
        remotes: dict[str, set] = {"in": set(), "out": set()}
        prosody: dict[tuple[str, str, str], list[int]] = {}
        for sess in self.sessions:
            d = sess.direction
            count[d] = count.get(d, 0) + 1
            authed = sess.authenticated if d == "out" else bool(sess.pairs)
            if authed:
                if d == "out":
                    remotes[d].add(sess.remote)
                else:
                    remotes[d].update(r for r, _local in sess.pairs)
            t = sess.kind + ("" if authed else "_unauthed")
            v = prosody.setdefault((d, sess.local or "", t), [0, 0])
            v[1 if ":" in (sess.address or "") else 0] += 1
        conns = MetricFamily("xmppd_connections", "gauge", "")
        conns.add(count["in"], listener="s2s_in").add(count["out"], listener="s2s_out")
        inbound = MetricFamily("prosody_mod_s2s__connections_inbound", "gauge",
                               "Established incoming s2s connections")
        outbound = MetricFamily("prosody_mod_s2s__connections_outbound", "gauge",
                                "Established outgoing s2s connections")
        for (d, host, t), (v4, v6) in sorted(prosody.items()):
            fam = inbound if d == "in" else outbound
            fam.add(v4, host=host, type=t, ip_family="ipv4").add(v6, host=host, type=t,
                                                                   ip_family="ipv6")
        domains = MetricFamily("xmppd_s2s_remote_domains", "gauge",
                               "Remote domains with an authenticated server-to-server stream, "
                               "by direction")
        domains.add(len(remotes["in"]), direction="in").add(len(remotes["out"]), direction="out")
        return [conns, inbound, outbound, domains]

    def certificates_reloaded(self, _reports) -> None:
        """TLS contexts are built from the certificate files on demand: forget them."""
        self._contexts.clear()
        self._cert_names.clear()

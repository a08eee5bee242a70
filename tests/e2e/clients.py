"""Real client libraries, connected to the test server."""
from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError

TIMEOUT = 10


class SlixClient(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives."""

    def __init__(self, jid, password, *, plugins=("xep_0030", "xep_0199", "xep_0092", "xep_0202")):
        super().__init__(jid, password)
        for p in plugins:
            self.register_plugin(p)
        self.messages: asyncio.Queue = asyncio.Queue()
        self.presences: asyncio.Queue = asyncio.Queue()
        self.stream_errors: list = []
        self.errors: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("message_error", self.errors.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)
        self.add_event_handler("stream_error", self.stream_errors.append)

    async def next_message(self, timeout=TIMEOUT):
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_error(self, timeout=TIMEOUT):
        return await asyncio.wait_for(self.errors.get(), timeout)


async def slix_connect(srv, jid, password="secret", *, send_presence=True, priority=None,
                       direct_tls=False, **kw) -> SlixClient:
    c = await _session(srv, jid, password, direct_tls=direct_tls, **kw)
    if send_presence:
        try:
            await announce(c, priority)
        except BaseException:
            await abandon(c)
            raise
    return c


async def _session(srv, jid, password="secret", *, direct_tls=False, **kw) -> SlixClient:
    """A client whose session has started (TLS, SASL, bind), not yet available."""
    c = SlixClient(jid, password, **kw)
    c.ca_certs = srv.cafile
    if direct_tls:
        c.enable_direct_tls = True
        c.enable_starttls = False
    started = asyncio.get_running_loop().create_future()
    failed = []

    def on_start(_):
        if not started.done():
            started.set_result(True)

    def on_fail(ev=None):
        failed.append(ev)
        if not started.done():
            started.set_exception(AuthFailed(str(ev)))

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("failed_all_auth", on_fail)
    c.connect("127.0.0.1", srv.tls_port if direct_tls else srv.port)
    try:
        await asyncio.wait_for(started, TIMEOUT)
    except BaseException:
        await abandon(c)
        raise
    return c


async def abandon(c) -> None:
    """Close a client that failed to start, and wait until it is closed: a
    transport left for the garbage collector is reported ('unclosed transport')
    in whichever later test collects it."""
    try:
        await asyncio.wait_for(c.disconnect(wait=1), 3)
    except BaseException:
        pass
    transport = getattr(c, "transport", None)
    if transport is not None and not transport.is_closing():
        transport.abort()


async def announce(c, priority=None) -> None:
    """Send initial presence and wait for it to come back."""
    if priority is not None:
        c.send_presence(ppriority=priority)
    else:
        c.send_presence()
    # our own presence comes back (RFC 6121 §4.2.2): wait for it, so the
    # session is known available before the test goes on
    while True:
        p = await asyncio.wait_for(c.presences.get(), TIMEOUT)
        if p["from"] == c.boundjid:
            break


class AuthFailed(Exception):
    pass


async def register_connect(srv, jid, password="secret", *, plugins, before=None, outcome=None):
    """A slixmpp client (with ``plugins``, xep_0077 among them) that registers ``jid``
    in-band (XEP-0077), then logs in with it. ``outcome`` gets what the server said to
    each step; ``await before(c, outcome)`` runs first, when registration is offered.
    A refused login raises :class:`AuthFailed`."""
    c = SlixClient(jid, password, plugins=plugins)
    c.ca_certs = srv.cafile
    outcome = outcome if outcome is not None else []
    started = asyncio.get_running_loop().create_future()

    async def on_register(_form):
        if before is not None:
            await before(c, outcome)
        iq = c.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = c.boundjid.user
        iq["register"]["password"] = password
        try:
            await iq.send(timeout=TIMEOUT)
            outcome.append("registered")
        except IqError as e:
            outcome.append(e.iq["error"]["condition"])

    c.add_event_handler("register", on_register)
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    # the first refused mechanism ends it: slixmpp would try each of the others,
    # every failure answered later than the last (core/limits.py), seconds for nothing
    c.add_event_handler("failed_auth",
                        lambda _=None: started.done() or started.set_exception(AuthFailed()))
    c.add_event_handler("failed_all_auth",
                        lambda _=None: started.done() or started.set_exception(AuthFailed()))
    c.connect("127.0.0.1", srv.port)
    try:
        await asyncio.wait_for(started, TIMEOUT)
    except BaseException:
        c.disconnect()
        raise
    return c


async def slix_close(*clients):
    """Close each stream (``</stream:stream>``) and wait for the server's reply."""
    await asyncio.gather(*(asyncio.wait_for(c.disconnect(wait=2), 5) for c in clients),
                         return_exceptions=True)


class Login:
    """One client of :func:`logged_in` with options of its own:
    ``Login("bob@xmppd.test/low", priority=1)``: ``password``, ``connect`` and
    any keyword of :func:`slix_connect` (or of the ``connect`` function)."""

    def __init__(self, jid: str, password: str | None = None, *, connect=None, **options):
        self.jid = jid
        self.password = password
        self.connect = connect
        self.options = options

    def __repr__(self):
        return f"Login({self.jid!r}, {self.options!r})"


@contextlib.asynccontextmanager
async def logged_in(srv, *logins, password=None, connect=None, parallel=True, **options):
    """Log clients in, yield them, and close them all (as :func:`slix_close`)
    when the block ends, whether it fails or not::

        async with logged_in(srv, "alice@xmppd.test/phone", "bob@xmppd.test") as (a, b):
            ...
        async with logged_in(srv, "alice@xmppd.test", send_presence=False) as a:
            ...

    One login yields the client itself, several a tuple in the order given. Each
    login is a JID or a :class:`Login` with options of its own; ``password`` and
    ``options`` (``send_presence``, ``priority``, ``direct_tls``, ``plugins``, ...)
    apply to every login that does not set them itself.

    With the default :func:`slix_connect`, the streams are opened (TLS, SASL,
    bind) in parallel, then each client's initial presence is sent and awaited
    one after the other, in the order given, with a :func:`round_trip` between
    two: what each client sees of the others' presence is what one-by-one logins
    would give. They connect one by one with ``parallel=False``, when two logins
    ask for the same full JID (a resource conflict), and with another connection
    function: ``connect=`` (``pep_connect``, ``imhelpers.connect``, ...), called
    as ``connect(srv, jid, **options)``, for all logins or, in a
    ``Login(..., connect=...)``, one. If a login fails, the clients already
    connected are closed and the error is raised."""
    specs = [x if isinstance(x, Login) else Login(x) for x in logins]
    if not specs:
        raise TypeError("logged_in needs at least one JID")
    kws, fns = [], [spec.connect or connect or slix_connect for spec in specs]
    for spec in specs:
        kw = {**options, **spec.options}
        pw = spec.password if spec.password is not None else password
        if pw is not None:
            kw["password"] = pw
        kws.append(kw)
    clients: list = []
    try:
        if (parallel and len(specs) > 1 and all(fn is slix_connect for fn in fns)
                and _distinct([s.jid for s in specs])):
            await _parallel(srv, specs, kws, clients)
        else:
            for spec, kw, fn in zip(specs, kws, fns):
                clients.append(await fn(srv, spec.jid, **kw))
        yield clients[0] if len(specs) == 1 else tuple(clients)
    finally:
        await slix_close(*clients)


def _distinct(jids) -> bool:
    """No two logins ask for the same resource of the same account."""
    full = [j for j in jids if "/" in j]
    return len(full) == len(set(full))


async def _parallel(srv, specs, kws, clients: list) -> None:
    sessions = []
    for kw in kws:
        kw = dict(kw)
        kw.pop("send_presence", None)
        kw.pop("priority", None)
        sessions.append(kw)
    got = await asyncio.gather(*(_session(srv, spec.jid, **kw) for spec, kw in zip(specs, sessions)),
                               return_exceptions=True)
    clients.extend(c for c in got if not isinstance(c, BaseException))
    for c in got:
        if isinstance(c, BaseException):
            raise c
    announcing = [(c, kw.get("priority")) for c, kw in zip(clients, kws) if kw.get("send_presence", True)]
    for i, (c, priority) in enumerate(announcing):
        await announce(c, priority)
        if i < len(announcing) - 1:
            # what the server does on this initial presence (the other resources'
            # presence sent to it, offline messages, ...) is over before the next
            # one: one by one, the next login's TLS and SASL would leave it the time
            await round_trip(c)


async def round_trip(c) -> None:
    """An IQ to the client's server and its answer (an error will do): a server
    handles a stream's stanzas in order, so it is done with those sent before."""
    iq = c.make_iq_get(ito=c.boundjid.domain)
    iq.append(ET.Element("{urn:xmpp:ping}ping"))
    with contextlib.suppress(IqError):
        await iq.send(timeout=TIMEOUT)

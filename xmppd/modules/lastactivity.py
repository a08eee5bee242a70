"""Last Activity (XEP-0012).

* to the server: its uptime in seconds;
* to an account's bare JID: seconds since its last resource went offline and
  the status text of that last unavailable presence; ``0`` while it is online.
  Only for the account itself and for contacts subscribed to its presence
  (subscription ``from``/``both`` in its roster), otherwise ``forbidden`` (a
  check of its own: contacts may ask, so it is not the declared own-account one);
  ``item-not-found`` when it never logged out (nor exists);
* to a full JID: routed to that client (the router does it).

Logouts are recorded in the ``lastactivity`` keyval store.

As Prosody's mod_uptime (whose name loads this module), the server's uptime is
also an ad-hoc command (node ``uptime``, "Get uptime", for anyone), listed when
the ``adhoc`` module is loaded.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from xmppd.moduleapi import EARLY, AdhocCommand, stanza_event
from xmppd.moduleapi import roster as rs
from xmppd.xmpp import commands, ns
from xmppd.xmpp.errors import StanzaError

PROTOCOLS = ["XEP-0012"]
OPTIONS: list = []
STORE = "lastactivity"
STATUS = ns.q(ns.CLIENT, "status")


def last_query(seconds: float, text: str | None = None) -> ET.Element:
    q = ET.Element(ns.q(ns.LAST, "query"), {"seconds": str(max(0, int(seconds)))})
    if text:
        q.text = text
    return q


def server_uptime(event):
    return last_query(time.time() - event.host.server.started_at)


def uptime_text(started_at: float, now: float) -> str:
    """Prosody's sentence: days, hours and minutes, and since when."""
    t = int(now - started_at)
    minutes, hours, days = t // 60 % 60, t // 3600 % 24, t // 86400

    def n(v, unit):
        return f"{v} {unit}{'' if v == 1 else 's'}"
    since = time.strftime("%c", time.localtime(started_at))
    return (f"This server has been running for {n(days, 'day')}, {n(hours, 'hour')} and "
            f"{n(minutes, 'minute')} (since {since})")


def uptime_command(request):
    return commands.completed(info=uptime_text(request.host.server.started_at, time.time()))


class LastActivity:
    """The logout records of one host, and the status text of each resource's
    last unavailable presence (kept until the resource goes)."""

    def __init__(self, host, store):
        self.host = host
        self.store = store
        self.last_status: dict[tuple[str, str], str] = {}

    def online(self, user: str, *, besides=None) -> bool:
        return any(s.available for s in self.host.sessions_of(user).values() if s is not besides)

    async def account_last(self, event):
        host = self.host
        user = event.user
        if event.from_bare != f"{user}@{host.name}":
            sub = await host.roster.subscription(user, event.from_bare)
            if not rs.sends_presence_to(sub):
                raise StanzaError("forbidden", "you are not subscribed to this account's presence")
        if self.online(user):
            return last_query(0)
        rec = await self.store.get(user)
        if rec is None:
            raise StanzaError("item-not-found")
        return last_query(time.time() - rec.get("t", time.time()), rec.get("s"))

    async def note_status(self, sev):
        """The client's presence broadcast: keep the status text of an unavailable
        one for the record; and if it was the account's last available resource,
        the account went offline now (as Prosody counts it), even if the
        connection stays open."""
        sess = sev.origin
        if getattr(sess, "kind", None) != "c2s":
            return
        key = (sess.username, sess.resource)
        ptype = sev.stanza.get("type")
        if ptype is None:
            self.last_status.pop(key, None)
        elif ptype == "unavailable":
            status = sev.stanza.find(STATUS)
            text = status.text if status is not None and status.text else None
            if text:
                self.last_status[key] = text
            if not self.online(sess.username, besides=sess):
                await self.store.set(sess.username, {"t": time.time(), "s": text})

    async def unbound(self, arg):
        """``resource-unbind``: the last resource going records the logout."""
        sess, _exc = arg
        user = sess.username
        if user is None:
            return
        status = self.last_status.pop((user, sess.resource), None)
        if any(s is not sess for s in self.host.sessions_of(user).values()):
            return  # not the last resource
        await self.store.set(user, {"t": time.time(), "s": status})


def setup(m) -> None:
    last = LastActivity(m.host, m.open_store(STORE, "keyval"))
    m.add_feature(ns.LAST)
    m.add_feature(ns.LAST, to="account")
    m.hook_iq("get", ns.LAST, "query", server_uptime)
    m.hook_iq("get", ns.LAST, "query", last.account_last, to=("bare",))
    m.hook(stanza_event("presence", "broadcast"), last.note_status, EARLY)
    m.hook("resource-unbind", last.unbound)
    m.add_item("adhoc", AdhocCommand("uptime", "Get uptime", uptime_command, admin_only=False))

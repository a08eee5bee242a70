"""Last Activity (XEP-0012).

* to the server: its uptime in seconds;
* to an account's bare JID: seconds since its last resource went offline and
  the status text of that last unavailable presence; ``0`` while it is online.
  Only for the account itself and for contacts subscribed to its presence
  (subscription ``from``/``both`` in its roster), otherwise ``forbidden``;
  ``item-not-found`` when it never logged out (nor exists);
* to a full JID: routed to that client (the router does it).

Logouts are recorded in the ``lastactivity`` keyval store.
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from xmppd.core import events as ev
from xmppd.xmpp.errors import StanzaError

from xmppd.moduleapi import roster as rs

PROTOCOLS = ["XEP-0012"]
OPTIONS: list = []
NS = "jabber:iq:last"
STORE = "lastactivity"


def _query(seconds: float, text: str | None = None) -> ET.Element:
    q = ET.Element(f"{{{NS}}}query", {"seconds": str(max(0, int(seconds)))})
    if text:
        q.text = text
    return q


def setup(m) -> None:
    host = m.host
    store = m.open_store(STORE, "keyval")
    m.add_feature(NS)
    m.add_feature(NS, to="account")
    # status text of each resource's last unavailable presence
    last_status: dict[tuple[str, str], str] = {}

    def server_uptime(event):
        return _query(time.time() - m.server.started_at)

    async def account_last(event):
        user = event.to_node
        if event.from_bare != f"{user}@{host.name}":
            sub = await host.roster.subscription(user, event.from_bare)
            if not rs.sends_presence_to(sub):
                raise StanzaError("forbidden", "you are not subscribed to this account's presence")
        if any(s.available for s in host.sessions_of(user).values()):
            return _query(0)
        rec = await store.get(user)
        if rec is None:
            raise StanzaError("item-not-found")
        return _query(time.time() - rec.get("t", time.time()), rec.get("s"))

    async def note_status(sev):
        # the client's unavailable broadcast: keep its status text for the record,
        # and if it was the account's last available resource, the account went
        # offline now (as Prosody counts it), even if the connection stays open
        sess = sev.origin
        if getattr(sess, "kind", None) != "c2s":
            return None
        if sev.stanza.get("type") is None:
            last_status.pop((sess.username, sess.resource), None)
        elif sev.stanza.get("type") == "unavailable":
            status = sev.stanza.find("{jabber:client}status")
            text = status.text if status is not None and status.text else None
            if text:
                last_status[(sess.username, sess.resource)] = text
            if not any(s.available for s in host.sessions_of(sess.username).values() if s is not sess):
                await store.set(sess.username, {"t": time.time(), "s": text})
        return None

    async def unbound(arg):
        sess, _exc = arg
        user = sess.username
        if user is None:
            return
        status = last_status.pop((user, sess.resource), None)
        if any(s is not sess for s in host.sessions_of(user).values()):
            return  # not the last resource
        await store.set(user, {"t": time.time(), "s": status})

    m.hook_iq("get", NS, "query", server_uptime)
    m.hook_iq("get", NS, "query", account_last, to=("bare",))
    m.hook(ev.stanza_event("presence", "broadcast"), note_status, ev.EARLY)
    m.hook("resource-unbind", unbound)

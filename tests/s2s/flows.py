"""IM flows between two servers, the same against xmppd, Prosody and ejabberd: a
presence subscription both ways with presence, probes and unavailable crossing, and a
remote user in a MUC room. A "srv" is anything ``tests.e2e.clients.slix_connect``
takes (``port``, ``tls_port``, ``cafile``) with a ``clients`` list."""
from __future__ import annotations

import asyncio

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.clients import slix_close, slix_connect
from tests.e2e.imhelpers import connect, drain, next_push, presence_from

T = 20  # seconds for anything that crosses servers
AVAILABLE = {"available", "chat", "away", "xa", "dnd"}  # slixmpp's type is the <show/>
MUC_PLUGINS = ("xep_0030", "xep_0045", "xep_0004", "xep_0199")


async def subscription_both_ways(sa, ja: str, sb, jb: str, wait_both=None) -> None:
    """``ja`` (on ``sa``) and ``jb`` subscribe to each other, ending in ``both``
    (``wait_both()``, if given, checks the stored state); presence changes cross both
    ways; a logout crosses as unavailable and a new login's probe is answered."""
    ca = await connect(sa, ja)
    cb = await connect(sb, jb)

    ca.send_presence_subscription(jb)
    jid, item, _ = await next_push(ca, T)
    assert jid == jb and item["ask"] == "subscribe"
    p = await presence_from(cb, ja, "subscribe", timeout=T)
    assert str(p["from"]) == ja
    cb.send_presence_subscription(ja, ptype="subscribed")
    await presence_from(ca, jb, "subscribed", timeout=T)
    assert (await presence_from(ca, cb.boundjid, timeout=T))["type"] in AVAILABLE

    cb.send_presence_subscription(ja)
    await presence_from(ca, jb, "subscribe", timeout=T)
    ca.send_presence_subscription(jb, ptype="subscribed")
    await presence_from(cb, ja, "subscribed", timeout=T)
    assert (await presence_from(cb, ca.boundjid, timeout=T))["type"] in AVAILABLE
    for c, other in ((ca, jb), (cb, ja)):
        while True:  # the push that makes it "both"
            jid, item, _ = await next_push(c, T)
            if jid == other and item["subscription"] == "both":
                break
    if wait_both is not None:
        await wait_both()
    drain(ca)
    drain(cb)

    ca.send_presence(pshow="away", pstatus="lunch")
    p = await presence_from(cb, ca.boundjid, timeout=T)
    assert p["show"] == "away" and p["status"] == "lunch"
    cb.send_presence(pshow="dnd")
    assert (await presence_from(ca, cb.boundjid, timeout=T))["show"] == "dnd"

    # each logs out and back in: unavailable crosses, the new session's probe is
    # answered by the other server, and the other side sees the new session
    ca = await relogin(sa, ja, ca, cb)
    await relogin(sb, jb, cb, ca)


async def relogin(srv, jid: str, c, other):
    old = str(c.boundjid)
    await slix_close(c)
    srv.clients.remove(c)
    await presence_from(other, old, "unavailable", timeout=T)
    c = await connect(srv, jid)
    assert (await presence_from(c, other.boundjid, timeout=T))["type"] in AVAILABLE
    assert (await presence_from(other, c.boundjid, timeout=T))["type"] in AVAILABLE
    return c


async def muc_client(srv, jid: str):
    c = await slix_connect(srv, jid, plugins=MUC_PLUGINS)
    srv.clients.append(c)
    c.muc_presences = asyncio.Queue()
    c.add_event_handler("groupchat_presence", c.muc_presences.put_nowait)
    c.groupchat = asyncio.Queue()
    c.register_handler(Callback("groupchat", MatchXPath("{jabber:client}message"),
                                lambda m: m["type"] == "groupchat" and c.groupchat.put_nowait(m)))
    return c


async def next_matching(queue: asyncio.Queue, pred, timeout=T):
    async def loop():
        while True:
            item = await queue.get()
            if pred(item):
                return item
    return await asyncio.wait_for(loop(), timeout)


async def create_instant_room(c, room: str, nick: str) -> None:
    muc = c.plugin["xep_0045"]
    await muc.join_muc_wait(room, nick, maxstanzas=0, timeout=T)
    await muc.set_room_config(room, c.plugin["xep_0004"].make_form("submit"), timeout=T)


async def remote_joins_room(local_srv, local_jid: str, remote_srv, remote_jid: str, room: str) -> None:
    """``local_jid`` creates ``room`` on its server's MUC service (nick "Local");
    ``remote_jid``, from the other server, joins as "Remote"; they exchange groupchat
    messages both ways; the remote occupant leaves and the local one sees it."""
    local = await muc_client(local_srv, local_jid)
    await create_instant_room(local, room, "Local")
    r = await muc_client(remote_srv, remote_jid)
    pres, _, occupants, _ = await r.plugin["xep_0045"].join_muc_wait(room, "Remote", maxstanzas=0,
                                                                      timeout=T)
    assert 110 in set(pres["muc"]["status_codes"])
    assert f"{room}/Local" in [str(p["from"]) for p in occupants]
    p = await next_matching(local.muc_presences, lambda p: str(p["from"]) == f"{room}/Remote")
    assert p["muc"]["role"] == "participant"
    local.send_message(mto=room, mbody="hello remote", mtype="groupchat")
    m = await next_matching(r.groupchat, lambda m: m["body"] == "hello remote")
    assert str(m["from"]) == f"{room}/Local"
    r.send_message(mto=room, mbody="hello local", mtype="groupchat")
    m = await next_matching(local.groupchat, lambda m: m["body"] == "hello local")
    assert str(m["from"]) == f"{room}/Remote"
    r.plugin["xep_0045"].leave_muc(room, "Remote")
    await next_matching(local.muc_presences,
                        lambda p: str(p["from"]) == f"{room}/Remote" and p["type"] == "unavailable")

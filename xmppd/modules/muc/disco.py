"""Service Discovery (XEP-0030, XEP-0045 §6) of the MUC service and its rooms,
built with ``xmppd.xmpp.disco``.

The service (the component's domain) answers with its identity and features and
lists its public rooms; a room answers with what ``Room.disco_info`` gathers from
its features (``muc-disco#info``). Queries on a node get ``item-not-found`` (the
room's ``x-roomuser-item`` node is ``register``'s, hooked before this).
"""
from __future__ import annotations

from functools import partial

from xmppd.xmpp import disco, ns
from xmppd.xmpp.errors import StanzaError

from .events import room_iq_event


def setup(m, service) -> None:
    m.add_identity("conference", "text", service.name)
    for var in (ns.MUC, ns.DISCO_INFO, ns.DISCO_ITEMS):
        m.add_feature(var)
    m.hook_iq("get", ns.DISCO_INFO, "query", service_info)
    m.hook_iq("get", ns.DISCO_ITEMS, "query", partial(service_items, service))
    m.hook(room_iq_event("get", ns.DISCO_INFO, "query"), room_info)
    m.hook(room_iq_event("get", ns.DISCO_ITEMS, "query"), room_items)


def _no_node(payload) -> None:
    if payload.get("node"):
        raise StanzaError("item-not-found")


def service_info(event):
    _no_node(event.payload)
    host = event.host
    return disco.info(host.identities, host.features, host.disco_extensions)


async def service_items(service, event):
    """§6.3: the public rooms (not hidden, not locked), once the stored ones are loaded."""
    await service.ready.wait()
    return disco.items((r.jid, None, r.config.name or None) for r in service.public_rooms())


def room_info(event):
    _no_node(event.payload)
    return event.reply(event.room.disco_info())


def room_items(event):
    return event.reply(disco.items())

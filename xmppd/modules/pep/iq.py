"""PubSub IQs (XEP-0060) to an account's bare JID, turned into calls on its
service, and the disco answers about its nodes.

Each handler is ``async func(pep, event)`` (``pep`` the host's :class:`PEP`);
one function per action of ``<pubsub/>`` (set: publish, retract, create,
subscribe, unsubscribe; get: items, subscriptions, affiliations) and of
``<pubsub xmlns='…#owner'/>`` (configure, default, delete, purge, affiliations,
subscriptions). Refusals of the PubSub core (``PubSubError``) become stanza
errors with their ``pubsub#errors`` condition; an action not in the tables is
``feature-not-implemented`` + ``<unsupported feature='…'/>``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xmppd.moduleapi import HANDLED
from xmppd.xmpp import disco, forms, ns
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.jid import bare

from xmppd.xmpp import pubsub as ps
from xmppd.xmpp.pubsub import (PubSubError, Requester, config_form, items_event,
                               to_stanza_error, unsupported)

if TYPE_CHECKING:
    from .service import PEP

def _ps(name: str) -> str:
    return ns.q(ns.PUBSUB, name)


def _owner(name: str) -> str:
    return ns.q(ns.PUBSUB_OWNER, name)


def submitted_options(x: ET.Element | None, limit: int) -> dict:
    return ps.submitted_options(x, limit)


# -- the request -------------------------------------------------------------------------

@dataclass
class Request:
    """A pubsub IQ to an account: who asks, the action element and its node."""
    event: object
    user: str
    req: Requester
    action: ET.Element

    @property
    def node(self) -> str | None:
        return self.action.get("node")

    @property
    def payload(self) -> ET.Element:
        return self.event.payload


async def request_of(pep: "PEP", event) -> Request:
    user = event.user
    if not await pep.account_exists(user):
        raise StanzaError("service-unavailable")
    req = await pep.requester(user, event.from_bare)
    action = next(iter(event.payload), None)
    if action is None:
        raise StanzaError("bad-request", "empty pubsub request")
    return Request(event, user, req, action)


async def _dispatch(pep: "PEP", event, table: dict, key) -> ET.Element | None:
    r = await request_of(pep, event)
    func = table.get(key(r.action))
    if func is None:
        raise unsupported(st.split_tag(r.action.tag)[1])
    try:
        return await func(pep, r)
    except PubSubError as err:
        raise to_stanza_error(err) from None


def _max_items(pep: "PEP") -> int:
    return pep.m.get_option("pep_max_items")


# -- pubsub: set -------------------------------------------------------------------------

async def publish(pep: "PEP", r: Request) -> ET.Element:
    pr = ps.publish_request(r.payload, r.action)
    options = None
    if pr.options is not None:
        try:
            options = submitted_options(pr.options, _max_items(pep))
        except PubSubError as err:
            raise PubSubError("conflict", "precondition-not-met", err.text) from None
    res = await pep.publish(r.user, r.req, r.node, pr.item_id, pr.payload, options)
    out = ET.Element(_ps("pubsub"))
    pub = ET.SubElement(out, _ps("publish"), {"node": res.node.name})
    ET.SubElement(pub, _ps("item"), {"id": res.item.id})
    return out


async def retract(pep: "PEP", r: Request) -> None:
    items = r.action.findall(_ps("item"))
    if not items or not items[0].get("id"):
        raise PubSubError("bad-request", "item-required")
    notify = (r.action.get("notify") or "").lower() in ("1", "true")
    for it in items:
        await pep.retract(r.user, r.req, r.node, it.get("id"), notify)
    return None


async def create(pep: "PEP", r: Request) -> None:
    conf = r.payload.find(_ps("configure"))
    options = submitted_options(conf.find(forms.X) if conf is not None else None, _max_items(pep))
    svc = await pep.service(r.user)
    node = svc.create(r.req, r.node, options)
    await pep.save(r.user, node)
    return None


async def subscribe(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    jid = r.action.get("jid") or r.event.from_jid
    node, state = svc.subscribe(r.req, r.node, jid)
    await pep.save(r.user, node, items=False)
    out = ps.subscription_answer(node, jid, state)
    last = node.last_item()
    if last is not None and node.config["pubsub#send_last_published_item"] != "never":
        await pep.notify.send_event(r.user, jid, items_event(node, [last]), last.when)
    return out


async def unsubscribe(pep: "PEP", r: Request) -> None:
    svc = await pep.service(r.user)
    node = svc.unsubscribe(r.req, r.node, r.action.get("jid") or r.event.from_jid)
    await pep.save(r.user, node, items=False)
    return None


# -- pubsub: get -------------------------------------------------------------------------

async def get_items(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    ids = [i.get("id") for i in r.action.findall(_ps("item")) if i.get("id")]
    max_items = None
    if r.action.get("max_items"):
        try:
            max_items = int(r.action.get("max_items"))
        except ValueError:
            raise StanzaError("bad-request", "max_items must be an integer") from None
    got = svc.get_items(r.req, r.node, max_items=max_items, ids=ids or None)
    return ps.items_answer(r.node, got)


async def get_subscriptions(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    out = ET.Element(_ps("pubsub"))
    subs = ET.SubElement(out, _ps("subscriptions"))
    for node in svc.nodes.values():
        if r.node and node.name != r.node:
            continue
        for jid in node.subscriptions:
            if bare(jid) == r.req.bare:
                ET.SubElement(subs, _ps("subscription"),
                              {"node": node.name, "jid": jid, "subscription": "subscribed"})
    return out


async def get_affiliations(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    out = ET.Element(_ps("pubsub"))
    affs = ET.SubElement(out, _ps("affiliations"))
    for node in svc.nodes.values():
        if r.node and node.name != r.node:
            continue
        aff = svc.affiliation(node, r.req)
        if aff != "none":
            ET.SubElement(affs, _ps("affiliation"), {"node": node.name, "affiliation": aff})
    return out


# -- pubsub#owner --------------------------------------------------------------------------

async def owner_get_configure(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    node = svc.get_config(r.req, r.node)
    out = ET.Element(_owner("pubsub"))
    ET.SubElement(out, _owner("configure"), {"node": node.name}).append(config_form(node.config))
    return out


async def owner_set_configure(pep: "PEP", r: Request) -> None:
    svc = await pep.service(r.user)
    x = r.action.find(forms.X)
    if x is None:
        raise StanzaError("bad-request", "configure needs a data form")
    if x.get("type") == "cancel":
        svc.get_config(r.req, r.node)
        return None
    options = submitted_options(x, _max_items(pep))
    node, evicted = svc.configure(r.req, r.node, options)
    await pep.save(r.user, node, items=bool(evicted))
    return None


async def owner_get_default(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    svc.check_owner(r.req)
    out = ET.Element(_owner("pubsub"))
    ET.SubElement(out, _owner("default")).append(config_form(svc.defaults))
    return out


async def owner_delete(pep: "PEP", r: Request) -> None:
    await pep.delete(r.user, r.req, r.node)
    return None


async def owner_purge(pep: "PEP", r: Request) -> None:
    await pep.purge(r.user, r.req, r.node)
    return None


async def owner_get_affiliations(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    node = svc.get_config(r.req, r.node)
    out = ET.Element(_owner("pubsub"))
    affs = ET.SubElement(out, _owner("affiliations"), {"node": node.name})
    ET.SubElement(affs, _owner("affiliation"), {"jid": svc.owner, "affiliation": "owner"})
    for jid, aff in sorted(node.affiliations.items()):
        ET.SubElement(affs, _owner("affiliation"), {"jid": jid, "affiliation": aff})
    return out


async def owner_set_affiliations(pep: "PEP", r: Request) -> None:
    svc = await pep.service(r.user)
    changes = {}
    for a in r.action.findall(_owner("affiliation")):
        if not a.get("jid") or not a.get("affiliation"):
            raise StanzaError("bad-request", "affiliation needs jid and affiliation")
        target = bare(a.get("jid"))
        if target is None:
            raise StanzaError("jid-malformed", f"invalid JID {a.get('jid')!r}")
        changes[target] = a.get("affiliation")
    node = svc.set_affiliations(r.req, r.node, changes)
    await pep.save(r.user, node, items=False)
    return None


async def owner_get_subscriptions(pep: "PEP", r: Request) -> ET.Element:
    svc = await pep.service(r.user)
    node = svc.get_config(r.req, r.node)
    out = ET.Element(_owner("pubsub"))
    subs = ET.SubElement(out, _owner("subscriptions"), {"node": node.name})
    for jid in sorted(node.subscriptions):
        ET.SubElement(subs, _owner("subscription"), {"jid": jid, "subscription": "subscribed"})
    return out


# the actions, by the action element's tag (pubsub) or its local name (owner)
SET = {_ps("publish"): publish, _ps("retract"): retract, _ps("create"): create,
       _ps("subscribe"): subscribe, _ps("unsubscribe"): unsubscribe}
GET = {_ps("items"): get_items, _ps("subscriptions"): get_subscriptions,
       _ps("affiliations"): get_affiliations}
OWNER_SET = {"configure": owner_set_configure, "delete": owner_delete, "purge": owner_purge,
             "affiliations": owner_set_affiliations}
OWNER_GET = {"configure": owner_get_configure, "default": owner_get_default,
             "affiliations": owner_get_affiliations, "subscriptions": owner_get_subscriptions}


def _tag(action: ET.Element) -> str:
    return action.tag


def _local(action: ET.Element) -> str:
    return st.split_tag(action.tag)[1]


async def pubsub_set(pep: "PEP", event):
    return await _dispatch(pep, event, SET, _tag)


async def pubsub_get(pep: "PEP", event):
    return await _dispatch(pep, event, GET, _tag)


async def owner_set(pep: "PEP", event):
    return await _dispatch(pep, event, OWNER_SET, _local)


async def owner_get(pep: "PEP", event):
    return await _dispatch(pep, event, OWNER_GET, _local)


# -- disco -----------------------------------------------------------------------------

async def account_items(pep: "PEP", items: list, event) -> list:
    """disco#items of an account: the nodes the requester may see (fold handler)."""
    user = event.to_node
    if event.payload.get("node"):
        return items
    svc = await pep.service(user)
    req = await pep.requester(user, event.from_bare)
    for node in svc.visible_nodes(req):
        items.append(disco.item(pep.jid(user), node.name))
    return items


async def node_info(pep: "PEP", sev):
    """disco#info of one of an account's nodes (others pass on)."""
    name = sev.payload.get("node") if sev.payload is not None else None
    if not name or not sev.to_node:
        return None
    svc = await pep.service(sev.to_node)
    node = svc.nodes.get(name)
    if node is None or not svc.may_access(node, await pep.requester(sev.to_node, sev.from_bare)):
        return None
    q = disco.info([("pubsub", "leaf", None)], [ns.PUBSUB], node=name)
    await pep.m.send(st.iq_result(sev.stanza, q))
    return HANDLED

"""The XEP-0060 IQs of every pubsub service the server runs (each account's
PEP service, the ``pubsub`` component), on the PubSub core of :mod:`.pubsub`.

A module calls :func:`handle` with the request, one of the tables (``SET``,
``GET`` for ``<pubsub/>``, ``OWNER_SET``, ``OWNER_GET`` for ``<pubsub
xmlns='…#owner'/>``) and its service, a :class:`Backend`: the core's
``PubSubService`` plus what touches the world (storage, notifications).

``<pubsub/>`` set: create (with ``<configure/>``), publish (with
``<publish-options/>``), retract, subscribe (with ``<options/>``), unsubscribe,
options; get: items (by id, ``max_items``, RSM), subscriptions, affiliations,
options, default (subscription options). Owner set: configure, delete (with
``<redirect/>``), purge, affiliations, subscriptions; get: configure, default,
affiliations, subscriptions.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Protocol

from . import forms, ns, rsm
from . import pubsub as ps
from . import stanza as st
from .errors import StanzaError
from .jid import InvalidJID, bare, split
from .pubsub import Node, PubSubError, PubSubService, PublishResult, Requester
from .stanza import to_xml

HANDLED = True      # a handler sent the reply itself (the core's HANDLED)


class Backend(Protocol):
    """A pubsub service as the handlers see it."""
    svc: PubSubService
    max_payload_size: int

    async def send(self, stanza: ET.Element) -> None: ...
    async def save(self, node: Node, *, items: bool = True, config: bool = True) -> None: ...
    async def publish(self, req: Requester, name: str | None, item_id: str | None,
                      payload: ET.Element | None, options: dict | None) -> PublishResult: ...
    async def retract(self, req: Requester, name: str | None, item_id: str | None,
                      notify: bool) -> None: ...
    async def delete(self, req: Requester, name: str | None, redirect: str | None) -> Node: ...
    async def purge(self, req: Requester, name: str | None) -> Node: ...
    async def configure(self, req: Requester, name: str | None, options: dict) -> Node: ...
    async def after_subscribe(self, node: Node, jid: str, state: str,
                              before: str | None) -> None: ...
    async def subscription_changed(self, node: Node, jid: str, state: str) -> None: ...
    def show_publisher(self, node: Node) -> bool: ...


def _ps(name: str) -> str:
    return ns.q(ns.PUBSUB, name)


def _owner(name: str) -> str:
    return ns.q(ns.PUBSUB_OWNER, name)


@dataclass
class Request:
    event: object
    req: Requester
    action: ET.Element

    @property
    def node(self) -> str | None:
        return self.action.get("node")

    @property
    def payload(self) -> ET.Element:
        return self.event.payload


def _spec(b: "Backend") -> dict:
    return b.svc.policy.fields


def _options(b: "Backend", x: ET.Element | None) -> dict:
    return ps.submitted_options(x, b.svc.max_items_limit, spec=_spec(b),
                                access_models=b.svc.policy.access_models)


def _jid_attr(value: str | None, default: str) -> str:
    """A JID attribute, normalised; ``bad-request`` + ``invalid-jid`` when bad."""
    if not value:
        return default
    try:
        node, domain, res = split(value)
    except InvalidJID:
        raise PubSubError("bad-request", "invalid-jid") from None
    if not domain:
        raise PubSubError("bad-request", "invalid-jid")
    out = f"{node}@{domain}" if node else domain
    return f"{out}/{res}" if res else out


# -- pubsub: set -------------------------------------------------------------------------

async def create(b: "Backend", r: Request):
    conf = r.payload.find(_ps("configure"))
    options = None
    if conf is not None:
        options = _options(b, conf.find(forms.X))
    node = b.svc.create(r.req, r.node, options)
    await b.save(node)
    if r.node:
        return None
    out = ET.Element(_ps("pubsub"))
    ET.SubElement(out, _ps("create"), {"node": node.name})
    return out


async def publish(b: "Backend", r: Request):
    node = b.svc.nodes.get(r.node) if r.node else None
    # a notification-only transient node takes publishes without item or payload
    light = node is not None and not node.persistent and \
        not node.config["pubsub#deliver_payloads"]
    pr = ps.publish_request(r.payload, r.action, payload_required=not light)
    if light and pr.payload is not None:
        raise PubSubError("bad-request", "item-forbidden")
    if pr.payload is not None and b.max_payload_size and \
            len(to_xml(pr.payload).encode()) > b.max_payload_size:
        raise PubSubError("not-acceptable", "payload-too-big",
                          f"payloads are limited to {b.max_payload_size} bytes")
    options = None
    if pr.options is not None:
        try:
            options = _options(b, pr.options)
        except PubSubError as err:
            raise PubSubError("conflict", "precondition-not-met", err.text) from None
    res = await b.publish(r.req, r.node, pr.item_id, pr.payload, options)
    out = ET.Element(_ps("pubsub"))
    pub = ET.SubElement(out, _ps("publish"), {"node": res.node.name})
    ET.SubElement(pub, _ps("item"), {"id": res.item.id})
    return out


async def retract(b: "Backend", r: Request):
    items = r.action.findall(_ps("item"))
    if not r.node:
        raise PubSubError("bad-request", "nodeid-required")
    if not items or not items[0].get("id"):
        raise PubSubError("bad-request", "item-required")
    notify = (r.action.get("notify") or "").lower() in ("1", "true")
    for it in items:
        await b.retract(r.req, r.node, it.get("id"), notify)
    return None


def _sub_options(x: ET.Element | None, current: dict | None = None) -> dict:
    out = dict(ps.DEFAULT_SUBSCRIBE_OPTIONS if current is None else current)
    if x is None:
        return out
    sub = forms.read(x, types=("submit",))
    for var in sub.fields:
        if var not in ps.SUBSCRIBE_OPTIONS:
            raise PubSubError("bad-request", "invalid-options", f"unknown option {var}")
        v = (sub.get(var) or "").lower()
        if v not in ("0", "1", "true", "false"):
            raise PubSubError("bad-request", "invalid-options", f"invalid value for {var}")
        out[var] = v in ("1", "true")
    return out


async def subscribe(b: "Backend", r: Request):
    jid = _jid_attr(r.action.get("jid"), "")
    if not jid:
        raise PubSubError("bad-request", "jid-required")
    opt_el = r.payload.find(_ps("options"))
    sub_opts = None
    if opt_el is not None:
        sub_opts = _sub_options(opt_el.find(forms.X))
    before = b.svc.nodes.get(r.node).subscriptions.get(jid) if r.node in b.svc.nodes else None
    node, state = b.svc.subscribe(r.req, r.node, jid)
    if sub_opts is not None:
        node.sub_options[jid] = sub_opts
    await b.save(node, items=False)
    reply = ps.subscription_answer(node, jid, state)
    if state == "subscribed":
        sub_el = reply.find(_ps("subscription"))
        ET.SubElement(sub_el, _ps("subscribe-options"))
    await b.send(st.iq_result(r.event.stanza, reply))
    await b.after_subscribe(node, jid, state, before)
    return HANDLED


async def unsubscribe(b: "Backend", r: Request):
    jid = _jid_attr(r.action.get("jid"), "")
    if not jid:
        raise PubSubError("bad-request", "jid-required")
    node = b.svc.unsubscribe(r.req, r.node, jid)
    await b.save(node, items=False)
    return ps.subscription_answer(node, jid, "none")


def options_form(values: dict, *, type: str = "form") -> ET.Element:
    fields = [forms.Field(var, "boolean", bool(values.get(var, ps.DEFAULT_SUBSCRIBE_OPTIONS[var])),
                          label=label)
              for var, (_kind, label) in ps.SUBSCRIBE_OPTIONS.items()]
    return forms.build(ns.PUBSUB_SUBSCRIBE_OPTIONS, fields, type=type)


async def set_options(b: "Backend", r: Request):
    jid = _jid_attr(r.action.get("jid"), "")
    node = b.svc.subscription_for_options(r.req, r.node, jid)
    x = r.action.find(forms.X)
    if x is None:
        raise PubSubError("bad-request", "invalid-options", "options need a data form")
    node.sub_options[jid] = _sub_options(x, node.sub_options.get(jid))
    await b.save(node, items=False)
    return None


# -- pubsub: get -------------------------------------------------------------------------

async def get_items(b: "Backend", r: Request):
    ids = [i.get("id") for i in r.action.findall(_ps("item")) if i.get("id")]
    max_items = None
    if r.action.get("max_items"):
        try:
            max_items = int(r.action.get("max_items"))
        except ValueError:
            raise StanzaError("bad-request", "max_items must be an integer") from None
        if max_items < 0:
            raise StanzaError("bad-request", "max_items must not be negative")
    node = b.svc.get_node(r.node)
    got = b.svc.get_items(r.req, r.node, max_items=max_items, ids=ids or None)
    page = rsm.request(r.payload)
    out_set = None
    if not ids and (page.max is not None or page.after or page.before is not None
                    or page.index is not None):
        got, out_set = _page(got, page)
    out = ps.items_answer(node.name, got, publisher=b.show_publisher(node))
    if out_set is not None:
        out.append(out_set)
    return out


def _page(items: list, page: rsm.Request) -> tuple[list, ET.Element]:
    """One RSM page of ``items`` (oldest first, keyed by item id)."""
    ids = [it.id for it in items]
    start, end = 0, len(items)
    if page.after:
        if page.after not in ids:
            raise StanzaError("item-not-found", "no item with the RSM <after/> id")
        start = ids.index(page.after) + 1
    if page.before:
        if page.before not in ids:
            raise StanzaError("item-not-found", "no item with the RSM <before/> id")
        end = ids.index(page.before)
    if page.index is not None and not page.after:
        start = page.index
    n = page.max if page.max is not None else end - start
    chosen = items[max(end - n, start):end] if page.backward else items[start:start + n]
    first_index = items.index(chosen[0]) if chosen else None
    s = rsm.result(chosen[0].id if chosen else None, chosen[-1].id if chosen else None,
                   len(items), first_index)
    return chosen, s


async def get_subscriptions(b: "Backend", r: Request):
    out = ET.Element(_ps("pubsub"))
    attrs = {"node": r.node} if r.node else {}
    subs = ET.SubElement(out, _ps("subscriptions"), attrs)
    if r.node:
        b.svc.get_node(r.node)
    for node in b.svc.nodes.values():
        if r.node and node.name != r.node:
            continue
        for jid, state in node.subscriptions.items():
            if bare(jid) == r.req.bare:
                ET.SubElement(subs, _ps("subscription"),
                              {"node": node.name, "jid": jid, "subscription": state})
    return out


async def get_affiliations(b: "Backend", r: Request):
    out = ET.Element(_ps("pubsub"))
    attrs = {"node": r.node} if r.node else {}
    affs = ET.SubElement(out, _ps("affiliations"), attrs)
    if r.node:
        b.svc.get_node(r.node)
    for node in b.svc.nodes.values():
        if r.node and node.name != r.node:
            continue
        aff = "owner" if r.req.is_owner else node.affiliations.get(r.req.bare)
        if aff:
            ET.SubElement(affs, _ps("affiliation"), {"node": node.name, "affiliation": aff})
    return out


async def get_options(b: "Backend", r: Request):
    jid = _jid_attr(r.action.get("jid"), "")
    node = b.svc.subscription_for_options(r.req, r.node, jid)
    out = ET.Element(_ps("pubsub"))
    ET.SubElement(out, _ps("options"), {"node": node.name, "jid": jid}).append(
        options_form(node.sub_options.get(jid, {})))
    return out


async def get_default_sub(b: "Backend", r: Request):
    if r.node:
        b.svc.get_node(r.node)
    out = ET.Element(_ps("pubsub"))
    attrs = {"node": r.node} if r.node else {}
    ET.SubElement(out, _ps("default"), attrs).append(options_form(ps.DEFAULT_SUBSCRIBE_OPTIONS))
    return out


# -- pubsub#owner --------------------------------------------------------------------------

async def owner_get_configure(b: "Backend", r: Request):
    node = b.svc.get_config(r.req, r.node)
    out = ET.Element(_owner("pubsub"))
    ET.SubElement(out, _owner("configure"), {"node": node.name}).append(
        ps.config_form(node.config, _spec(b), labels=True))
    return out


async def owner_set_configure(b: "Backend", r: Request):
    x = r.action.find(forms.X)
    if x is None:
        raise StanzaError("bad-request", "configure needs a data form")
    if x.get("type") == "cancel":
        b.svc.get_config(r.req, r.node)
        return None
    await b.configure(r.req, r.node, _options(b, x))
    return None


async def owner_get_default(b: "Backend", r: Request):
    if b.svc.owner is not None:
        b.svc.check_owner(r.req)
    out = ET.Element(_owner("pubsub"))
    ET.SubElement(out, _owner("default")).append(
        ps.config_form(b.svc.defaults, _spec(b), labels=True))
    return out


async def owner_delete(b: "Backend", r: Request):
    redirect = r.action.find(_owner("redirect"))
    uri = redirect.get("uri") if redirect is not None else None
    await b.delete(r.req, r.node, uri)
    return None


async def owner_purge(b: "Backend", r: Request):
    await b.purge(r.req, r.node)
    return None


async def owner_get_affiliations(b: "Backend", r: Request):
    node = b.svc.get_config(r.req, r.node)
    out = ET.Element(_owner("pubsub"))
    affs = ET.SubElement(out, _owner("affiliations"), {"node": node.name})
    if b.svc.owner:
        ET.SubElement(affs, _owner("affiliation"), {"jid": b.svc.owner, "affiliation": "owner"})
    for jid, aff in sorted(node.affiliations.items()):
        ET.SubElement(affs, _owner("affiliation"), {"jid": jid, "affiliation": aff})
    return out


async def owner_set_affiliations(b: "Backend", r: Request):
    changes = {}
    for a in r.action.findall(_owner("affiliation")):
        if not a.get("jid") or not a.get("affiliation"):
            raise StanzaError("bad-request", "affiliation needs jid and affiliation")
        target = bare(_jid_attr(a.get("jid"), ""))
        changes[target] = a.get("affiliation")
    node = b.svc.set_affiliations(r.req, r.node, changes)
    await b.save(node, items=False)
    return None


async def owner_get_subscriptions(b: "Backend", r: Request):
    node = b.svc.get_config(r.req, r.node)
    out = ET.Element(_owner("pubsub"))
    subs = ET.SubElement(out, _owner("subscriptions"), {"node": node.name})
    for jid, state in sorted(node.subscriptions.items()):
        ET.SubElement(subs, _owner("subscription"), {"jid": jid, "subscription": state})
    return out


async def owner_set_subscriptions(b: "Backend", r: Request):
    changes = {}
    for s in r.action.findall(_owner("subscription")):
        if not s.get("jid") or not s.get("subscription"):
            raise StanzaError("bad-request", "subscription needs jid and subscription")
        changes[_jid_attr(s.get("jid"), "")] = s.get("subscription")
    node, changed = b.svc.set_subscriptions(r.req, r.node, changes)
    await b.save(node, items=False)
    await b.send(st.iq_result(r.event.stanza))
    for jid, state in changed.items():
        await b.subscription_changed(node, jid, state)
    return HANDLED


SET = {_ps("publish"): publish, _ps("retract"): retract, _ps("create"): create,
       _ps("subscribe"): subscribe, _ps("unsubscribe"): unsubscribe, _ps("options"): set_options}
GET = {_ps("items"): get_items, _ps("subscriptions"): get_subscriptions,
       _ps("affiliations"): get_affiliations, _ps("options"): get_options,
       _ps("default"): get_default_sub}
OWNER_SET = {_owner("configure"): owner_set_configure, _owner("delete"): owner_delete,
             _owner("purge"): owner_purge, _owner("affiliations"): owner_set_affiliations,
             _owner("subscriptions"): owner_set_subscriptions}
OWNER_GET = {_owner("configure"): owner_get_configure, _owner("default"): owner_get_default,
             _owner("affiliations"): owner_get_affiliations,
             _owner("subscriptions"): owner_get_subscriptions}

# the action elements that come with another one (create + configure, subscribe +
# options, publish + publish-options, items + set): the first other one is the action
_COMPANIONS = {_ps("configure"), _ps("options"), _ps("publish-options"), ns.q(ns.RSM, "set")}


def _action(payload: ET.Element) -> ET.Element | None:
    kids = list(payload)
    for k in kids:
        if k.tag not in _COMPANIONS:
            return k
    return kids[0] if kids else None


async def handle(b: "Backend", event, table: dict, requester) -> ET.Element | None:
    """Run the action of ``event``'s ``<pubsub/>`` from ``table`` on the service
    ``b``; ``requester(action)`` (awaitable) says who asks. PubSub refusals become
    stanza errors; an unknown action is ``feature-not-implemented``."""
    action = _action(event.payload)
    if action is None:
        raise StanzaError("bad-request", "empty pubsub request")
    func = table.get(action.tag)
    if func is None:
        local = st.split_tag(action.tag)[1]
        raise ps.unsupported(_FEATURE_OF.get(local, local))
    try:
        req = await requester(action)
        return await func(b, Request(event, req, action))
    except PubSubError as err:
        raise ps.to_stanza_error(err) from None


# the feature a missing action names (XEP-0060 §10)
_FEATURE_OF = {"create": "create-nodes", "items": "retrieve-items", "publish": "publish",
               "retract": "retract-items", "subscribe": "subscribe",
               "subscriptions": "retrieve-subscriptions", "affiliations": "retrieve-affiliations",
               "options": "subscription-options", "default": "retrieve-default",
               "configure": "config-node", "delete": "delete-nodes", "purge": "purge-nodes"}

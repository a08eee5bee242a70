"""Personal Eventing Protocol (XEP-0163): every account is a PubSub service.

The PubSub logic lives in :mod:`.pubsub` (sans-I/O, one service per account);
this module turns IQs into calls on it, stores nodes and items, and sends the
notifications:

* publish to the own bare JID auto-creates the node; ``publish-options``
  (XEP-0223) set a new node's configuration, and on an existing node are
  preconditions (``conflict`` + ``precondition-not-met`` when they differ);
* access models ``presence`` (default), ``open``, ``roster``, ``whitelist``;
* notifications (``headline`` messages from the bare JID) go to the owner's
  available resources and to the entities whose presence the account received
  and whose entity capabilities (XEP-0115, fetched and cached by :mod:`.caps`)
  include ``NODE+notify``, if the node's access model lets them see it; also to
  explicit subscribers;
* the last item of each node is sent to such an entity when it becomes
  available (and to the owner's resources when they log in);
* conversions (:mod:`.compat`): XEP-0084 avatars ↔ vCard photo and the XEP-0153
  hash in presence (XEP-0398); XEP-0402 bookmarks ↔ private-storage bookmarks.

Stores: ``pep_nodes`` (map: user → node → config/affiliations/subscriptions),
``pep_items`` (map: user → node → items, oldest first), ``pep_caps`` (map: caps
hash → the nodes it wants notifications of).
"""
from __future__ import annotations

import asyncio
import collections
import secrets
import xml.etree.ElementTree as ET

from xmppd.config.options import Option
from xmppd.core import events as ev
from xmppd.xmpp import stanza as st
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.stanza import from_xml, to_xml
from xmppd.xmpp.time import utc_stamp

from . import caps as capsmod
from . import compat
from .pubsub import (
    CONFIG_FIELDS, NS_ERRORS, Node, PubSubError, PubSubService, Requester, parse_options,
)

PROTOCOLS = ["XEP-0163", "XEP-0060", "XEP-0223", "XEP-0115", "XEP-0084", "XEP-0153",
             "XEP-0398", "XEP-0172", "XEP-0402", "XEP-0048"]
OPTIONS = [
    Option("pep_max_items", "integer", 256, "both",
           "Most items one PEP node keeps: the ceiling of pubsub#max_items, and what 'max' means.",
           min=1),
    Option("pep_default_max_items", "integer", 1, "both",
           "pubsub#max_items of a node created without one.", min=1),
    Option("pep_vcard_avatar", "boolean", True, "both",
           "XEP-0398: mirror PEP avatars into the vCard photo and back, and put the avatar "
           "hash (XEP-0153) in the account's presence."),
    Option("pep_bookmarks_compat", "boolean", True, "both",
           "XEP-0402 #compat: private-storage (XEP-0048) bookmarks read and write the "
           "PEP bookmarks (urn:xmpp:bookmarks:1)."),
    Option("pep_service_cache_size", "integer", 1000, "both",
           "Accounts whose PEP nodes are kept in memory (least recently used are dropped).",
           min=1),
]

PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"
EVENT = "http://jabber.org/protocol/pubsub#event"
DATA = "jabber:x:data"
INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
NS_DELAY = "urn:xmpp:delay"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

FEATURES = ("access-open", "access-presence", "access-roster", "access-whitelist",
            "auto-create", "auto-subscribe", "config-node", "create-and-configure",
            "create-nodes", "delete-items", "delete-nodes", "filtered-notifications",
            "item-ids", "last-published", "manage-affiliations", "modify-affiliations",
            "multi-items", "outcast-affiliation", "persistent-items", "presence-notifications",
            "presence-subscribe", "publish", "publish-options", "purge-nodes", "retract-items",
            "retrieve-affiliations", "retrieve-default", "retrieve-items",
            "retrieve-subscriptions", "subscribe")


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def to_stanza_error(err: PubSubError) -> StanzaError:
    app = None
    if err.pubsub:
        app = ET.Element(_q(NS_ERRORS, err.pubsub))
        if err.feature:
            app.set("feature", err.feature)
    return StanzaError(err.condition, err.text, app=app)


def form_fields(x: ET.Element | None) -> dict[str, list[str]]:
    if x is None:
        return {}
    out: dict[str, list[str]] = {}
    for f in x.findall(_q(DATA, "field")):
        var = f.get("var")
        if var:
            out[var] = [v.text or "" for v in f.findall(_q(DATA, "value"))]
    return out


def config_form(config: dict, form_type: str = NODE_CONFIG) -> ET.Element:
    x = ET.Element(_q(DATA, "x"), {"type": "form"})
    f = ET.SubElement(x, _q(DATA, "field"), {"var": "FORM_TYPE", "type": "hidden"})
    ET.SubElement(f, _q(DATA, "value")).text = form_type
    for var, (kind, choices) in CONFIG_FIELDS.items():
        value = config.get(var)
        ftype = {"bool": "boolean", "int_or_max": "text-single", "list-multi": "list-multi",
                 "list-single": "list-single"}.get(kind, "text-single")
        f = ET.SubElement(x, _q(DATA, "field"), {"var": var, "type": ftype})
        if choices:
            for c in choices:
                o = ET.SubElement(f, _q(DATA, "option"))
                ET.SubElement(o, _q(DATA, "value")).text = c
        if kind == "list-multi":
            for v in value or ():
                ET.SubElement(f, _q(DATA, "value")).text = str(v)
        elif kind == "bool":
            ET.SubElement(f, _q(DATA, "value")).text = "1" if value else "0"
        else:
            ET.SubElement(f, _q(DATA, "value")).text = "" if value is None else str(value)
    return x


def bare_of(jid: str) -> str:
    return jid.split("/", 1)[0]


async def roster_info(host, user: str, contact: str) -> tuple[str, frozenset]:
    """(subscription, groups) of ``contact`` in ``user``'s roster."""
    item = await host.roster.get_item(user, contact)
    if item is None:
        return "none", frozenset()
    return item.get("subscription") or "none", frozenset(item.get("groups") or ())


class PEP:
    """The PEP service of one host."""

    def __init__(self, m):
        self.m = m
        self.host = m.host
        self.nodes_store = m.open_store("pep_nodes", "map")
        self.items_store = m.open_store("pep_items", "map")
        self.caps_store = m.open_store("pep_caps", "map")
        self.services: collections.OrderedDict[str, PubSubService] = collections.OrderedDict()
        self.caps = capsmod.CapsCache()
        # user -> full JID of an entity whose presence the account received -> caps key
        self.recipients: dict[str, dict[str, str | None]] = {}
        # caps key -> {(user, full)} waiting for that key's features
        self.waiting: dict[str, set[tuple[str, str]]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.compat = compat.Compat(self)

    # -- services and storage ------------------------------------------------
    def jid(self, user: str) -> str:
        return f"{user}@{self.host.name}"

    async def service(self, user: str) -> PubSubService:
        svc = self.services.get(user)
        if svc is not None:
            self.services.move_to_end(user)
            return svc
        nodes = await self.nodes_store.items(user)
        items = await self.items_store.items(user) if nodes else {}
        svc = self.services.get(user)
        if svc is not None:
            return svc
        svc = PubSubService(self.jid(user), max_items_limit=self.m.get_option("pep_max_items"),
                            defaults={"pubsub#max_items": self.m.get_option("pep_default_max_items")})
        for name, rec in nodes.items():
            svc.nodes[name] = Node.from_record(name, rec, items.get(name))
        self.services[user] = svc
        while len(self.services) > self.m.get_option("pep_service_cache_size"):
            self.services.popitem(last=False)
        return svc

    async def save(self, user: str, node: Node, *, items: bool = True, config: bool = True) -> None:
        if config:
            await self.nodes_store.set(user, node.name, node.record())
        if items:
            await self.items_store.set(user, node.name, node.item_records())

    async def forget_node(self, user: str, name: str) -> None:
        await self.nodes_store.delete(user, name)
        await self.items_store.delete(user, name)

    async def requester(self, user: str, jid: str) -> Requester:
        bare = bare_of(jid)
        if bare == self.jid(user):
            return Requester(bare, is_owner=True, subscription="both")
        sub, groups = await roster_info(self.host, user, bare)
        return Requester(bare, subscription=sub, groups=groups)

    # -- high-level operations (also used by compat) ------------------------
    async def publish(self, user: str, req: Requester, node_name: str, item_id: str | None,
                      payload: ET.Element | None, options: dict | None = None,
                      *, origin: str = "client"):
        svc = await self.service(user)
        xml = to_xml(payload) if payload is not None else ""
        res = svc.publish(req, node_name, item_id, xml, options)
        await self.save(user, res.node, config=res.created)
        if res.node.config["pubsub#deliver_notifications"]:
            await self.broadcast(user, res.node, self.items_event(res.node, [res.item]))
        await self.compat.published(user, res.node, res.item, origin)
        return res

    async def retract(self, user: str, req: Requester, node_name: str, item_id: str,
                      notify: bool) -> None:
        svc = await self.service(user)
        node = svc.retract(req, node_name, item_id)
        await self.save(user, node, config=False)
        if notify or node.config["pubsub#notify_retract"]:
            ev_el = ET.Element(_q(EVENT, "event"))
            items = ET.SubElement(ev_el, _q(EVENT, "items"), {"node": node.name})
            ET.SubElement(items, _q(EVENT, "retract"), {"id": item_id})
            await self.broadcast(user, node, ev_el)
        await self.compat.retracted(user, node, item_id)

    # -- notifications -------------------------------------------------------
    def items_event(self, node: Node, items) -> ET.Element:
        ev_el = ET.Element(_q(EVENT, "event"))
        its = ET.SubElement(ev_el, _q(EVENT, "items"), {"node": node.name})
        payloads = node.config["pubsub#deliver_payloads"]
        for it in items:
            item = ET.SubElement(its, _q(EVENT, "item"), {"id": it.id})
            if payloads and it.xml:
                item.append(from_xml(it.xml))
        return ev_el

    async def send_event(self, user: str, to: str, ev_el: ET.Element,
                         stamp: float | None = None) -> None:
        """A headline from the account; ``stamp``: a delayed (last published) item."""
        msg = st.make("message", {"type": "headline", "from": self.jid(user), "to": to,
                                  "id": "pep-" + secrets.token_hex(6)})
        msg.append(ev_el)
        if stamp is not None:
            ET.SubElement(msg, _q(NS_DELAY, "delay"), {"from": self.jid(user), "stamp": utc_stamp(stamp)})
        await self.m.send(msg)

    async def targets(self, user: str, node: Node) -> list[str]:
        """Who gets a notification of ``node`` now."""
        owner = self.jid(user)
        svc = await self.service(user)
        rec = self.recipients.get(user, {})
        out: list[str] = []
        for s in self.host.sessions_of(user).values():
            # the owner's resources: filtered by +notify when their caps are
            # known; a resource without (known) caps gets every notification
            if s.available:
                key = rec.get(s.full_jid)
                wanted = self.caps.get(key) if key else None
                if wanted is None or node.name in wanted:
                    out.append(s.full_jid)
        seen = {s.full_jid for s in self.host.sessions_of(user).values()}
        verdict: dict[str, bool] = {}

        async def allowed(bare: str) -> bool:
            if bare not in verdict:
                verdict[bare] = svc.may_access(node, await self.requester(user, bare))
            return verdict[bare]

        for full, key in list(self.recipients.get(user, {}).items()):
            if full in seen or key is None:
                continue
            wanted = self.caps.get(key)
            if not wanted or node.name not in wanted:
                continue
            bare = bare_of(full)
            if bare == owner or await allowed(bare):
                out.append(full)
                seen.add(full)
        for jid in list(node.subscriptions):
            if jid not in seen and await allowed(bare_of(jid)):
                out.append(jid)
                seen.add(jid)
        return out

    async def broadcast(self, user: str, node: Node, ev_el: ET.Element,
                        targets: list[str] | None = None) -> None:
        if targets is None:
            targets = await self.targets(user, node)
        for to in targets:
            await self.send_event(user, to, ev_el)

    async def send_last_items(self, user: str, full: str, wanted: frozenset[str]) -> None:
        """The last item of each of ``user``'s nodes ``full`` wants and may see."""
        if not wanted:
            return
        svc = await self.service(user)
        req = None
        for node in list(svc.nodes.values()):
            if node.name not in wanted:
                continue
            if node.config["pubsub#send_last_published_item"] != "on_sub_and_presence":
                continue
            last = node.last_item()
            if last is None:
                continue
            if req is None:
                req = await self.requester(user, full)
            if not svc.may_access(node, req):
                continue
            await self.send_event(user, full, self.items_event(node, [last]), last.when)

    # -- presence and caps ---------------------------------------------------
    async def saw_presence(self, user: str, full: str, caps: capsmod.Caps | None) -> None:
        rec = self.recipients.setdefault(user, {})
        new = full not in rec
        old = rec.get(full)
        key = caps.key if caps else None
        rec[full] = key
        if key is None:
            return
        wanted = self.caps.get(key)
        if wanted is None:
            stored = await self.caps_store.get("", key)
            if stored is not None:
                wanted = frozenset(stored)
                self.caps.put(key, wanted)
        if wanted is None:
            self.waiting.setdefault(key, set()).add((user, full))
            iq = self.caps.request(caps, full, self.host.name)
            if iq is not None:
                self.timers[iq.get("id")] = asyncio.get_running_loop().call_later(
                    30, self._caps_timeout, iq.get("id"))
                await self.m.send(iq)
            return
        if new or old != key:
            await self.send_last_items(user, full, wanted)

    def _caps_timeout(self, iq_id: str) -> None:
        self.timers.pop(iq_id, None)
        got = self.caps.take(iq_id)
        if got is not None:
            self.waiting.pop(got[0].key, None)

    def lost_presence(self, user: str, full: str) -> None:
        rec = self.recipients.get(user)
        if rec is not None:
            rec.pop(full, None)
            if not rec:
                del self.recipients[user]

    async def caps_reply(self, sev) -> bool:
        stanza = sev.stanza
        iq_id = stanza.get("id") or ""
        if not iq_id.startswith("caps-") or stanza.get("type") not in ("result", "error"):
            return False
        got = self.caps.take(iq_id)
        if got is None:
            return False
        handle = self.timers.pop(iq_id, None)
        if handle is not None:
            handle.cancel()
        caps, full = got
        waiting = self.waiting.pop(caps.key, set())
        query = stanza.find(_q(INFO, "query"))
        if stanza.get("type") != "result" or query is None or sev.from_jid != full:
            return True
        if not capsmod.verify(caps, query):
            self.m.log.info("caps of %s do not verify (%s); using them for it alone", full, caps.ver)
            wanted = capsmod.notify_nodes(capsmod.features_of(query))
            key = f"jid:{full}:{caps.ver}"
            self.caps.put(key, wanted)
            for user, f in waiting:
                rec = self.recipients.get(user)
                if f == full and rec is not None and rec.get(f) == caps.key:
                    rec[f] = key
                    await self.send_last_items(user, f, wanted)
            return True
        wanted = capsmod.notify_nodes(capsmod.features_of(query))
        self.caps.put(caps.key, wanted)
        await self.caps_store.set("", caps.key, sorted(wanted))
        for user, f in waiting:
            rec = self.recipients.get(user)
            if rec is not None and rec.get(f) == caps.key:
                await self.send_last_items(user, f, wanted)
        return True


def setup(m) -> None:
    host = m.host
    pep = PEP(m)
    m.provide(pep)

    m.add_identity("pubsub", "pep", to="account")
    m.add_feature(PUBSUB, to="account")
    m.add_feature(PUBSUB)
    for f in FEATURES:
        m.add_feature(f"{PUBSUB}#{f}", to="account")
        m.add_feature(f"{PUBSUB}#{f}")

    async def check_account(event) -> str:
        user = event.to_node
        if not user or not await m.server.accounts.exists(host.name, user):
            raise StanzaError("service-unavailable")
        return user

    async def request_of(event):
        """``(user, requester, action element, node name)`` of a pubsub IQ."""
        user = await check_account(event)
        req = await pep.requester(user, event.from_bare)
        action = next(iter(event.payload), None)
        if action is None:
            raise StanzaError("bad-request", "empty pubsub request")
        return user, req, action, action.get("node")

    # -- pubsub (entity use cases) ------------------------------------------
    async def pubsub_set(event):
        user, req, action, name = await request_of(event)
        try:
            if action.tag == _q(PUBSUB, "publish"):
                return await do_publish(user, req, action, event.payload)
            if action.tag == _q(PUBSUB, "retract"):
                items = action.findall(_q(PUBSUB, "item"))
                if not items or not items[0].get("id"):
                    raise PubSubError("bad-request", "item-required")
                notify = (action.get("notify") or "").lower() in ("1", "true")
                for it in items:
                    await pep.retract(user, req, name, it.get("id"), notify)
                return None
            if action.tag == _q(PUBSUB, "create"):
                conf = event.payload.find(_q(PUBSUB, "configure"))
                fields = form_fields(conf.find(_q(DATA, "x")) if conf is not None else None)
                options = parse_options(fields, m.get_option("pep_max_items"))
                svc = await pep.service(user)
                node = svc.create(req, name, options)
                await pep.save(user, node)
                return None
            if action.tag == _q(PUBSUB, "subscribe"):
                svc = await pep.service(user)
                jid = action.get("jid") or event.from_jid
                node = svc.subscribe(req, name, jid)
                await pep.save(user, node, items=False)
                out = ET.Element(_q(PUBSUB, "pubsub"))
                ET.SubElement(out, _q(PUBSUB, "subscription"),
                              {"node": node.name, "jid": jid, "subscription": "subscribed"})
                last = node.last_item()
                if last is not None and node.config["pubsub#send_last_published_item"] != "never":
                    await pep.send_event(user, jid, pep.items_event(node, [last]), last.when)
                return out
            if action.tag == _q(PUBSUB, "unsubscribe"):
                svc = await pep.service(user)
                node = svc.unsubscribe(req, name, action.get("jid") or event.from_jid)
                await pep.save(user, node, items=False)
                return None
        except PubSubError as err:
            raise to_stanza_error(err) from None
        raise StanzaError("feature-not-implemented", app=ET.Element(
            _q(NS_ERRORS, "unsupported"), {"feature": st.split_tag(action.tag)[1]}))

    async def do_publish(user, req, action, pubsub_el):
        name = action.get("node")
        items = action.findall(_q(PUBSUB, "item"))
        if len(items) > 1:
            raise PubSubError("bad-request", "invalid-payload", "one item per publish")
        item = items[0] if items else None
        payload = None
        if item is not None:
            kids = list(item)
            if len(kids) > 1:
                raise PubSubError("bad-request", "invalid-payload", "one payload per item")
            payload = kids[0] if kids else None
        if payload is None:
            raise PubSubError("bad-request", "item-required" if item is None else "payload-required")
        options = None
        po = pubsub_el.find(_q(PUBSUB, "publish-options"))
        if po is not None:
            fields = form_fields(po.find(_q(DATA, "x")))
            try:
                options = parse_options(fields, m.get_option("pep_max_items"))
            except PubSubError as err:
                raise PubSubError("conflict", "precondition-not-met", err.text) from None
        res = await pep.publish(user, req, name, item.get("id"), payload, options)
        out = ET.Element(_q(PUBSUB, "pubsub"))
        pub = ET.SubElement(out, _q(PUBSUB, "publish"), {"node": res.node.name})
        ET.SubElement(pub, _q(PUBSUB, "item"), {"id": res.item.id})
        return out

    async def pubsub_get(event):
        user, req, action, name = await request_of(event)
        svc = await pep.service(user)
        try:
            if action.tag == _q(PUBSUB, "items"):
                ids = [i.get("id") for i in action.findall(_q(PUBSUB, "item")) if i.get("id")]
                max_items = None
                if action.get("max_items"):
                    try:
                        max_items = int(action.get("max_items"))
                    except ValueError:
                        raise StanzaError("bad-request", "max_items must be an integer") from None
                got = svc.get_items(req, name, max_items=max_items, ids=ids or None)
                out = ET.Element(_q(PUBSUB, "pubsub"))
                its = ET.SubElement(out, _q(PUBSUB, "items"), {"node": name})
                for it in got:
                    el = ET.SubElement(its, _q(PUBSUB, "item"), {"id": it.id})
                    if it.xml:
                        el.append(from_xml(it.xml))
                return out
            if action.tag == _q(PUBSUB, "subscriptions"):
                out = ET.Element(_q(PUBSUB, "pubsub"))
                subs = ET.SubElement(out, _q(PUBSUB, "subscriptions"))
                for node in svc.nodes.values():
                    if name and node.name != name:
                        continue
                    for jid in node.subscriptions:
                        if bare_of(jid) == req.bare:
                            ET.SubElement(subs, _q(PUBSUB, "subscription"),
                                          {"node": node.name, "jid": jid, "subscription": "subscribed"})
                return out
            if action.tag == _q(PUBSUB, "affiliations"):
                out = ET.Element(_q(PUBSUB, "pubsub"))
                affs = ET.SubElement(out, _q(PUBSUB, "affiliations"))
                for node in svc.nodes.values():
                    if name and node.name != name:
                        continue
                    aff = svc.affiliation(node, req)
                    if aff != "none":
                        ET.SubElement(affs, _q(PUBSUB, "affiliation"),
                                      {"node": node.name, "affiliation": aff})
                return out
        except PubSubError as err:
            raise to_stanza_error(err) from None
        raise StanzaError("feature-not-implemented", app=ET.Element(
            _q(NS_ERRORS, "unsupported"), {"feature": st.split_tag(action.tag)[1]}))

    # -- pubsub#owner --------------------------------------------------------
    async def owner_iq(event, iq_type):
        user, req, action, name = await request_of(event)
        svc = await pep.service(user)
        local = st.split_tag(action.tag)[1]
        try:
            if local == "configure" and iq_type == "get":
                node = svc.get_config(req, name)
                out = ET.Element(_q(OWNER, "pubsub"))
                conf = ET.SubElement(out, _q(OWNER, "configure"), {"node": node.name})
                conf.append(config_form(node.config))
                return out
            if local == "configure" and iq_type == "set":
                x = action.find(_q(DATA, "x"))
                if x is None:
                    raise StanzaError("bad-request", "configure needs a data form")
                if x.get("type") == "cancel":
                    svc.get_config(req, name)
                    return None
                options = parse_options(form_fields(x), m.get_option("pep_max_items"))
                node, evicted = svc.configure(req, name, options)
                await pep.save(user, node, items=bool(evicted))
                return None
            if local == "default" and iq_type == "get":
                svc.check_owner(req)
                out = ET.Element(_q(OWNER, "pubsub"))
                d = ET.SubElement(out, _q(OWNER, "default"))
                d.append(config_form(svc.defaults))
                return out
            if local == "delete" and iq_type == "set":
                node = svc.nodes.get(name) if name else None
                targets = await pep.targets(user, node) if node is not None else []
                node = svc.delete(req, name)
                await pep.forget_node(user, node.name)
                if node.config["pubsub#notify_delete"]:
                    ev_el = ET.Element(_q(EVENT, "event"))
                    ET.SubElement(ev_el, _q(EVENT, "delete"), {"node": node.name})
                    await pep.broadcast(user, node, ev_el, targets)
                await pep.compat.deleted(user, node)
                return None
            if local == "purge" and iq_type == "set":
                node = svc.purge(req, name)
                targets = await pep.targets(user, node)
                await pep.save(user, node, config=False)
                ev_el = ET.Element(_q(EVENT, "event"))
                ET.SubElement(ev_el, _q(EVENT, "purge"), {"node": node.name})
                await pep.broadcast(user, node, ev_el, targets)
                return None
            if local == "affiliations" and iq_type == "get":
                node = svc.get_config(req, name)
                out = ET.Element(_q(OWNER, "pubsub"))
                affs = ET.SubElement(out, _q(OWNER, "affiliations"), {"node": node.name})
                ET.SubElement(affs, _q(OWNER, "affiliation"), {"jid": svc.owner, "affiliation": "owner"})
                for jid, aff in sorted(node.affiliations.items()):
                    ET.SubElement(affs, _q(OWNER, "affiliation"), {"jid": jid, "affiliation": aff})
                return out
            if local == "affiliations" and iq_type == "set":
                changes = {}
                for a in action.findall(_q(OWNER, "affiliation")):
                    if not a.get("jid") or not a.get("affiliation"):
                        raise StanzaError("bad-request", "affiliation needs jid and affiliation")
                    changes[bare_of(a.get("jid"))] = a.get("affiliation")
                node = svc.set_affiliations(req, name, changes)
                await pep.save(user, node, items=False)
                return None
            if local == "subscriptions" and iq_type == "get":
                node = svc.get_config(req, name)
                out = ET.Element(_q(OWNER, "pubsub"))
                subs = ET.SubElement(out, _q(OWNER, "subscriptions"), {"node": node.name})
                for jid in sorted(node.subscriptions):
                    ET.SubElement(subs, _q(OWNER, "subscription"), {"jid": jid, "subscription": "subscribed"})
                return out
        except PubSubError as err:
            raise to_stanza_error(err) from None
        raise StanzaError("feature-not-implemented", app=ET.Element(
            _q(NS_ERRORS, "unsupported"), {"feature": local}))

    m.hook_iq("set", PUBSUB, "pubsub", pubsub_set, to=("bare",))
    m.hook_iq("get", PUBSUB, "pubsub", pubsub_get, to=("bare",))
    m.hook_iq("set", OWNER, "pubsub", lambda e: owner_iq(e, "set"), to=("bare",))
    m.hook_iq("get", OWNER, "pubsub", lambda e: owner_iq(e, "get"), to=("bare",))

    # -- disco ---------------------------------------------------------------
    async def account_items(items, event):
        user = event.to_node
        if event.payload.get("node"):
            return items
        svc = await pep.service(user)
        req = await pep.requester(user, event.from_bare)
        for node in svc.visible_nodes(req):
            items.append(ET.Element(_q(ITEMS, "item"), {"jid": pep.jid(user), "node": node.name}))
        return items

    async def node_info(sev):
        name = sev.payload.get("node") if sev.payload is not None else None
        if not name or not sev.to_node:
            return None
        svc = await pep.service(sev.to_node)
        node = svc.nodes.get(name)
        if node is None or not svc.may_access(node, await pep.requester(sev.to_node, sev.from_bare)):
            return None
        q = ET.Element(_q(INFO, "query"), {"node": name})
        ET.SubElement(q, _q(INFO, "identity"), {"category": "pubsub", "type": "leaf"})
        ET.SubElement(q, _q(INFO, "feature"), {"var": PUBSUB})
        await m.send(st.iq_result(sev.stanza, q))
        return ev.HANDLED

    m.hook("disco-account-items", account_items)
    m.hook(ev.iq_event("get", "bare", INFO, "query"), node_info, ev.EARLY)

    # -- presence: caps, last items, the avatar hash ---------------------------
    async def own_presence(sev):
        origin = sev.origin
        if getattr(origin, "kind", None) != "c2s" or origin.full_jid is None:
            return None
        t = sev.stanza.get("type")
        if t is None:
            await pep.compat.outgoing_presence(origin.username, sev.stanza)
            await pep.saw_presence(origin.username, origin.full_jid, capsmod.parse_caps(sev.stanza))
        elif t == "unavailable":
            pep.lost_presence(origin.username, origin.full_jid)
        return None

    async def directed_from_client(sev):
        # a directed presence from our user also carries the avatar hash
        origin = sev.origin
        if getattr(origin, "kind", None) == "c2s" and sev.stanza.get("type") is None \
                and origin.username:
            await pep.compat.outgoing_presence(origin.username, sev.stanza)
        return None

    async def inbound_presence(sev):
        if sev.host is not host or not sev.to_node:
            return None
        full = sev.from_jid
        if "/" not in full or sev.from_bare == sev.to_bare:
            return None
        t = sev.stanza.get("type")
        if t is None:
            if not host.sessions_of(sev.to_node) and sev.to_node not in pep.recipients \
                    and not await m.server.accounts.exists(host.name, sev.to_node):
                return None
            await pep.saw_presence(sev.to_node, full, capsmod.parse_caps(sev.stanza))
        elif t == "unavailable":
            pep.lost_presence(sev.to_node, full)
        return None

    def unbound(arg):
        sess, _exc = arg
        if sess.username and sess.full_jid:
            pep.lost_presence(sess.username, sess.full_jid)

    async def iq_reply(sev):
        if await pep.caps_reply(sev):
            return ev.HANDLED
        return None

    async def user_deleted(username):
        pep.services.pop(username, None)
        pep.recipients.pop(username, None)
        await pep.nodes_store.clear(username)
        await pep.items_store.clear(username)

    m.hook(ev.stanza_event("presence", "broadcast"), own_presence, ev.EARLY)
    for to_type in ("bare", "full"):
        m.hook(ev.stanza_event("presence", to_type, pre=True), directed_from_client, ev.EARLY)
        m.hook(ev.stanza_event("presence", to_type), inbound_presence, ev.EARLY)
    m.hook("resource-unbind", unbound)
    m.hook(ev.stanza_event("iq", "host"), iq_reply, ev.EARLY)
    m.hook("user-deleted", user_deleted)

    pep.compat.setup(m)


def teardown(m) -> None:
    pep = m.provided
    if pep is not None:
        for h in pep.timers.values():
            h.cancel()

"""The MUC component's room events (modules/muc/events.py), through the
socket-free harness: the feature that hooks a room event answers, what nobody
hooks gets the default, and the room archive answers through the shared XEP-0313
engine (paging both ways, flip-page, ids, index, access rules)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.harness import Harness
from xmppd.moduleapi import HANDLED
from xmppd.modules.muc.events import (OCCUPANT_SESSION_NEW, ROOM_PRE_CREATE, occupant_iq_event,
                                      room_iq_event)
from xmppd.xmpp import ns
from xmppd.xmpp.errors import StanzaError

MUC = "conference.example.com"
ROOM = f"lobby@{MUC}"
COMPONENT = f'Component "{MUC}" "muc"\n    muc_room_locking = false\n'
C = f"{{{ns.CLIENT}}}"
ERR = f"{C}error"
RESULT = f"{{{ns.MAM}}}result"
FIN = f"{{{ns.MAM}}}fin"
SET = f"{{{ns.RSM}}}set"


def muc_harness(**kw) -> Harness:
    return Harness(components=COMPONENT, **kw)


def condition(reply: ET.Element) -> str | None:
    err = reply.find(ERR)
    if err is None:
        return None
    return next(c.tag.rpartition("}")[2] for c in err
                if c.tag.startswith(f"{{{ns.STANZAS_ERR}}}") and not c.tag.endswith("}text"))


def codes(el: ET.Element) -> set[int]:
    return {int(s.get("code")) for s in el.iter(f"{{{ns.MUC_USER}}}status")}


async def join(client, nick: str, room: str = ROOM, history: str = "") -> list[ET.Element]:
    """Enter ``room`` as ``nick``; returns what came up to the subject (the last thing
    a joining session gets)."""
    await client.send_stanza(f"<presence to='{room}/{nick}'><x xmlns='{ns.MUC}'>{history}</x></presence>")
    got = []
    while True:
        el = await client.next()
        got.append(el)
        if el.tag == f"{C}message" and el.find(f"{C}subject") is not None:
            return got
        if el.get("type") == "error":
            return got


async def say(h, client, *bodies: str) -> None:
    for body in bodies:
        await client.send_stanza(f"<message to='{ROOM}' type='groupchat'><body>{body}</body></message>")
    await service(h).drained()


def service(h):
    return h.host(MUC).provided("muc")


# -- the features that hook the room events ---------------------------------------------

async def test_a_feature_answers_the_iq_it_hooked():
    async with muc_harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await join(alice, "Alice")
        # vcard.py hooked muc-room-iq-get/vcard-temp:vCard
        reply = await alice.iq("get", "<vCard xmlns='vcard-temp'/>", to=ROOM)
        assert reply.get("type") == "result" and reply.get("from") == ROOM
        assert reply.find(f"{{{ns.VCARD}}}vCard") is not None
        # config.py hooked muc-room-iq-get/…muc#owner:query
        reply = await alice.iq("get", f"<query xmlns='{ns.MUC_OWNER}'/>", to=ROOM)
        form = reply.find(f"{{{ns.MUC_OWNER}}}query/{{{ns.DATA}}}x")
        fields = {f.get("var"): f for f in form.iter(f"{{{ns.DATA}}}field")}
        assert fields["FORM_TYPE"].findtext(f"{{{ns.DATA}}}value") == ns.MUC_ROOMCONFIG
        assert fields["muc#roomconfig_whois"].get("type") == "list-single"
        assert fields["muc#roomconfig_whois"].get("label") == "Who may see real JIDs"
        # a feature's refusal is the error reply
        bob = await h.client("bob@example.com/pc", available=True)
        await join(bob, "Bob")
        reply = await bob.iq("get", f"<query xmlns='{ns.MUC_OWNER}'/>", to=ROOM)
        assert condition(reply) == "forbidden"


async def test_a_handler_hooked_on_the_host_bus_takes_part():
    """Room events are events of the component host's bus: another handler hooked
    there gets the room, the sender and the payload, and what it puts in ``out``
    is sent."""
    async with muc_harness() as h:
        seen = []

        def custom(event):
            seen.append((event.room.jid, event.from_jid, event.payload.tag))
            return event.reply(ET.Element("{urn:example:q}answer"))
        h.host(MUC).events.hook(room_iq_event("get", "urn:example:q", "ask"), custom)
        alice = await h.client("alice@example.com/phone", available=True)
        await join(alice, "Alice")
        reply = await alice.iq("get", "<ask xmlns='urn:example:q'/>", to=ROOM)
        assert reply.get("type") == "result" and reply.find("{urn:example:q}answer") is not None
        assert seen == [(ROOM, "alice@example.com/phone", "{urn:example:q}ask")]


async def test_what_nobody_hooked_gets_todays_defaults():
    async with muc_harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await join(alice, "Alice")
        await join(bob, "Bob")
        # an IQ to the room nobody handles: service-unavailable
        reply = await alice.iq("get", "<query xmlns='urn:example:nothing'/>", to=ROOM)
        assert condition(reply) == "service-unavailable"
        reply = await alice.iq("set", f"<ping xmlns='{ns.PING}'/>", to=ROOM)
        assert condition(reply) == "service-unavailable"
        # to a room that does not exist: item-not-found
        reply = await alice.iq("get", "<query xmlns='urn:example:nothing'/>", to=f"nowhere@{MUC}")
        assert condition(reply) == "item-not-found"
        # an IQ to an occupant nobody handles is forwarded to the occupant...
        await alice.send_stanza(f"<iq type='get' id='v1' to='{ROOM}/Bob'><query xmlns='jabber:iq:version'/></iq>")
        fwd = await bob.next("iq")
        assert fwd.get("from") == f"{ROOM}/Alice" and fwd.get("id") != "v1"
        # ...and the answer comes back from the occupant JID, with the asker's id
        await bob.send_stanza(f"<iq type='result' id='{fwd.get('id')}' to='{ROOM}/Alice'>"
                              "<query xmlns='jabber:iq:version'><name>x</name></query></iq>")
        back = await alice.next("iq", match=lambda e: e.get("id") == "v1")
        assert back.get("type") == "result" and back.get("from") == f"{ROOM}/Bob"
        # but a ping to an occupant is selfping.py's (XEP-0410)
        reply = await alice.iq("get", f"<ping xmlns='{ns.PING}'/>", to=f"{ROOM}/Alice")
        assert reply.get("type") == "result"
        carol = await h.client("carol@example.com/x", available=True)
        reply = await carol.iq("get", f"<ping xmlns='{ns.PING}'/>", to=f"{ROOM}/Alice")
        assert condition(reply) == "not-acceptable"


async def test_an_occupant_iq_hook_replaces_the_forwarding():
    async with muc_harness() as h:
        def answer(event):
            return event.reply()
        h.host(MUC).events.hook(occupant_iq_event("get", "jabber:iq:version", "query"), answer)
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await join(alice, "Alice")
        await join(bob, "Bob")
        reply = await alice.iq("get", "<query xmlns='jabber:iq:version'/>", to=f"{ROOM}/Bob")
        assert reply.get("type") == "result" and reply.get("from") == f"{ROOM}/Bob"
        assert not [e for e in bob.received if e.tag == f"{C}iq"]


async def test_pre_create_hook_may_refuse_a_room():
    async with muc_harness() as h:
        def refuse(event):
            if event.room.node.startswith("secret"):
                raise StanzaError("not-allowed", "no secrets here")
        h.host(MUC).events.hook(ROOM_PRE_CREATE, refuse)
        alice = await h.client("alice@example.com/phone", available=True)
        (err,) = await join(alice, "Alice", room=f"secret@{MUC}")
        assert err.get("type") == "error" and condition(err) == "not-allowed"
        assert err.find(f"{{{ns.MUC}}}x") is not None
        assert "secret" not in service(h).rooms
        got = await join(alice, "Alice")
        assert 201 in codes(got[0]) and "lobby" in service(h).rooms


async def test_a_session_gets_history_then_subject_then_what_other_hooks_add():
    async with muc_harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await join(alice, "Alice")
        await alice.send_stanza(f"<message to='{ROOM}' type='groupchat'><subject>Topic</subject></message>")
        await say(h, alice, "one", "two", "three")
        late = []

        def last_word(event):
            late.append(event.from_jid)
            event.out.append(ET.Element(f"{C}message", {"to": event.from_jid, "from": event.room.jid,
                                                         "type": "headline"}))
        h.host(MUC).events.hook(OCCUPANT_SESSION_NEW, last_word, -1000)
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza(f"<presence to='{ROOM}/Bob'><x xmlns='{ns.MUC}'>"
                              "<history maxstanzas='2'/></x></presence>")
        await service(h).drained()
        msgs = [e for e in bob.received if e.tag == f"{C}message"]
        assert [m.findtext(f"{C}body") for m in msgs[:2]] == ["two", "three"]
        assert all(m.find(f"{{{ns.DELAY}}}delay") is not None for m in msgs[:2])
        assert msgs[2].findtext(f"{C}subject") == "Topic"
        assert msgs[3].get("type") == "headline" and late == ["bob@example.com/pc"]


async def test_room_disco_info_is_gathered_from_the_features():
    async with muc_harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await join(alice, "Alice")
        reply = await alice.iq("get", f"<query xmlns='{ns.DISCO_INFO}'/>", to=ROOM)
        info = reply.find(f"{{{ns.DISCO_INFO}}}query")
        feats = {f.get("var") for f in info.iter(f"{{{ns.DISCO_INFO}}}feature")}
        assert {ns.MUC, ns.MAM, ns.SID, ns.OCCUPANT_ID, ns.MUC_SELF_PING, ns.VCARD, ns.MODERATE,
                ns.MUC_REQUEST, ns.REGISTER, "muc_temporary", "muc_open"} <= feats
        fields = {f.get("var"): f for f in info.iter(f"{{{ns.DATA}}}field")}
        assert fields["FORM_TYPE"].findtext(f"{{{ns.DATA}}}value") == ns.MUC_ROOMINFO
        assert fields["muc#roominfo_occupants"].findtext(f"{{{ns.DATA}}}value") == "1"
        assert fields["muc#roomconfig_changesubject"].get("type") == "boolean"
        assert fields["muc#roominfo_subject"].get("label") == "Subject"
        # the reserved-nickname node is register.py's, other nodes do not exist
        reply = await alice.iq("get", f"<query xmlns='{ns.DISCO_INFO}' node='x-roomuser-item'/>", to=ROOM)
        assert reply.find(f"{{{ns.DISCO_INFO}}}query").get("node") == "x-roomuser-item"
        reply = await alice.iq("get", f"<query xmlns='{ns.DISCO_INFO}' node='other'/>", to=ROOM)
        assert condition(reply) == "item-not-found"
        # the service's own
        reply = await alice.iq("get", f"<query xmlns='{ns.DISCO_ITEMS}'/>", to=MUC)
        assert [i.get("jid") for i in reply.iter(f"{{{ns.DISCO_ITEMS}}}item")] == [ROOM]


async def test_messages_to_the_room_go_to_the_feature_of_their_payload():
    async with muc_harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await join(alice, "Alice")
        dave = await h.client("dave@example.com/x", available=True)
        # invites.py: a mediated invitation
        await alice.send_stanza(f"<message to='{ROOM}'><x xmlns='{ns.MUC_USER}'>"
                                "<invite to='dave@example.com'><reason>hi</reason></invite></x></message>")
        inv = await dave.next("message")
        assert inv.get("from") == ROOM
        # a semi-anonymous room: dave learns alice's occupant JID, not her real one
        assert inv.find(f"{{{ns.MUC_USER}}}x/{{{ns.MUC_USER}}}invite").get("from") == f"{ROOM}/Alice"
        # voice.py: a voice request in a moderated room reaches the moderators
        service(h).rooms["lobby"].config.moderated = True
        bob = await h.client("bob@example.com/pc", available=True)
        await join(bob, "Bob")   # enters as a visitor
        await bob.send_stanza(
            f"<message to='{ROOM}'><x xmlns='{ns.DATA}' type='submit'>"
            f"<field var='FORM_TYPE'><value>{ns.MUC_REQUEST}</value></field>"
            "<field var='muc#role'><value>participant</value></field></x></message>")
        req = await alice.next("message", match=lambda e: e.find(f"{{{ns.DATA}}}x") is not None)
        form = req.find(f"{{{ns.DATA}}}x")
        assert form.get("type") == "form" and form.findtext(f"{{{ns.DATA}}}title") == "Voice request"
        values = {f.get("var"): f.findtext(f"{{{ns.DATA}}}value") for f in form.iter(f"{{{ns.DATA}}}field")}
        assert values["muc#jid"] == "bob@example.com/pc" and values["muc#roomnick"] == "Bob"
        # a message nobody takes is dropped without an error
        await alice.send_stanza(f"<message to='{ROOM}'><body>hello room</body></message>")
        await service(h).drained()
        assert not [e for e in alice.received if e.get("type") == "error"]


# -- the room archive, on the shared XEP-0313 engine -----------------------------------

async def mam_query(client, query: str = "", *, queryid: str = "q", to: str = ROOM):
    reply = await client.iq("set", f"<query xmlns='{ns.MAM}' queryid='{queryid}'>{query}</query>", to=to)
    results = [e for e in client.received if e.find(RESULT) is not None
               and e.find(RESULT).get("queryid") == queryid]
    for e in results:
        client.received.remove(e)
    return reply, results


def bodies(results) -> list[str]:
    return [m.find(f"{RESULT}/{{{ns.FORWARD}}}forwarded/{C}message").findtext(f"{C}body")
            for m in results]


def rsm(**kw) -> str:
    parts = "".join(f"<{k}/>" if v == "" else f"<{k}>{v}</{k}>" for k, v in kw.items())
    return f"<set xmlns='{ns.RSM}'>{parts}</set>"


def form(**fields) -> str:
    out = (f"<x xmlns='{ns.DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
           f"<value>{ns.MAM}</value></field>")
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        out += (f"<field var='{var.replace('_', '-')}'>"
                + "".join(f"<value>{v}</value>" for v in values) + "</field>")
    return out + "</x>"


@pytest.fixture
async def archived():
    """A room whose archive holds m0..m6 (alice said m0-m4, bob m5-m6)."""
    async with muc_harness() as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await join(alice, "Alice")
        await join(bob, "Bob")
        await say(h, alice, *(f"m{i}" for i in range(5)))
        await say(h, bob, "m5", "m6")
        alice.received.clear()
        bob.received.clear()
        yield h, alice, bob


async def test_archive_query_pages_forward_and_backward(archived):
    h, alice, bob = archived
    reply, results = await mam_query(bob)
    assert bodies(results) == [f"m{i}" for i in range(7)]
    fin = reply.find(FIN)
    assert fin.get("complete") == "true"
    ids = [r.find(RESULT).get("id") for r in results]
    assert fin.findtext(f"{SET}/{{{ns.RSM}}}count") == "7"
    assert results[0].get("from") == ROOM and results[0].get("to") == "bob@example.com/pc"
    fwd = results[0].find(f"{RESULT}/{{{ns.FORWARD}}}forwarded/{C}message")
    assert fwd.get("from") == f"{ROOM}/Alice"
    # forward: pages of 3 with <after/>
    reply, results = await mam_query(bob, rsm(max=3))
    assert bodies(results) == ["m0", "m1", "m2"]
    first = reply.find(f"{FIN}/{SET}/{{{ns.RSM}}}first")
    assert first.get("index") == "0"                      # the index, as the account archive says it
    assert reply.find(FIN).get("complete") is None         # left out when false, as before
    last = reply.findtext(f"{FIN}/{SET}/{{{ns.RSM}}}last")
    reply, results = await mam_query(bob, rsm(max=3, after=last))
    assert bodies(results) == ["m3", "m4", "m5"]
    # backward: the last page, then the one before it
    reply, results = await mam_query(bob, rsm(max=2, before=""))
    assert bodies(results) == ["m5", "m6"]
    first = reply.findtext(f"{FIN}/{SET}/{{{ns.RSM}}}first")
    reply, results = await mam_query(bob, rsm(max=2, before=first))
    assert bodies(results) == ["m3", "m4"]
    # RSM <index/>: skip to a position
    reply, results = await mam_query(bob, rsm(max=2, index=4))
    assert bodies(results) == ["m4", "m5"]
    assert reply.find(f"{FIN}/{SET}/{{{ns.RSM}}}first").get("index") == "4"
    # the form's after-id narrows the set (and the count)
    reply, results = await mam_query(bob, form(after_id=ids[4]))
    assert bodies(results) == ["m5", "m6"]
    assert reply.findtext(f"{FIN}/{SET}/{{{ns.RSM}}}count") == "2"
    # an unknown id is item-not-found
    reply, _ = await mam_query(bob, rsm(after="nope"))
    assert condition(reply) == "item-not-found"


async def test_archive_flip_page_ids_and_with(archived):
    h, alice, bob = archived
    _, results = await mam_query(bob)
    ids = [r.find(RESULT).get("id") for r in results]
    # <flip-page/>: the same page, in reverse order
    reply, results = await mam_query(bob, rsm(max=3, before="") + "<flip-page/>")
    assert bodies(results) == ["m6", "m5", "m4"]
    assert reply.findtext(f"{FIN}/{SET}/{{{ns.RSM}}}first") == ids[4]
    # ids: exactly those messages
    reply, results = await mam_query(bob, form(ids=[ids[6], ids[1]]))
    assert bodies(results) == ["m1", "m6"]
    # with: the occupant JID the messages came from
    _, results = await mam_query(bob, form(**{"with": f"{ROOM}/Bob"}))
    assert bodies(results) == ["m5", "m6"]
    # the search form
    reply = await bob.iq("get", f"<query xmlns='{ns.MAM}'/>", to=ROOM)
    vars_ = {f.get("var") for f in reply.iter(f"{{{ns.DATA}}}field")}
    assert {"FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"} <= vars_
    # a field MAM does not have is a bad request
    reply, _ = await mam_query(bob, form(color="red"))
    assert condition(reply) == "bad-request"


async def test_archive_access_rules_stay(archived):
    h, alice, bob = archived
    room = service(h).rooms["lobby"]
    carol = await h.client("carol@example.com/x", available=True)
    # an open room: anyone may read, even from outside
    reply, results = await mam_query(carol)
    assert reply.get("type") == "result" and len(results) == 7
    # an outcast may not
    room.affiliations["carol@example.com"] = "outcast"
    reply, results = await mam_query(carol)
    assert condition(reply) == "forbidden" and results == []
    # members-only: occupants and members may, others not
    del room.affiliations["carol@example.com"]
    room.config.members_only = True
    reply, _ = await mam_query(carol)
    assert condition(reply) == "forbidden"
    reply, _ = await mam_query(bob)                  # in the room
    assert reply.get("type") == "result"
    room.affiliations["carol@example.com"] = "member"
    reply, _ = await mam_query(carol)
    assert reply.get("type") == "result"


async def test_one_user_may_own_only_so_many_rooms():
    from tests.harness import Harness
    component = '''
        Component "conference.example.com" "muc"
            muc_max_rooms_per_user = 2
            muc_room_locking = false
            muc_room_default_persistent = true
    '''
    async with Harness(components=component) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        for room in ("r1", "r2"):
            await alice.send_stanza(f"<presence to='{room}@conference.example.com/alice'>"
                                    "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
            await alice.next("message", match=lambda e: e.find("{jabber:client}subject") is not None)
        await alice.send_stanza("<presence to='r3@conference.example.com/alice'>"
                                "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
        err = await alice.next("presence", match=lambda e: e.get("type") == "error")
        assert err.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
        assert sorted(h.server.hosts["conference.example.com"].provided("muc").rooms) == ["r1", "r2"]
        # joining an existing room is not creating one
        bob = await h.client("bob@example.com/pc", available=True)
        await bob.send_stanza("<presence to='r1@conference.example.com/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        await bob.next("message", match=lambda e: e.find("{jabber:client}subject") is not None)

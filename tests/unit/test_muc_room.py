"""Room logic without sockets: stanzas in, stanzas out.

The room's environment carries an event bus with the room features wired on it
(as the component host's bus is in the server), so what the features add to what
the room sends (history and subject on join, disco#info) is there too."""
from __future__ import annotations

import time
import types
import xml.etree.ElementTree as ET

import pytest

from xmppd.core.events import EventBus
from xmppd.xmpp.errors import StanzaError
from xmppd.xmpp.ns import DATA, MUC, MUC_ADMIN as ADMIN, MUC_OWNER as OWNER, MUC_USER as USER, SID, q
from xmppd.modules import muc
from xmppd.modules.muc import config as cfgmod
from xmppd.modules.muc import history as hist
from xmppd.modules.muc import invites, moderation, persistence, selfping
from xmppd.modules.muc.config import RoomConfig
from xmppd.modules.muc.events import RoomEvent
from xmppd.modules.muc.room import Room, RoomEnv

C = "{jabber:client}"
SERVICE = "conference.test"
ROOM = f"room@{SERVICE}"


class Clock:
    def __init__(self):
        self.t = 1_700_000_000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


class Wiring:
    """The part of the module API the room features wire with: their room-event
    hooks go on ``bus``; what they register with the host is not needed here."""

    def __init__(self, bus):
        self.bus = bus

    def hook(self, name, func, priority=0):
        self.bus.hook(name, func, priority)

    def __getattr__(self, name):
        return lambda *args, **kw: None


def wired_bus() -> EventBus:
    bus = EventBus("muc-test")
    service = types.SimpleNamespace(name="Chatrooms", archive=None)
    for feature in muc.FEATURES:
        feature.setup(Wiring(bus), service)
    return bus


@pytest.fixture
def env(clock):
    return RoomEnv(SERVICE, admins={"root@test"}, now=clock, events=wired_bus())


def presence(frm, nick, *, type=None, password=None, history=None, x=True, status=None):
    p = ET.Element(C + "presence", {"from": frm, "to": f"{ROOM}/{nick}"})
    if type:
        p.set("type", type)
    if status:
        ET.SubElement(p, C + "status").text = status
    if x:
        xe = ET.SubElement(p, q(MUC, "x"))
        if password:
            ET.SubElement(xe, q(MUC, "password")).text = password
        if history is not None:
            ET.SubElement(xe, q(MUC, "history"), history)
    return p


def message(frm, body=None, *, to=ROOM, type="groupchat", subject=None):
    m = ET.Element(C + "message", {"from": frm, "to": to, "type": type, "id": "m1"})
    if subject is not None:
        ET.SubElement(m, C + "subject").text = subject
    if body is not None:
        ET.SubElement(m, C + "body").text = body
    return m


def codes(el):
    return {int(s.get("code")) for s in el.iter(q(USER, "status"))}


def item(el):
    return el.find(f"{q(USER, 'x')}/{q(USER, 'item')}")


def to(out, jid):
    return [e for e in out if e.get("to") == jid]


def join(room, jid, nick, **kw):
    created = kw.pop("created", False)
    return room.handle_presence(presence(jid, nick, **kw), jid, nick, created=created)


def admin_query(*items):
    qe = ET.Element(q(ADMIN, "query"))
    for attrs, reason in items:
        it = ET.SubElement(qe, q(ADMIN, "item"), attrs)
        if reason:
            ET.SubElement(it, q(ADMIN, "reason")).text = reason
    return qe


def form(**fields):
    x = ET.Element(q(DATA, "x"), {"type": "submit"})
    for var, value in fields.items():
        f = ET.SubElement(x, q(DATA, "field"), {"var": var.replace("__", "#")})
        ET.SubElement(f, q(DATA, "value")).text = value
    return x


@pytest.fixture
def room(env):
    r = Room("room", env)
    r.affiliations["owner@test"] = "owner"
    join(r, "owner@test/a", "Owner", created=True)
    return r


A, B, CJ = "alice@test/r", "bob@test/r", "carol@test/r"


def test_creation_presence(env):
    r = Room("room", env)
    r.affiliations["owner@test"] = "owner"
    out = join(r, "owner@test/a", "Owner", created=True)
    # own presence, then the (empty) subject
    assert [e.tag for e in out] == [C + "presence", C + "message"]
    assert codes(out[0]) == {110, 170, 201}
    assert item(out[0]).get("affiliation") == "owner"
    assert item(out[0]).get("role") == "moderator"
    assert out[1].find(C + "subject") is not None


def test_join_broadcast_and_anonymity(room):
    out = join(room, A, "Alice")
    mine = to(out, A)
    # the owner's presence first, then alice's own with 110, then the subject
    assert mine[0].get("from") == f"{ROOM}/Owner"
    assert item(mine[0]).get("jid") is None        # alice is no moderator: semi-anonymous
    assert 110 in codes(mine[1]) and mine[1].get("from") == f"{ROOM}/Alice"
    assert mine[-1].find(C + "subject") is not None
    (owner_sees,) = to(out, "owner@test/a")
    assert item(owner_sees).get("jid") == A         # moderators see real JIDs
    assert 110 not in codes(owner_sees)
    out = join(room, B, "Bob")
    (alice_sees,) = to(out, A)
    assert item(alice_sees).get("jid") is None


def test_non_anonymous_room_says_100(room):
    room.config.whois = "anyone"
    out = join(room, A, "Alice")
    assert 100 in codes(to(out, A)[1])
    assert item(to(out, A)[0]).get("jid") == "owner@test/a"


def test_entry_refusals(room):
    join(room, A, "Alice")
    with pytest.raises(StanzaError) as e:
        join(room, B, "Alice")
    assert e.value.condition == "conflict"
    room.affiliations["bob@test"] = "outcast"
    with pytest.raises(StanzaError) as e:
        join(room, B, "Bob")
    assert e.value.condition == "forbidden"
    room.config.members_only = True
    with pytest.raises(StanzaError) as e:
        join(room, CJ, "Carol")
    assert e.value.condition == "registration-required"
    room.config.members_only = False
    room.config.password = "s3cret"
    with pytest.raises(StanzaError) as e:
        join(room, CJ, "Carol", password="wrong")
    assert e.value.condition == "not-authorized"
    join(room, CJ, "Carol", password="s3cret")
    room.config.max_users = 3
    with pytest.raises(StanzaError) as e:
        join(room, "dave@test/r", "Dave", password="s3cret")
    assert e.value.condition == "service-unavailable" and e.value.type == "wait"
    # the server admin is an owner everywhere, and owners get in a full room
    out = join(room, "root@test/x", "Root", password="s3cret")
    assert item(to(out, "root@test/x")[-2]).get("affiliation") == "owner"


def test_locked_room(env):
    r = Room("room", env)
    r.affiliations["owner@test"] = "owner"
    r.locked = True
    join(r, "owner@test/a", "Owner", created=True)
    with pytest.raises(StanzaError) as e:
        join(r, A, "Alice")
    assert e.value.condition == "item-not-found"
    cfgmod.owner_set(r, _owner_query(form()), "owner@test/a")   # instant room
    assert not r.locked
    join(r, A, "Alice")


def _owner_query(x):
    qe = ET.Element(q(OWNER, "query"))
    qe.append(x)
    return qe


def test_groupchat_fanout_stanza_id_and_occupant_id(room):
    join(room, A, "Alice")
    join(room, B, "Bob")
    m = message(A, "hello")
    forged = ET.SubElement(m, q(SID, "stanza-id"), {"id": "fake", "by": ROOM})
    ET.SubElement(m, "{urn:xmpp:occupant-id:0}occupant-id", {"id": "fake"})
    out = room.handle_groupchat(m, A)
    assert sorted(e.get("to") for e in out) == sorted(["owner@test/a", A, B])
    for e in out:
        assert e.get("from") == f"{ROOM}/Alice" and e.get("type") == "groupchat"
        sids = e.findall(q(SID, "stanza-id"))
        assert len(sids) == 1 and sids[0].get("id") != "fake"
        oids = e.findall("{urn:xmpp:occupant-id:0}occupant-id")
        assert len(oids) == 1 and oids[0].get("id") != "fake"
    assert room.archive_out and room.archive_out[0][0] == sids[0].get("id")
    with pytest.raises(StanzaError) as e:
        room.handle_groupchat(message(CJ, "intruder"), CJ)
    assert e.value.condition == "not-acceptable"


def test_occupant_id_is_stable(room):
    out1 = join(room, A, "Alice")
    a_id = to(out1, A)[1].find("{urn:xmpp:occupant-id:0}occupant-id").get("id")
    room.handle_presence(presence(A, "Alice", type="unavailable"), A, "Alice")
    out2 = join(room, "alice@test/other", "Alicia")
    assert to(out2, "alice@test/other")[1].find("{urn:xmpp:occupant-id:0}occupant-id").get("id") == a_id
    out3 = join(room, B, "Bob")
    assert to(out3, B)[-2].find("{urn:xmpp:occupant-id:0}occupant-id").get("id") != a_id


def test_moderated_room_needs_voice(room):
    room.config.moderated = True
    out = join(room, A, "Alice")
    assert item(to(out, A)[1]).get("role") == "visitor"
    with pytest.raises(StanzaError) as e:
        room.handle_groupchat(message(A, "hi"), A)
    assert e.value.condition == "forbidden"
    out = moderation.admin_set(room, admin_query(({"nick": "Alice", "role": "participant"}, None)),
                               "owner@test/a")
    assert all(item(e).get("role") == "participant" for e in out)
    assert room.handle_groupchat(message(A, "now I can"), A)


def test_subject(room):
    join(room, A, "Alice")
    with pytest.raises(StanzaError) as e:
        room.handle_groupchat(message(A, subject="mine"), A)
    assert e.value.condition == "forbidden"
    room.config.change_subject = True
    out = room.handle_groupchat(message(A, subject="Topic"), A)
    assert room.subject == "Topic" and room.subject_from == "Alice"
    assert all(e.findtext(C + "subject") == "Topic" for e in out)
    # subject with a body is a message, not a subject change
    out = room.handle_groupchat(message(A, "body", subject="Other"), A)
    assert room.subject == "Topic"
    assert out[0].findtext(C + "body") == "body"
    # a newcomer gets the subject last
    out = join(room, B, "Bob")
    assert to(out, B)[-1].findtext(C + "subject") == "Topic"
    assert to(out, B)[-1].get("from") == f"{ROOM}/Alice"


def test_history_on_join(room, clock):
    join(room, A, "Alice")
    for i in range(5):
        clock.t += 60
        room.handle_groupchat(message(A, f"m{i}"), A)
    clock.t += 60

    def hist_of(**h):
        out = join(room, B, "Bob", history=h) if h else join(room, B, "Bob")
        room.handle_presence(presence(B, "Bob", type="unavailable"), B, "Bob")
        msgs = [e for e in to(out, B) if e.tag == C + "message" and e.find(C + "body") is not None]
        for e in msgs:
            d = e.find("{urn:xmpp:delay}delay")
            assert d is not None and d.get("from") == ROOM
        return [e.findtext(C + "body") for e in msgs]

    assert hist_of() == ["m0", "m1", "m2", "m3", "m4"]
    assert hist_of(maxstanzas="2") == ["m3", "m4"]
    assert hist_of(maxstanzas="0") == []
    assert hist_of(seconds="150") == ["m3", "m4"]
    assert hist_of(since=hist.stamp(clock.t - 130)) == ["m3", "m4"]
    one = room.history.entries[-1].chars
    assert hist_of(maxchars=str(one * 2 + 1)) == ["m3", "m4"]
    assert hist_of(maxchars="0") == []
    room.history.resize(2)
    assert hist_of() == ["m3", "m4"]


def test_private_messages(room):
    join(room, A, "Alice")
    join(room, B, "Bob")
    (out,) = room.handle_private(message(A, "psst", to=f"{ROOM}/Bob", type="chat"), A, "Bob")
    assert out.get("to") == B and out.get("from") == f"{ROOM}/Alice"
    assert out.find(q(USER, "x")) is not None
    with pytest.raises(StanzaError) as e:
        room.handle_private(message(A, "?", to=f"{ROOM}/Nobody", type="chat"), A, "Nobody")
    assert e.value.condition == "item-not-found"
    room.config.allow_pm = "moderators"
    with pytest.raises(StanzaError) as e:
        room.handle_private(message(A, "psst", to=f"{ROOM}/Bob", type="chat"), A, "Bob")
    assert e.value.condition == "forbidden"


def test_nick_change(room):
    join(room, A, "Alice")
    join(room, B, "Bob")
    out = room.handle_presence(presence(A, "Ally", x=False), A, "Ally")
    unav = [e for e in out if e.get("type") == "unavailable"]
    assert len(unav) == 3 and all(303 in codes(e) and item(e).get("nick") == "Ally" for e in unav)
    assert 110 in codes(to(unav, A)[0])
    avail = [e for e in out if e.get("type") is None]
    assert all(e.get("from") == f"{ROOM}/Ally" for e in avail)
    assert "Ally" in room.occupants and "Alice" not in room.occupants
    with pytest.raises(StanzaError) as e:
        room.handle_presence(presence(A, "Bob", x=False), A, "Bob")
    assert e.value.condition == "conflict"


def test_leave_and_temporary_room(room):
    join(room, A, "Alice")
    out = room.handle_presence(presence(A, "Alice", type="unavailable", status="bye", x=False), A, "Alice")
    assert len(out) == 2
    assert all(item(e).get("role") == "none" and e.findtext(C + "status") == "bye" for e in out)
    assert 110 in codes(to(out, A)[0])
    room.handle_presence(presence("owner@test/a", "Owner", type="unavailable"), "owner@test/a", "Owner")
    assert room.gone
    room.config.persistent = True
    assert not room.gone


def test_kick_ban_and_lists(room):
    join(room, A, "Alice")
    join(room, B, "Bob")
    out = moderation.admin_set(room, admin_query(({"nick": "Bob", "role": "none"}, "spam")), "owner@test/a")
    (bob_sees,) = to(out, B)
    assert bob_sees.get("type") == "unavailable" and codes(bob_sees) == {110, 307}
    assert item(bob_sees).find(q(USER, "actor")).get("nick") == "Owner"
    assert item(bob_sees).findtext(q(USER, "reason")) == "spam"
    assert "Bob" not in room.occupants
    # a participant may not kick
    join(room, B, "Bob")
    with pytest.raises(StanzaError) as e:
        moderation.admin_set(room, admin_query(({"nick": "Bob", "role": "none"}, None)), A)
    assert e.value.condition == "forbidden"
    # ban: 301, and the outcast list has bob
    out = moderation.admin_set(room, admin_query(({"jid": "bob@test", "affiliation": "outcast"}, None)),
                               "owner@test/a")
    assert codes(to(out, A)[0]) == {301}
    assert room.affiliation("bob@test") == "outcast"
    lst = moderation.admin_get(room, admin_query(({"affiliation": "outcast"}, None)), "owner@test/a")
    assert [i.get("jid") for i in lst] == ["bob@test"]
    with pytest.raises(StanzaError) as e:
        moderation.admin_get(room, admin_query(({"affiliation": "outcast"}, None)), A)
    assert e.value.condition == "forbidden"
    # absent users: affiliations apply when they come
    moderation.admin_set(room, admin_query(({"jid": "carol@test", "affiliation": "admin"}, None)),
                         "owner@test/a")
    out = join(room, CJ, "Carol")
    assert item(to(out, CJ)[-2]).get("role") == "moderator"
    # the last owner cannot go
    with pytest.raises(StanzaError) as e:
        moderation.admin_set(room, admin_query(({"jid": "owner@test", "affiliation": "none"}, None)),
                             "owner@test/a")
    assert e.value.condition == "conflict"
    # an admin cannot touch an owner
    with pytest.raises(StanzaError):
        moderation.admin_set(room, admin_query(({"jid": "owner@test", "affiliation": "outcast"}, None)), CJ)


def test_members_only_removes_non_members(room):
    join(room, A, "Alice")
    join(room, B, "Bob")
    moderation.admin_set(room, admin_query(({"jid": "alice@test", "affiliation": "member"}, None)),
                         "owner@test/a")
    new, c = cfgmod.apply_form(room.config, form(muc__roomconfig_membersonly="1"), 20)
    out = room.configure(new, c)
    (bob_out,) = [e for e in to(out, B) if e.tag == C + "presence"]
    assert 322 in codes(bob_out) and "Bob" not in room.occupants
    assert "Alice" in room.occupants
    # now a member loses membership: 321
    out = moderation.admin_set(room, admin_query(({"jid": "alice@test", "affiliation": "none"}, None)),
                               "owner@test/a")
    assert 321 in codes(to(out, A)[0]) and "Alice" not in room.occupants


def test_config_status_codes():
    base = RoomConfig()
    _, c = cfgmod.apply_form(base, form(muc__roomconfig_roomname="Falcot"), 20)
    assert c == [104]
    _, c = cfgmod.apply_form(base, form(muc__roomconfig_whois="anyone"), 20)
    assert c == [104, 172]
    _, c = cfgmod.apply_form(RoomConfig(whois="anyone"), form(muc__roomconfig_whois="moderators"), 20)
    assert c == [104, 173]
    _, c = cfgmod.apply_form(base, form(muc__roomconfig_enablelogging="0"), 20)
    assert c == [104, 171]
    _, c = cfgmod.apply_form(RoomConfig(logging=False), form(muc__roomconfig_enablelogging="1"), 20)
    assert c == [104, 170]
    _, c = cfgmod.apply_form(base, form(muc__roomconfig_roomname=""), 20)
    assert c == []
    new, _ = cfgmod.apply_form(base, form(muc__maxhistoryfetch="500", muc__roomconfig_maxusers="30",
                                          muc__roomconfig_passwordprotectedroom="1",
                                          muc__roomconfig_roomsecret="pw"), 20)
    assert new.history_length == 20 and new.max_users == 30 and new.password == "pw"
    with pytest.raises(StanzaError):
        cfgmod.apply_form(base, form(muc__roomconfig_whois="everybody"), 20)
    with pytest.raises(StanzaError):
        cfgmod.apply_form(base, form(muc__roomconfig_passwordprotectedroom="1"), 20)


def test_config_change_notifies_occupants(room):
    join(room, A, "Alice")
    qe = _owner_query(form(muc__roomconfig_whois="anyone"))
    with pytest.raises(StanzaError) as e:
        cfgmod.owner_set(room, qe, A)
    assert e.value.condition == "forbidden"
    out = cfgmod.owner_set(room, qe, "owner@test/a")
    assert {e.get("to") for e in out} == {A, "owner@test/a"}
    assert all(codes(e) == {104, 172} and e.get("type") == "groupchat" for e in out)


def test_destroy_with_alternate_venue(room):
    join(room, A, "Alice")
    qe = ET.Element(q(OWNER, "query"))
    d = ET.SubElement(qe, q(OWNER, "destroy"), {"jid": f"new@{SERVICE}"})
    ET.SubElement(d, q(OWNER, "reason")).text = "moved"
    out = cfgmod.owner_set(room, qe, "owner@test/a")
    assert len(out) == 2
    for e in out:
        assert e.get("type") == "unavailable"
        dd = e.find(f"{q(USER, 'x')}/{q(USER, 'destroy')}")
        assert dd.get("jid") == f"new@{SERVICE}" and dd.findtext(q(USER, "reason")) == "moved"
    assert room.destroyed and room.gone and not room.occupants


def test_shutdown_332(room):
    join(room, A, "Alice")
    out = room.shutdown()
    assert len(out) == 3  # alice sees the owner go, and herself; owner sees himself
    assert all(332 in codes(e) for e in out)


def test_error_bounce_removes_occupant_333(room):
    join(room, A, "Alice")
    err = message(A, type="error", to=f"{ROOM}/Owner")
    out = room.handle_private(err, A, "Owner")
    assert all(333 in codes(e) for e in out) and "Alice" not in room.occupants


def test_mediated_invite_members_only(room):
    room.config.members_only = True
    m = ET.Element(C + "message", {"from": "owner@test/a", "to": ROOM})
    x = ET.SubElement(m, q(USER, "x"))
    inv = ET.SubElement(x, q(USER, "invite"), {"to": "dave@test"})
    ET.SubElement(inv, q(USER, "reason")).text = "join us"
    announce, out = invites.handle(room, m, "owner@test/a")
    # the room's moderator (the owner) is told dave became a member (§9.3)
    assert announce.get("to") == "owner@test/a" and announce.get("type") is None
    item = announce.find(f"{q(USER, 'x')}/{q(USER, 'item')}")
    assert (item.get("affiliation"), item.get("jid")) == ("member", "dave@test")
    assert out.get("to") == "dave@test" and out.get("from") == ROOM
    # semi-anonymous room: dave learns the inviter's occupant JID, not the real one
    assert out.find(f"{q(USER, 'x')}/{q(USER, 'invite')}").get("from") == f"{ROOM}/Owner"
    assert out.findtext(C + "body") == f"{ROOM}/Owner invited you to the room {ROOM} (join us)"
    assert out.find("{jabber:x:conference}x").get("jid") == ROOM
    assert room.affiliation("dave@test") == "member"
    join(room, "dave@test/r", "Dave")
    m2 = ET.Element(C + "message", {"from": "dave@test/r", "to": ROOM})
    ET.SubElement(ET.SubElement(m2, q(USER, "x")), q(USER, "invite"), {"to": "eve@test"})
    with pytest.raises(StanzaError) as e:
        invites.handle(room, m2, "dave@test/r")
    assert e.value.condition == "forbidden"


def test_self_ping(room):
    join(room, A, "Alice")
    ping = ET.Element(C + "iq", {"type": "get", "id": "p", "from": A, "to": f"{ROOM}/Alice"})
    ET.SubElement(ping, "{urn:xmpp:ping}ping")

    def send(frm):
        ev = RoomEvent(None, room, ping, from_jid=frm, nick="Alice", payload=ping[0])
        selfping.occupant_ping(ev)
        return ev.out
    (res,) = send(A)
    assert res.get("type") == "result"
    with pytest.raises(StanzaError) as e:
        send(B)
    assert e.value.condition == "not-acceptable"


def test_iq_forwarded_to_occupant(room):
    join(room, A, "Alice")
    iq = ET.Element(C + "iq", {"type": "get", "id": "v1", "from": "owner@test/a", "to": f"{ROOM}/Alice"})
    ET.SubElement(iq, "{vcard-temp}vCard")
    (fwd,) = room.forward_iq(iq, "owner@test/a", "Alice")
    assert fwd.get("to") == A and fwd.get("from") == f"{ROOM}/Owner" and fwd.get("id") != "v1"
    reply = ET.Element(C + "iq", {"type": "result", "id": fwd.get("id"), "from": A, "to": f"{ROOM}/Owner"})
    (back,) = room.iq_reply(reply, A)
    assert back.get("to") == "owner@test/a" and back.get("id") == "v1" and back.get("from") == f"{ROOM}/Alice"


async def test_message_moderation_tombstone(room):
    join(room, A, "Alice")
    out = room.handle_groupchat(message(A, "rude"), A)
    sid = out[0].find(q(SID, "stanza-id")).get("id")
    archived = {k: el for k, _, _, el in room.archive_out}
    room.archive_out.clear()

    async def lookup(key):
        return archived.get(key)
    req = ET.Element("{urn:xmpp:message-moderate:1}moderate", {"id": sid})
    ET.SubElement(req, "{urn:xmpp:message-retract:1}retract")
    ET.SubElement(req, "{urn:xmpp:message-moderate:1}reason").text = "spam"
    with pytest.raises(StanzaError) as e:
        await moderation.moderate(room, req, A, lookup)
    assert e.value.condition == "forbidden"
    out = await moderation.moderate(room, req, "owner@test/a", lookup)
    assert len(out) == 2
    r = out[0].find("{urn:xmpp:message-retract:1}retract")
    assert r.get("id") == sid and r.find("{urn:xmpp:message-moderate:1}moderated").get("by") == f"{ROOM}/Owner"
    # the XEP-0425 0.2 form rides along for clients that read only that one
    a = out[0].find("{urn:xmpp:fasten:0}apply-to")
    assert a is not None and a.get("id") == sid
    assert a.find("{urn:xmpp:message-moderate:0}moderated/{urn:xmpp:message-retract:0}retract") is not None
    ((key, tomb),) = room.archive_edits
    assert key == sid and tomb.find(C + "body") is None
    assert tomb.find("{urn:xmpp:message-retract:1}retracted") is not None
    assert not room.history.entries


def test_persistence_roundtrip(room, env):
    room.config.persistent = True
    room.config.name = "Lobby"
    room.subject = "Hi"
    room.affiliations["alice@test"] = "member"
    data = persistence.dump(room)
    r2 = persistence.load("room", data, env)
    assert r2.config == room.config and r2.affiliations == room.affiliations
    assert r2.subject == "Hi" and r2.secret == room.secret
    assert r2.occupant_id("alice@test") == room.occupant_id("alice@test")


def features(room) -> set[str]:
    return {f.get("var") for f in room.disco_info().iter("{http://jabber.org/protocol/disco#info}feature")}


def test_disco_info_features(room):
    room.config.persistent = True
    room.config.members_only = True
    info = room.disco_info()
    feats = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {"http://jabber.org/protocol/muc", "muc_persistent", "muc_membersonly", "muc_semianonymous",
            "muc_unmoderated", "muc_public", "muc_unsecured", "urn:xmpp:mam:2", "urn:xmpp:sid:0",
            "urn:xmpp:occupant-id:0", "http://jabber.org/protocol/muc#self-ping-optimization"} <= feats
    fields = {f.get("var"): f.findtext(q(DATA, "value")) for f in info.iter(q(DATA, "field"))}
    assert fields["FORM_TYPE"] == "http://jabber.org/protocol/muc#roominfo"
    assert fields["muc#roominfo_occupants"] == "1"


def test_thousand_occupants(env):
    r = Room("big", env)
    r.affiliations["owner@test"] = "owner"
    t0 = time.perf_counter()
    for i in range(1000):
        jid = f"user{i}@test/r"
        out = r.handle_presence(presence(jid, f"u{i}", history={"maxstanzas": "0"}), jid, f"u{i}")
        # the newcomer sees everyone (i others + itself), everyone else sees the newcomer
        assert len(out) == 2 * i + 2
    joined = time.perf_counter() - t0
    assert len(r.occupants) == 1000
    t1 = time.perf_counter()
    out = r.handle_groupchat(message("user7@test/r", "hello everyone"), "user7@test/r")
    fanout = time.perf_counter() - t1
    assert len(out) == 1000 and len({e.get("to") for e in out}) == 1000
    assert all(e.findtext(C + "body") == "hello everyone" for e in out)
    # generous bounds on a shared machine: these catch accidental quadratic work per stanza
    assert fanout < 0.5, fanout
    assert joined < 30, joined


# -- one nickname from several resources of one user (as Prosody allows) -----------------

A2 = "alice@test/phone"


def test_second_session_joins_the_same_nick(room):
    join(room, A, "Alice")
    join(room, B, "Bob")
    out = join(room, A2, "Alice")
    assert {e.get("to") for e in out} == {A2}            # the others see nothing new
    pres = [e for e in out if e.tag == C + "presence"]
    assert {e.get("from") for e in pres} == {f"{ROOM}/Owner", f"{ROOM}/Bob", f"{ROOM}/Alice"}
    own = [e for e in pres if e.get("from") == f"{ROOM}/Alice"]
    assert len(own) == 1 and 110 in codes(own[0])
    assert any(e.tag == C + "message" for e in out)      # the subject
    assert room.occupants["Alice"].sessions == [A, A2] and room.by_jid[A2] is room.occupants["Alice"]
    # another user still cannot take the nick
    with pytest.raises(StanzaError) as e:
        join(room, CJ, "Alice")
    assert e.value.condition == "conflict"


def test_every_session_gets_groupchat_and_private_messages(room):
    join(room, A, "Alice")
    join(room, A2, "Alice")
    join(room, B, "Bob")
    out = room.handle_groupchat(message(B, "hi"), B)
    assert sorted(e.get("to") for e in out) == sorted(["owner@test/a", A, A2, B])
    pm = room.handle_private(message(B, "psst", to=f"{ROOM}/Alice", type="chat"), B, "Alice")
    assert sorted(e.get("to") for e in pm) == sorted([A, A2])
    # what Alice sends from either device comes from her one nick
    out = room.handle_groupchat(message(A2, "from the phone"), A2)
    assert {e.get("from") for e in out} == {f"{ROOM}/Alice"} and len(out) == 4


def test_one_session_leaving_keeps_the_occupant(room):
    join(room, A, "Alice")
    join(room, A2, "Alice")
    join(room, B, "Bob")
    out = room.handle_presence(presence(A, "Alice", type="unavailable", x=False), A, "Alice")
    assert [e.get("to") for e in out] == [A]              # only the leaving session is told
    assert out[0].get("type") == "unavailable" and 110 in codes(out[0])
    occ = room.occupants["Alice"]
    assert occ.sessions == [A2] and occ.jid == A2 and A not in room.by_jid
    with pytest.raises(StanzaError):                      # that session is out
        room.handle_groupchat(message(A, "still here?"), A)
    out = room.handle_presence(presence(A2, "Alice", type="unavailable", x=False), A2, "Alice")
    assert "Alice" not in room.occupants                  # the last one: the occupant leaves
    assert sorted(e.get("to") for e in out) == sorted(["owner@test/a", A2, B])


def test_a_kick_removes_every_session_and_nick_change_needs_one(room):
    join(room, A, "Alice")
    join(room, A2, "Alice")
    with pytest.raises(StanzaError) as e:
        room.handle_presence(presence(A, "Ally", x=False), A, "Ally")
    assert e.value.condition == "not-acceptable"
    out = room.set_role(room.occupants["Alice"], "none", actor="Owner")
    assert sorted(e.get("to") for e in out) == sorted(["owner@test/a", A, A2])
    assert all(307 in codes(e) for e in out)
    assert A not in room.by_jid and A2 not in room.by_jid and "Alice" not in room.occupants


# -- voice requests (XEP-0045 §7.13, §8.6) -------------------------------------------

def _request(frm, **fields):
    m = ET.Element(C + "message", {"from": frm, "to": ROOM})
    x = ET.SubElement(m, q(DATA, "x"), {"type": "submit"})
    for var, value in {"FORM_TYPE": "http://jabber.org/protocol/muc#request", **fields}.items():
        f = ET.SubElement(x, q(DATA, "field"), {"var": var})
        ET.SubElement(f, q(DATA, "value")).text = value
    return m, x


def test_voice_request_goes_to_moderators_and_an_approval_grants_voice(room):
    from xmppd.modules.muc import voice
    room.config.moderated = True
    join(room, A, "Alice")
    assert room.occupants["Alice"].role == "visitor"
    m, x = _request(A, **{"muc#role": "participant"})
    out = voice.handle(room, m, A, voice.request_form(m))
    assert [e.get("to") for e in out] == ["owner@test/a"]      # the moderators only
    form = out[0].find(q(DATA, "x"))
    values = {f.get("var"): f.findtext(q(DATA, "value")) for f in form.findall(q(DATA, "field"))}
    assert values["muc#jid"] == A and values["muc#roomnick"] == "Alice"
    assert values["muc#request_allow"] == "false" and form.get("type") == "form"
    # the moderator answers: allowed
    m, x = _request("owner@test/a", **{"muc#role": "participant", "muc#jid": A,
                                       "muc#roomnick": "Alice", "muc#request_allow": "true"})
    out = voice.handle(room, m, "owner@test/a", voice.request_form(m))
    assert room.occupants["Alice"].role == "participant"
    mine = to(out, A)[0]
    assert item(mine).get("role") == "participant"
    assert item(mine).findtext(q(USER, "reason")) == "Voice granted"
    # now a participant: a new request is ignored; a refusal changes nothing
    m, _ = _request(A)
    assert voice.handle(room, m, A, voice.request_form(m)) == []
    with pytest.raises(StanzaError):
        m, _ = _request(B)
        voice.handle(room, m, B, voice.request_form(m))       # not an occupant


def test_voice_request_through_the_service_dispatch(room):
    """Not a groupchat message, not an invitation: the form is what makes it a request."""
    from xmppd.modules.muc import voice
    m, _ = _request(A)
    assert voice.request_form(m) is not None
    m.remove(m[0])
    assert voice.request_form(m) is None
    assert "http://jabber.org/protocol/muc#request" in features(room)


# -- registering with a room: reserved nicknames (XEP-0045 §7.10, §7.12) ---------------

def _register_form(nick):
    query = ET.Element(q("jabber:iq:register", "query"))
    x = ET.SubElement(query, q(DATA, "x"), {"type": "submit"})
    for var, value in (("FORM_TYPE", "http://jabber.org/protocol/muc#register"),
                       ("muc#register_roomnick", nick)):
        f = ET.SubElement(x, q(DATA, "field"), {"var": var})
        ET.SubElement(f, q(DATA, "value")).text = value
    return query


def test_register_reserves_a_nick_and_makes_a_member(room):
    from xmppd.modules.muc import register
    form = register.get(room, "alice@test")
    assert form.find(q(DATA, "x")) is not None
    register.set_(room, _register_form("Alice"), "alice@test")
    assert room.nicks == {"alice@test": "Alice"} and room.affiliation("alice@test") == "member"
    got = register.get(room, "alice@test")
    assert got.find(q("jabber:iq:register", "registered")) is not None
    assert got.findtext(q("jabber:iq:register", "username")) == "Alice"
    info = register.nick_info(room, "alice@test")
    assert info.find(q("http://jabber.org/protocol/disco#info", "identity")).get("name") == "Alice"
    assert len(register.nick_info(room, "bob@test")) == 0
    # nobody else may join as Alice, nor register it; Alice may
    with pytest.raises(StanzaError) as e:
        join(room, B, "Alice")
    assert e.value.condition == "conflict"
    with pytest.raises(StanzaError) as e:
        register.set_(room, _register_form("Alice"), "bob@test")
    assert e.value.condition == "conflict"
    join(room, A, "Alice")
    assert room.occupants["Alice"].jid == A
    # giving the membership up frees the nickname
    remove = ET.Element(q("jabber:iq:register", "query"))
    ET.SubElement(remove, q("jabber:iq:register", "remove"))
    register.set_(room, remove, "alice@test")
    assert room.nicks == {} and room.affiliation("alice@test") == "none"
    with pytest.raises(StanzaError) as e:
        register.set_(room, remove, "alice@test")
    assert e.value.condition == "item-not-found"


def test_registration_rules_and_persistence(room, env):
    from xmppd.modules.muc import persistence, register
    room.affiliations["eve@test"] = "outcast"
    with pytest.raises(StanzaError) as e:
        register.get(room, "eve@test")
    assert e.value.condition == "forbidden"
    room.config.members_only = True
    with pytest.raises(StanzaError) as e:
        register.set_(room, _register_form("Bob"), "bob@test")
    assert e.value.condition == "registration-required"
    room.affiliations["bob@test"] = "member"
    register.set_(room, _register_form("Bob"), "bob@test")
    assert room.nicks["bob@test"] == "Bob"
    again = persistence.load("room", persistence.dump(room), env)
    assert again.nicks == {"bob@test": "Bob"}
    room.set_affiliation("bob@test", "none")      # an admin takes the membership away
    assert "bob@test" not in room.nicks


def test_nick_change_to_a_reserved_nick_is_refused(room):
    from xmppd.modules.muc import register
    register.set_(room, _register_form("Alice"), "alice@test")
    join(room, B, "Bob")
    with pytest.raises(StanzaError) as e:
        room.handle_presence(presence(B, "Alice", x=False), B, "Alice")
    assert e.value.condition == "conflict" and "Bob" in room.occupants

"""Message Archive Management (modules/mam): what is archived and what is not,
queries and their paging both ways, ids, preferences and expiry, through the
socket-free harness (what a client reads)."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from tests.harness import DOMAIN, Harness, config_text
from xmppd.xmpp import ns
from xmppd.xmpp.stanza import to_xml

MODULES = ("mam",)
RESULT = f"{{{ns.MAM}}}result"
SID = f"{{{ns.SID}}}stanza-id"
BODY = f"{{{ns.CLIENT}}}body"
FIN = f"{{{ns.MAM}}}fin"
RSM = f"{{{ns.RSM}}}set"
ERR = f"{{{ns.CLIENT}}}error"


def archive(h):
    return h.server.storage.archive(DOMAIN, "archive")


async def bodies_in_archive(h, user: str) -> list[str]:
    items = await archive(h).query(user)
    return [ET.fromstring(i.value).findtext(BODY) for i in items]


def condition(reply: ET.Element) -> str | None:
    err = reply.find(ERR)
    if err is None:
        return None
    return next(c.tag.rpartition("}")[2] for c in err if c.tag.startswith(f"{{{ns.STANZAS_ERR}}}")
                and not c.tag.endswith("}text"))


def form(**fields) -> str:
    out = f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{ns.MAM}</value></field>"
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        out += f"<field var='{var.replace('_', '-')}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"
    return out + "</x>"


def rsm(**kw) -> str:
    parts = "".join(f"<{k}/>" if v == "" else f"<{k}>{v}</{k}>" for k, v in kw.items())
    return f"<set xmlns='{ns.RSM}'>{parts}</set>"


class Page:
    def __init__(self, reply, messages):
        self.reply = reply
        self.messages = messages
        self.fin = reply.find(FIN)
        self.ids = [m.find(RESULT).get("id") for m in messages]
        self.bodies = [m.find(f"{RESULT}/{{{ns.FORWARD}}}forwarded/{{{ns.CLIENT}}}message").findtext(BODY)
                       for m in messages]

    @property
    def complete(self) -> bool:
        return self.fin.get("complete") == "true"

    def rsm(self, name: str) -> str | None:
        return self.fin.findtext(f"{RSM}/{{{ns.RSM}}}{name}")

    @property
    def first_index(self) -> str | None:
        el = self.fin.find(f"{RSM}/{{{ns.RSM}}}first")
        return None if el is None else el.get("index")


async def query(c, inner: str = "", *, queryid: str = "q1", to: str | None = None) -> Page:
    reply = await c.iq("set", f"<query xmlns='{ns.MAM}' queryid='{queryid}'>{inner}</query>", to=to)
    messages = [e for e in c.received if e.find(RESULT) is not None]
    for m in messages:
        c.received.remove(m)
    return Page(reply, messages)


async def fill(h, user: str, n: int, *, with_jid: str = "bob@example.com", start: float = 1000.0,
               step: float = 10.0) -> list[str]:
    """``n`` archived messages b0..b(n-1), ``step`` seconds apart; their keys."""
    keys = []
    for i in range(n):
        el = ET.Element(f"{{{ns.CLIENT}}}message", {"type": "chat", "to": f"{user}@{DOMAIN}",
                                                   "from": with_jid})
        ET.SubElement(el, BODY).text = f"b{i}"
        keys.append(await archive(h).append(user, to_xml(el), with_jid=with_jid, when=start + i * step))
    return keys


# -- what is archived ---------------------------------------------------------------

async def test_a_chat_is_archived_both_ways_and_delivered_with_its_archive_id():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>hi</body></message>")
        got = await bob.next("message")
        sid = got.find(SID)
        assert sid is not None and sid.get("by") == "bob@example.com"
        bobs = await archive(h).query("bob")
        alices = await archive(h).query("alice")
        assert [i.key for i in bobs] == [sid.get("id")]
        assert bobs[0].with_jid == "alice@example.com" and alices[0].with_jid == "bob@example.com"
        assert await bodies_in_archive(h, "alice") == ["hi"]


@pytest.mark.parametrize("stanza", [
    "<message to='bob@example.com' type='groupchat'><body>x</body></message>",
    "<message to='bob@example.com' type='headline'><body>x</body></message>",
    "<message to='bob@example.com' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>",
    "<message to='bob@example.com' type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
    "<message to='bob@example.com' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<message to='bob@example.com' type='chat'><thread>t</thread></message>",
    "<message to='nobody@example.com' type='chat'><body>x</body></message>",
])
async def test_what_is_not_archived(stanza):
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza(stanza)
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>marker</body></message>")
        await alice.server_tasks()
        assert await bodies_in_archive(h, "alice") == ["marker"]
        assert await bodies_in_archive(h, "bob") == ["marker"]


@pytest.mark.parametrize("stanza", [
    "<message to='bob@example.com'><body>normal</body></message>",
    "<message to='bob@example.com' type='chat'><received xmlns='urn:xmpp:receipts' id='1'/></message>",
    "<message to='bob@example.com' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
    "<message to='bob@example.com' type='chat'><store xmlns='urn:xmpp:hints'/><thread>t</thread></message>",
    ("<message to='bob@example.com' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/>"
     "<store xmlns='urn:xmpp:hints'/></message>"),
])
async def test_what_is_archived_without_a_chat_body(stanza):
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza(stanza)
        await alice.server_tasks()
        assert len(await archive(h).query("alice")) == 1
        assert len(await archive(h).query("bob")) == 1


async def test_chat_states_are_stripped_from_the_stored_copy():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>hi</body>"
                                "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        got = await bob.next("message")
        assert got.find(f"{{{ns.CHATSTATES}}}active") is not None   # delivered as sent
        stored = ET.fromstring((await archive(h).query("bob"))[0].value)
        assert stored.find(f"{{{ns.CHATSTATES}}}active") is None
        assert stored.findtext(BODY) == "hi"


async def test_a_message_to_oneself_is_archived_once():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await alice.send_stanza("<message to='alice@example.com' type='chat'><body>note</body></message>")
        await alice.server_tasks()
        assert await bodies_in_archive(h, "alice") == ["note"]


async def test_a_forged_stanza_id_is_removed_and_others_kept():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza(
            "<message to='bob@example.com' type='chat'><body>hi</body>"
            "<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/>"
            "<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.com' id='other'/></message>")
        got = await bob.next("message")
        ids = {(s.get("by"), s.get("id")) for s in got.findall(SID)}
        key = (await archive(h).query("bob"))[0].key
        assert ids == {("room@muc.example.com", "other"), ("bob@example.com", key)}
        stored = ET.fromstring((await archive(h).query("bob"))[0].value)
        assert [s.get("id") for s in stored.findall(SID)] == ["other"]


async def test_an_unarchived_message_still_loses_a_forged_stanza_id():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza(
            "<message to='bob@example.com' type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/>"
            "<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/></message>")
        got = await bob.next("message")
        assert got.find(SID) is None
        assert await archive(h).query("bob") == []


async def test_an_offline_account_archives_incoming_messages():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await h.adduser("carol@example.com")
        await alice.send_stanza("<message to='carol@example.com' type='chat'><body>later</body></message>")
        await alice.server_tasks()
        assert await bodies_in_archive(h, "carol") == ["later"]


# -- queries --------------------------------------------------------------------------

async def test_forward_paging_with_after_until_complete():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        keys = await fill(h, "alice", 5)
        p = await query(alice, rsm(max=2))
        assert p.bodies == ["b0", "b1"] and p.ids == keys[:2]
        assert not p.complete and p.rsm("count") == "5" and p.first_index == "0"
        assert p.rsm("first") == keys[0] and p.rsm("last") == keys[1]
        p = await query(alice, rsm(max=2, after=p.rsm("last")))
        assert p.bodies == ["b2", "b3"] and not p.complete and p.first_index is None
        p = await query(alice, rsm(max=2, after=p.rsm("last")))
        assert p.bodies == ["b4"] and p.complete
        assert all(m.find(RESULT).get("queryid") == "q1" for m in p.messages)
        assert p.fin.get("queryid") == "q1"


async def test_backward_paging_from_the_last_page():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        await fill(h, "alice", 5)
        p = await query(alice, rsm(max=2, before=""))
        assert p.bodies == ["b3", "b4"] and not p.complete
        p = await query(alice, rsm(max=2, before=p.rsm("first")))
        assert p.bodies == ["b1", "b2"] and not p.complete
        p = await query(alice, rsm(max=2, before=p.rsm("first")))
        assert p.bodies == ["b0"] and p.complete


async def test_flip_page_sends_newest_first_but_first_last_stay():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        keys = await fill(h, "alice", 4)
        p = await query(alice, rsm(max=3, before="") + "<flip-page/>")
        assert p.bodies == ["b3", "b2", "b1"]
        assert p.rsm("first") == keys[1] and p.rsm("last") == keys[3]


async def test_index_skips_and_max_zero_counts_only():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        await fill(h, "alice", 5)
        p = await query(alice, rsm(max=2, index=3))
        assert p.bodies == ["b3", "b4"] and p.first_index == "3" and p.complete
        p = await query(alice, rsm(max=0))
        assert p.bodies == [] and p.rsm("count") == "5" and not p.complete


async def test_page_size_is_capped_by_max_archive_query_results():
    async with Harness(modules=MODULES, host_extra="max_archive_query_results = 3\n") as h:
        alice = await h.client("alice@example.com/phone")
        await fill(h, "alice", 5)
        assert (await query(alice)).bodies == ["b0", "b1", "b2"]
        assert (await query(alice, rsm(max=100))).bodies == ["b0", "b1", "b2"]


async def test_form_filters_with_start_end_and_ids():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        keys = await fill(h, "alice", 4)                                  # 1000, 1010, 1020, 1030
        await fill(h, "alice", 2, with_jid="carol@example.com", start=1005)  # 1005, 1015
        p = await query(alice, form(**{"with": "carol@example.com/res"}))
        assert p.bodies == ["b0", "b1"] and p.rsm("count") == "2"
        p = await query(alice, form(start="1970-01-01T00:16:50Z", end="1970-01-01T00:17:00Z"))
        assert p.bodies == ["b1", "b1", "b2"]    # 1010 (bob), 1015 (carol), 1020 (bob)
        p = await query(alice, form(ids=[keys[3], keys[0]]))
        assert p.ids == [keys[0], keys[3]] and p.complete


async def test_after_id_and_before_id_narrow_the_count():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        keys = await fill(h, "alice", 6)
        p = await query(alice, form(after_id=keys[1], before_id=keys[4]))
        assert p.bodies == ["b2", "b3"] and p.rsm("count") == "2" and p.complete


async def test_unknown_ids_are_item_not_found():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        await fill(h, "alice", 2)
        for inner in (rsm(after="nope"), rsm(before="nope"), form(after_id="nope"),
                      form(before_id="nope"), form(ids=["nope"])):
            assert condition((await query(alice, inner)).reply) == "item-not-found", inner


async def test_bad_queries_are_bad_requests():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        assert condition((await query(alice, form(start="yesterday"))).reply) == "bad-request"
        assert condition((await query(alice, form(bogus="x"))).reply) == "bad-request"
        assert condition((await query(alice, form(**{"with": "@@"}))).reply) == "jid-malformed"
        assert condition((await query(alice, rsm(max=-1))).reply) == "bad-request"


async def test_only_the_account_itself_may_query_its_archive():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        await fill(h, "bob", 2)
        p = await query(alice, to="bob@example.com")
        assert condition(p.reply) == "service-unavailable" and p.messages == []
        for payload in (f"<metadata xmlns='{ns.MAM}'/>", f"<prefs xmlns='{ns.MAM}'/>",
                        f"<query xmlns='{ns.MAM}'/>"):
            assert condition(await alice.iq("get", payload, to="bob@example.com")) == "service-unavailable"


async def test_query_form_and_metadata():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<metadata xmlns='{ns.MAM}'/>")
        assert list(reply.find(f"{{{ns.MAM}}}metadata")) == []
        keys = await fill(h, "alice", 3)
        md = (await alice.iq("get", f"<metadata xmlns='{ns.MAM}'/>")).find(f"{{{ns.MAM}}}metadata")
        assert md.find(f"{{{ns.MAM}}}start").get("id") == keys[0]
        assert md.find(f"{{{ns.MAM}}}end").get("id") == keys[2]
        assert md.find(f"{{{ns.MAM}}}end").get("timestamp") == "1970-01-01T00:17:00.000Z"
        reply = await alice.iq("get", f"<query xmlns='{ns.MAM}'/>")
        x = reply.find(f"{{{ns.MAM}}}query/{{{ns.DATA}}}x")
        assert {f.get("var") for f in x} == {"FORM_TYPE", "with", "start", "end", "before-id",
                                             "after-id", "ids", "{urn:xmpp:fulltext:0}fulltext"}


async def test_an_archived_chat_comes_back_through_a_query():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>hello</body></message>")
        sid = (await bob.next("message")).find(SID).get("id")
        p = await query(bob, form(**{"with": "alice@example.com"}))
        assert p.ids == [sid] and p.bodies == ["hello"]
        assert p.messages[0].get("to") == "bob@example.com/pc"
        assert p.messages[0].get("from") == "bob@example.com"


# -- preferences ----------------------------------------------------------------------

async def test_preferences_round_trip_and_never_wins():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone")
        reply = await alice.iq("get", f"<prefs xmlns='{ns.MAM}'/>")
        assert reply.find(f"{{{ns.MAM}}}prefs").get("default") == "always"
        reply = await alice.iq("set", f"<prefs xmlns='{ns.MAM}' default='never'>"
                                      "<always><jid>bob@example.com/x</jid><jid>carol@example.com</jid></always>"
                                      "<never><jid>carol@example.com</jid></never></prefs>")
        p = reply.find(f"{{{ns.MAM}}}prefs")
        assert p.get("default") == "never"
        assert [j.text for j in p.find(f"{{{ns.MAM}}}always")] == ["bob@example.com"]
        assert [j.text for j in p.find(f"{{{ns.MAM}}}never")] == ["carol@example.com"]
        again = (await alice.iq("get", f"<prefs xmlns='{ns.MAM}'/>")).find(f"{{{ns.MAM}}}prefs")
        assert ET.tostring(again) == ET.tostring(p)
        assert condition(await alice.iq("set", f"<prefs xmlns='{ns.MAM}' default='sometimes'/>")) == "bad-request"
        assert condition(await alice.iq("set", f"<prefs xmlns='{ns.MAM}' default='always'>"
                                               "<never><jid>@@</jid></never></prefs>")) == "jid-malformed"


async def test_preferences_decide_what_is_archived():
    async with Harness(modules=MODULES) as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        carol = await h.client("carol@example.com/pc", available=True)
        await alice.iq("set", f"<prefs xmlns='{ns.MAM}' default='never'>"
                              "<always><jid>bob@example.com</jid></always></prefs>")
        await bob.send_stanza("<message to='alice@example.com' type='chat'><body>from bob</body></message>")
        await carol.send_stanza("<message to='alice@example.com' type='chat'><body>from carol</body></message>")
        await alice.send_stanza("<message to='carol@example.com' type='chat'><body>to carol</body></message>")
        await alice.server_tasks()
        assert await bodies_in_archive(h, "alice") == ["from bob"]
        assert await bodies_in_archive(h, "carol") == ["from carol", "to carol"]


async def test_the_roster_policy_archives_roster_contacts_only():
    async with Harness(modules=("roster", "mam"), host_extra='default_archive_policy = "roster"\n') as h:
        alice = await h.client("alice@example.com/phone", available=True)
        bob = await h.client("bob@example.com/pc", available=True)
        carol = await h.client("carol@example.com/pc", available=True)
        reply = await alice.iq("set", "<query xmlns='jabber:iq:roster'><item jid='bob@example.com'/></query>")
        assert reply.get("type") == "result"
        await bob.send_stanza("<message to='alice@example.com' type='chat'><body>bob</body></message>")
        await carol.send_stanza("<message to='alice@example.com' type='chat'><body>carol</body></message>")
        await alice.send_stanza("<message to='alice@example.com' type='chat'><body>self</body></message>")
        await alice.server_tasks()
        assert await bodies_in_archive(h, "alice") == ["bob", "self"]
        reply = await alice.iq("get", f"<prefs xmlns='{ns.MAM}'/>")
        assert reply.find(f"{{{ns.MAM}}}prefs").get("default") == "roster"


# -- retention ------------------------------------------------------------------------

async def test_cleanup_deletes_what_has_expired():
    async with Harness(modules=MODULES, host_extra='archive_expires_after = "1d"\n') as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>old</body></message>")
        await alice.server_tasks()
        mam = h.host().provided("mam")
        assert await mam.cleanup() == 0                       # nothing is a day old yet
        assert await bodies_in_archive(h, "bob") == ["old"]
        assert await mam.cleanup(time.time() + 2 * 86400) == 2   # alice's copy and bob's
        assert await archive(h).query("bob") == [] and await archive(h).query("alice") == []
        assert await mam.cleanup(time.time() + 3 * 86400) == 0


async def test_never_expires_keeps_everything():
    async with Harness(modules=MODULES, host_extra='archive_expires_after = "never"\n') as h:
        alice = await h.client("alice@example.com/phone", available=True)
        await h.client("bob@example.com/pc", available=True)
        await alice.send_stanza("<message to='bob@example.com' type='chat'><body>kept</body></message>")
        await alice.server_tasks()
        assert await h.host().provided("mam").cleanup(time.time() + 10 * 365 * 86400) == 0
        assert await bodies_in_archive(h, "bob") == ["kept"]


@pytest.mark.parametrize("setting, name", [
    ('archive_expires_after = "soon"', "archive_expires_after"),
    ('default_archive_policy = "sometimes"', "default_archive_policy"),
])
async def test_a_bad_setting_is_an_error_at_its_place(tmp_path, setting, name):
    from xmppd.app import FINDER
    from xmppd.config import parse_config_text
    from xmppd.config.lexer import ConfigError
    from xmppd.core.server import Server
    from xmppd.storage import open_storage

    path = tmp_path / "xmppd.cfg.lua"
    text = config_text(modules=MODULES, host_extra=setting + "\n", data_path=f"{tmp_path}/data")
    path.write_text(text)
    cfg = parse_config_text(text, filename=str(path), base_dir=str(tmp_path))
    storage = await open_storage("memory")
    server = Server(cfg, storage=storage, finder=FINDER)
    try:
        with pytest.raises(ConfigError) as exc:
            await server.start()
    finally:
        await server.stop()
        await storage.close()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if setting in t)
    assert name in str(exc.value) and f"xmppd.cfg.lua:{line}:" in str(exc.value)

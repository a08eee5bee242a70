"""Message Archive Management (XEP-0313) with slixmpp's xep_0313 plugin, plus
preferences, retention, stanza ids (XEP-0359) and a large archive."""
from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmppd.modules.mam.retention import parse_expiry
from xmppd.xmpp.time import parse_stamp, utc_stamp_ms as stamp

from .clients import logged_in, slix_close
from .conftest import STORAGE, start_server

PLUGINS = ("xep_0030", "xep_0313", "xep_0280", "xep_0359")
NS = "urn:xmpp:mam:2"
SID = "{urn:xmpp:sid:0}stanza-id"
HOST = "xmppd.test"


async def server(tmp_path, certs, host_extra=""):
    return await start_server(tmp_path, certs,
                              extra='modules_enabled = { "disco", "mam", "carbons" }\n',
                              host_extra=host_extra)


@pytest.fixture
async def srv(tmp_path, certs):
    s = await server(tmp_path, certs)
    try:
        yield s
    finally:
        await s.server.stop()


@pytest.fixture
async def pair(srv):
    await srv.adduser("alice@xmppd.test")
    await srv.adduser("bob@xmppd.test")
    async with logged_in(srv, "alice@xmppd.test/phone", "bob@xmppd.test/pc", plugins=PLUGINS) as (a, b):
        yield a, b


def mam_api(srv):
    return srv.server.hosts[HOST].provided("mam")


def archive(srv):
    return srv.server.storage.archive(HOST, "archive")


async def chat(sender, receiver, body):
    sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
    got = await receiver.next_message()
    assert got["body"] == body
    return got


async def query(c, *, with_jid=None, start=None, end=None, rsm=None, extra=None, flip=False):
    """Send one MAM query; returns (bodies, result messages, fin IQ)."""
    iq = c.make_iq_set()
    q = ET.SubElement(iq.xml, f"{{{NS}}}query", {"queryid": iq["id"]})
    fields = dict(extra or {})
    if with_jid:
        fields["with"] = with_jid
    if start:
        fields["start"] = start
    if end:
        fields["end"] = end
    if fields:
        x = ET.SubElement(q, "{jabber:x:data}x", {"type": "submit"})
        f = ET.SubElement(x, "{jabber:x:data}field", {"var": "FORM_TYPE", "type": "hidden"})
        ET.SubElement(f, "{jabber:x:data}value").text = NS
        for var, val in fields.items():
            f = ET.SubElement(x, "{jabber:x:data}field", {"var": var})
            for v in (val if isinstance(val, list) else [val]):
                ET.SubElement(f, "{jabber:x:data}value").text = v
    if rsm:
        s = ET.SubElement(q, "{http://jabber.org/protocol/rsm}set")
        for k, v in rsm.items():
            ET.SubElement(s, f"{{http://jabber.org/protocol/rsm}}{k}").text = v
    if flip:
        ET.SubElement(q, f"{{{NS}}}flip-page")
    results = []
    qid = iq["id"]

    def collect(msg):
        r = msg.xml.find(f"{{{NS}}}result")
        if r is not None and r.get("queryid") == qid:
            results.append(msg)
    handler = f"mam-{qid}"
    c.register_handler(Callback(handler, MatchXPath(f"{{jabber:client}}message/{{{NS}}}result"), collect))
    try:
        fin = await iq.send(timeout=10)
    finally:
        c.remove_handler(handler)
    bodies = []
    for msg in results:
        r = msg.xml.find(f"{{{NS}}}result")
        inner = r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")
        bodies.append(inner.findtext("{jabber:client}body"))
    return bodies, results, fin


def fin_info(fin):
    el = fin.xml.find(f"{{{NS}}}fin")
    s = el.find("{http://jabber.org/protocol/rsm}set")
    first = s.find("{http://jabber.org/protocol/rsm}first")
    last = s.find("{http://jabber.org/protocol/rsm}last")
    count = s.findtext("{http://jabber.org/protocol/rsm}count")
    return {"complete": el.get("complete"), "first": first.text if first is not None else None,
            "last": last.text if last is not None else None,
            "count": int(count) if count is not None else None,
            "index": first.get("index") if first is not None else None}


def ids_of(results):
    return [m.xml.find(f"{{{NS}}}result").get("id") for m in results]


# ---------------------------------------------------------------- tests
async def test_disco_features_on_account(pair):
    a, _ = pair
    info = await a.plugin["xep_0030"].get_info(jid="alice@xmppd.test")
    feats = info["disco_info"]["features"]
    assert NS in feats and f"{NS}#extended" in feats and "urn:xmpp:sid:0" in feats


async def test_both_directions_archived_with_stanza_id(srv, pair):
    a, b = pair
    got = await chat(b, a, "hello alice")
    sid = got.xml.find(SID)
    assert sid is not None and sid.get("by") == "alice@xmppd.test"
    await chat(a, b, "hello bob")
    bodies, results, fin = await query(a)
    assert bodies == ["hello alice", "hello bob"]
    assert ids_of(results)[0] == sid.get("id")
    info = fin_info(fin)
    assert info["complete"] == "true" and info["count"] == 2
    assert info["first"] == ids_of(results)[0] and info["last"] == ids_of(results)[1]
    # each result: from the archive owner, forwarded with a delay stamp
    r = results[0]
    assert r["from"] == "alice@xmppd.test" and r["to"] == a.boundjid
    fwd = r.xml.find(f"{{{NS}}}result/{{urn:xmpp:forward:0}}forwarded")
    assert fwd.find("{urn:xmpp:delay}delay").get("stamp").endswith("Z")
    inner = fwd.find("{jabber:client}message")
    assert inner.get("from") == "bob@xmppd.test/pc" and inner.get("to") == "alice@xmppd.test"
    # bob's archive has the same conversation from his side
    bodies, _, _ = await query(b)
    assert bodies == ["hello alice", "hello bob"]


async def test_slixmpp_retrieve_and_iterate(pair):
    a, b = pair
    for i in range(5):
        await chat(b, a, f"m{i}")
    iq = await a.plugin["xep_0313"].retrieve(with_jid=b.boundjid.bare)
    msgs = iq["mam"]["results"]
    assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in msgs] == [f"m{i}" for i in range(5)]
    got = [m["mam_result"]["forwarded"]["stanza"]["body"]
           async for m in a.plugin["xep_0313"].iterate(rsm={"max": 2})]
    assert got == [f"m{i}" for i in range(5)]


async def test_chat_states_and_headlines_not_archived(pair):
    a, b = pair
    msg = b.make_message(mto="alice@xmppd.test", mtype="chat")
    msg.xml.append(ET.Element("{http://jabber.org/protocol/chatstates}composing"))
    msg.send()
    b.send_message(mto="alice@xmppd.test", mbody="news", mtype="headline")
    msg = b.make_message(mto="alice@xmppd.test", mbody="off the record", mtype="chat")
    msg.xml.append(ET.Element("{urn:xmpp:hints}no-store"))
    msg.send()
    msg = b.make_message(mto="alice@xmppd.test", mbody="with state", mtype="chat")
    msg.xml.append(ET.Element("{http://jabber.org/protocol/chatstates}active"))
    msg.send()
    while (await a.next_message())["body"] != "with state":
        pass
    bodies, results, _ = await query(a)
    assert bodies == ["with state"]
    inner = results[0].xml.find(".//{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert inner.find("{http://jabber.org/protocol/chatstates}active") is None


async def test_receipt_is_archived(pair):
    a, b = pair
    msg = b.make_message(mto="alice@xmppd.test", mtype="chat")
    ET.SubElement(msg.xml, "{urn:xmpp:receipts}received", {"id": "x1"})
    msg.send()
    await chat(b, a, "after")
    _, results, _ = await query(a)
    assert len(results) == 2


async def test_forged_stanza_id_is_stripped(pair):
    a, b = pair
    msg = b.make_message(mto="alice@xmppd.test", mbody="forged", mtype="chat")
    ET.SubElement(msg.xml, SID, {"by": "alice@xmppd.test", "id": "FAKE"})
    ET.SubElement(msg.xml, SID, {"by": "elsewhere.example", "id": "other"})
    msg.send()
    got = await a.next_message()
    sids = got.xml.findall(SID)
    ours = [s for s in sids if s.get("by") == "alice@xmppd.test"]
    assert len(ours) == 1 and ours[0].get("id") != "FAKE"
    assert any(s.get("by") == "elsewhere.example" for s in sids)


async def test_with_start_end_filters(srv, pair):
    a, b = pair
    await srv.adduser("carol@xmppd.test")
    async with logged_in(srv, "carol@xmppd.test", plugins=PLUGINS) as c:
        await chat(b, a, "from bob 1")
        await chat(c, a, "from carol")
        await chat(b, a, "from bob 2")
        bodies, _, fin = await query(a, with_jid="bob@xmppd.test")
        assert bodies == ["from bob 1", "from bob 2"]
        assert fin_info(fin)["count"] == 2
        bodies, _, _ = await query(a, with_jid="carol@xmppd.test/whatever")
        assert bodies == ["from carol"]
        items = await archive(srv).query("alice")
        mid = items[1].when
        bodies, _, _ = await query(a, start=stamp(mid))
        assert bodies == ["from carol", "from bob 2"]
        later = datetime.fromtimestamp(mid + 0.0005, timezone.utc).isoformat()
        bodies, _, _ = await query(a, end=later)
        assert bodies == ["from bob 1", "from carol"]
        future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        bodies, _, fin = await query(a, start=future)
        assert bodies == [] and fin_info(fin)["complete"] == "true"
        assert fin_info(fin)["first"] is None


async def test_fulltext_search(pair):
    """XEP-0431's field: the messages whose text contains the words (ASCII letters
    in any case), paged and counted like any other query, with the other fields."""
    a, b = pair
    for body in ("Lunch at noon?", "no", "lunch & learn at 1", "see you at LUNCH", "<b>lunch</b>"):
        await chat(b, a, body)
    await chat(a, b, "lunch it is")
    ft = "{urn:xmpp:fulltext:0}fulltext"
    bodies, _, fin = await query(a, extra={ft: "lunch"})
    assert bodies == ["Lunch at noon?", "lunch & learn at 1", "see you at LUNCH", "<b>lunch</b>",
                      "lunch it is"]
    assert fin_info(fin)["count"] == 5
    bodies, _, _ = await query(a, extra={ft: "lunch & learn"})   # escaped as stored
    assert bodies == ["lunch & learn at 1"]
    bodies, _, _ = await query(a, extra={ft: "<b>"})
    assert bodies == ["<b>lunch</b>"]
    bodies, _, fin = await query(a, with_jid="bob@xmppd.test", extra={ft: "LUNCH"},
                                 rsm={"max": "2", "before": ""})
    assert bodies == ["<b>lunch</b>", "lunch it is"]
    assert fin_info(fin)["count"] == 5 and fin_info(fin)["complete"] != "true"
    bodies, _, fin = await query(a, extra={ft: "dinner"})
    assert bodies == [] and fin_info(fin)["count"] == 0


async def test_rsm_paging_forward_and_backward(pair):
    a, b = pair
    for i in range(7):
        await chat(b, a, f"m{i}")
    bodies, res, fin = await query(a, rsm={"max": "3"})
    info = fin_info(fin)
    assert bodies == ["m0", "m1", "m2"] and info["complete"] == "false"
    assert info["count"] == 7 and info["index"] == "0"
    bodies, res, fin = await query(a, rsm={"max": "3", "after": info["last"]})
    assert bodies == ["m3", "m4", "m5"] and fin_info(fin)["complete"] == "false"
    bodies, res, fin = await query(a, rsm={"max": "3", "after": fin_info(fin)["last"]})
    assert bodies == ["m6"] and fin_info(fin)["complete"] == "true"
    # backward: the last page first, then the pages before it
    bodies, res, fin = await query(a, rsm={"max": "3", "before": ""})
    info = fin_info(fin)
    assert bodies == ["m4", "m5", "m6"] and info["complete"] == "false"
    bodies, res, fin = await query(a, rsm={"max": "3", "before": info["first"]})
    assert bodies == ["m1", "m2", "m3"] and fin_info(fin)["complete"] == "false"
    bodies, res, fin = await query(a, rsm={"max": "3", "before": fin_info(fin)["first"]})
    assert bodies == ["m0"] and fin_info(fin)["complete"] == "true"
    # index: skip that many
    bodies, _, fin = await query(a, rsm={"max": "2", "index": "4"})
    assert bodies == ["m4", "m5"] and fin_info(fin)["index"] == "4"
    # max=0: just the count
    bodies, _, fin = await query(a, rsm={"max": "0"})
    assert bodies == [] and fin_info(fin)["count"] == 7
    # flip-page: the same page, newest first
    bodies, _, fin = await query(a, rsm={"max": "3", "before": ""}, flip=True)
    assert bodies == ["m6", "m5", "m4"]


async def test_page_size_is_capped(tmp_path, certs):
    srv = await server(tmp_path, certs, host_extra="    max_archive_query_results = 4\n")
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", plugins=PLUGINS) as (a, b):
            for i in range(6):
                await chat(b, a, f"m{i}")
            bodies, _, fin = await query(a, rsm={"max": "100"})
            assert len(bodies) == 4 and fin_info(fin)["complete"] == "false"
            bodies, _, fin = await query(a)
            assert len(bodies) == 4
    finally:
        await srv.server.stop()


async def test_extended_ids_after_before(pair):
    a, b = pair
    for i in range(6):
        await chat(b, a, f"m{i}")
    _, res, _ = await query(a)
    ids = ids_of(res)
    bodies, _, fin = await query(a, extra={"after-id": ids[1]})
    assert bodies == ["m2", "m3", "m4", "m5"] and fin_info(fin)["count"] == 4
    bodies, _, fin = await query(a, extra={"before-id": ids[3]})
    assert bodies == ["m0", "m1", "m2"] and fin_info(fin)["count"] == 3
    bodies, _, _ = await query(a, extra={"after-id": ids[0], "before-id": ids[4]})
    assert bodies == ["m1", "m2", "m3"]
    bodies, _, _ = await query(a, extra={"after-id": ids[0]}, rsm={"max": "2", "after": ids[2]})
    assert bodies == ["m3", "m4"]
    bodies, _, _ = await query(a, extra={"ids": [ids[4], ids[1]]})
    assert bodies == ["m1", "m4"]


async def test_unknown_ids_are_item_not_found(pair):
    a, b = pair
    await chat(b, a, "m")
    for kw in ({"rsm": {"after": "nope"}}, {"rsm": {"before": "nope"}},
               {"extra": {"after-id": "nope"}}, {"extra": {"ids": ["nope"]}}):
        with pytest.raises(IqError) as exc:
            await query(a, **kw)
        assert exc.value.condition == "item-not-found"


async def test_bad_queries(pair):
    a, b = pair
    for kw in ({"start": "yesterday"}, {"extra": {"colour": "blue"}},
               {"rsm": {"max": "-1"}}, {"rsm": {"max": "many"}}):
        with pytest.raises(IqError) as exc:
            await query(a, **kw)
        assert exc.value.condition == "bad-request"


async def test_other_users_archive_is_not_reachable(pair):
    a, b = pair
    await chat(b, a, "private")
    iq = b.make_iq_set(ito="alice@xmppd.test")
    ET.SubElement(iq.xml, f"{{{NS}}}query")
    with pytest.raises(IqError) as exc:
        await iq.send()
    assert exc.value.condition == "service-unavailable"


async def test_form_and_metadata(pair):
    a, b = pair
    form = await a.plugin["xep_0313"].get_fields()
    fields = set(form.get_fields())
    assert {"FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids",
            "{urn:xmpp:fulltext:0}fulltext"} <= fields
    md = await a.plugin["xep_0313"].get_archive_metadata()
    assert md.xml.find(f"{{{NS}}}metadata/{{{NS}}}start") is None
    await chat(b, a, "first")
    await chat(b, a, "last")
    _, res, _ = await query(a)
    md = await a.plugin["xep_0313"].get_archive_metadata()
    assert md["mam_metadata"]["start"]["id"] == ids_of(res)[0]
    assert md["mam_metadata"]["end"]["id"] == ids_of(res)[1]
    assert md["mam_metadata"]["end"]["timestamp"] is not None


async def test_preferences(srv, pair):
    a, b = pair

    async def prefs(default=None, always=(), never=()):
        iq = a.make_iq_set() if default else a.make_iq_get()
        p = ET.SubElement(iq.xml, f"{{{NS}}}prefs")
        if default:
            p.set("default", default)
            for kind, jids in (("always", always), ("never", never)):
                lst = ET.SubElement(p, f"{{{NS}}}{kind}")
                for j in jids:
                    ET.SubElement(lst, f"{{{NS}}}jid").text = j
        r = await iq.send()
        el = r.xml.find(f"{{{NS}}}prefs")
        return (el.get("default"),
                [j.text for j in el.findall(f"{{{NS}}}always/{{{NS}}}jid")],
                [j.text for j in el.findall(f"{{{NS}}}never/{{{NS}}}jid")])

    assert await prefs() == ("always", [], [])
    assert await prefs("never", always=["bob@xmppd.test/pc"]) == ("never", ["bob@xmppd.test"], [])
    await srv.adduser("carol@xmppd.test")
    async with logged_in(srv, "carol@xmppd.test", plugins=PLUGINS) as c:
        await chat(b, a, "bob is always archived")
        await chat(c, a, "carol is not")
        got = await chat(a, c, "nor is this")
        assert got.xml.find(SID).get("by") == "carol@xmppd.test"  # carol's archive
        bodies, _, _ = await query(a)
        assert bodies == ["bob is always archived"]
        assert await prefs("always", never=["carol@xmppd.test"]) == ("always", [], ["carol@xmppd.test"])
        await chat(c, a, "still not")
        await chat(b, a, "yes")
        bodies, _, _ = await query(a)
        assert bodies == ["bob is always archived", "yes"]
        # "roster": only contacts on the roster (the core's roster service, with
        # or without the roster module loaded)
        await prefs("roster")
        await chat(c, a, "carol is a stranger")
        bodies, _, _ = await query(a)
        assert bodies[-1] == "yes"
        await srv.server.hosts[HOST].roster.update(
            "alice", "carol@xmppd.test", lambda item: dict(item or {}, listed=True))
        await chat(c, a, "carol is a contact")
        bodies, _, _ = await query(a)
        assert bodies[-1] == "carol is a contact"
    with pytest.raises(IqError) as exc:
        await prefs("sometimes")
    assert exc.value.condition == "bad-request"


async def test_offline_message_is_archived_and_gets_stanza_id(srv, pair):
    a, b = pair
    b.send_message(mto="nobody@xmppd.test", mbody="no such user", mtype="chat")
    assert (await b.next_error())["error"]["condition"] == "service-unavailable"
    await slix_close(a)
    b.send_message(mto="alice@xmppd.test", mbody="while offline", mtype="chat")
    await asyncio.sleep(0.3)
    items = await archive(srv).query("alice")
    assert len(items) == 1 and "while offline" in items[0].value
    # bob's archive has the message, not the one to the missing account
    items = await archive(srv).query("bob")
    assert [("while offline" in i.value) for i in items] == [True]


async def test_carbon_of_incoming_message_carries_stanza_id(srv, pair):
    a, b = pair
    async with logged_in(srv, "alice@xmppd.test/laptop", plugins=PLUGINS) as a2:
        await a2.plugin["xep_0280"].enable()
        got = []
        a2.add_event_handler("carbon_received", got.append)
        b.send_message(mto="alice@xmppd.test/phone", mbody="to phone", mtype="chat")
        m = await a.next_message()
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.05)
        inner = got[0]["carbon_received"]
        assert inner.xml.find(SID).get("id") == m.xml.find(SID).get("id")
        # a message from one resource to another of the same account is archived once
        a.send_message(mto="alice@xmppd.test/laptop", mbody="note to self", mtype="chat")
        await a2.next_message()
        items = await archive(srv).query("alice")
        assert sum("note to self" in i.value for i in items) == 1


async def test_retention(tmp_path, certs):
    srv = await server(tmp_path, certs, host_extra='    archive_expires_after = "1d"\n')
    try:
        await srv.adduser("alice@xmppd.test")
        await srv.adduser("bob@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", plugins=PLUGINS) as (a, b):
            await chat(b, a, "old")
            cleanup = mam_api(srv).cleanup
            assert await cleanup() == 0  # nothing is a day old yet
            assert len(await archive(srv).query("alice")) == 1
            # two days later, both copies (alice's and bob's) have expired
            assert await cleanup(time.time() + 2 * 86400) == 2
            assert await archive(srv).query("alice") == []
            bodies, _, _ = await query(a)
            assert bodies == []
    finally:
        await srv.server.stop()


async def test_bad_expiry_option_names_the_setting(tmp_path, certs):
    from xmppd.config import parse_config_text
    from xmppd.config.lexer import ConfigError
    from xmppd.app import build_server

    from .conftest import make_config
    text = make_config(tmp_path, certs, 'modules_enabled = { "mam" }\n',
                       '    archive_expires_after = "soon"\n')
    path = tmp_path / "xmppd.cfg.lua"
    path.write_text(text)
    s = build_server(parse_config_text(text, filename=str(path), base_dir=str(tmp_path)))
    try:
        with pytest.raises(ConfigError) as exc:
            await s.start()
    finally:
        await s.stop()  # start() leaves the storage open when a module fails
    assert "archive_expires_after" in str(exc.value) and ".cfg.lua:" in str(exc.value)


def test_option_and_stamp_parsing():
    assert parse_expiry("1w") == 7 * 86400
    assert parse_expiry("2d") == 2 * 86400
    assert parse_expiry("1y") == pytest.approx(365.2425 * 86400)
    assert parse_expiry(3600) == 3600
    assert parse_expiry("never") is None
    with pytest.raises(ValueError):
        parse_expiry("1 fortnight")
    assert parse_stamp("1970-01-01T00:01:00Z") == 60
    assert parse_stamp("1970-01-01T01:01:00.5+01:00") == 60.5
    assert parse_stamp(stamp(1234.5)) == 1234.5
    with pytest.raises(ValueError):
        parse_stamp("1970-01-01T00:01:00")


# ---------------------------------------------------------------- a large archive
BIG = 200_000


@pytest.mark.skipif(STORAGE != "sqlite", reason="SQLite's query plans (PostgreSQL's: "
                    "tests/unit/test_storage_postgres.py)")
async def test_large_archive_uses_the_index(srv):
    """200,000 items for one user, written in one transaction: the with/start paged
    query is an index range scan (no table scan, no sort) and pages are right."""
    await srv.adduser("alice@xmppd.test")
    storage = srv.server.storage
    arch = archive(srv)
    t0 = 1_700_000_000.0
    peers = [f"peer{i}@example.org" for i in range(10)]
    rows = [(HOST, "archive", "alice", f"k{i:06d}", t0 + i, peers[i % 10],
             f"\"<message xmlns='jabber:client' type='chat'><body>{i}</body></message>\"")
            for i in range(BIG)]

    async def load(conn):
        await conn.executemany(
            'INSERT INTO archive (host, store, "user", key, "when", with_jid, value) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    started = time.monotonic()
    await storage.transaction(load)
    load_time = time.monotonic() - started
    assert await arch.count("alice") == BIG

    # the SQL of a paged with/start query, after a given item
    pos = (t0 + 150_003, 150_004)
    sql, params = arch.query_sql("alice", with_jid=peers[3], start=t0 + 100_000,
                                 after_pos=pos, limit=20)
    plan = " | ".join(r[-1] for r in await storage.fetchall("EXPLAIN QUERY PLAN " + sql, tuple(params)))
    assert "USING INDEX archive_with" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    assert "SCAN" not in plan.replace("SCAN archive USING INDEX", ""), plan
    sql, params = arch.query_sql("alice", with_jid=peers[3], end=t0 + 190_000,
                                 before_pos=pos, limit=20, reverse=True)
    plan = " | ".join(r[-1] for r in await storage.fetchall("EXPLAIN QUERY PLAN " + sql, tuple(params)))
    assert "USING INDEX archive_with" in plan and "TEMP B-TREE" not in plan, plan
    sql, params = arch.query_sql("alice", start=t0 + 100_000, limit=20, reverse=True)
    plan = " | ".join(r[-1] for r in await storage.fetchall("EXPLAIN QUERY PLAN " + sql, tuple(params)))
    assert "USING INDEX archive_when" in plan and "TEMP B-TREE" not in plan, plan

    # the page after k150003 with peer3 from t0+100000: items 150013, 150023, ...
    page = await arch.query("alice", with_jid=peers[3], start=t0 + 100_000,
                            after="k150003", limit=20)
    assert [i.key for i in page] == [f"k{n:06d}" for n in range(150_013, 150_013 + 200, 10)]
    page = await arch.query("alice", with_jid=peers[3], before="k150003", limit=3, reverse=True)
    assert [i.key for i in page] == ["k149993", "k149983", "k149973"]
    assert load_time < 60

    # and through the protocol: the last page with peer 7 in one round trip
    async with logged_in(srv, "alice@xmppd.test", plugins=PLUGINS) as a:
        started = time.monotonic()
        bodies, _, fin = await query(a, with_jid=peers[7], rsm={"max": "5", "before": ""})
        elapsed = time.monotonic() - started
        assert bodies == [str(n) for n in range(BIG - 43, BIG, 10)]
        info = fin_info(fin)
        assert info["count"] == BIG // 10 and info["complete"] == "false"
        bodies, _, _ = await query(a, with_jid=peers[7], rsm={"max": "2", "before": info["first"]})
        assert bodies == [str(BIG - 63), str(BIG - 53)]
        assert elapsed < 5, elapsed


async def test_roster_policy_uses_the_roster(tmp_path, certs):
    srv = await start_server(tmp_path, certs,
                             extra='modules_enabled = { "disco", "roster", "mam" }\n',
                             host_extra='    default_archive_policy = "roster"\n')
    try:
        for u in ("alice", "bob", "carol"):
            await srv.adduser(f"{u}@xmppd.test")
        async with logged_in(srv, "alice@xmppd.test", "bob@xmppd.test", "carol@xmppd.test",
                             plugins=PLUGINS) as (a, b, c):
            await a.update_roster("bob@xmppd.test", name="Bob")
            await chat(b, a, "bob is in the roster")
            await chat(c, a, "carol is not")
            bodies, _, _ = await query(a)
            assert bodies == ["bob is in the roster"]
    finally:
        await srv.server.stop()

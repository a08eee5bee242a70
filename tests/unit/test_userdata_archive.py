"""The archive imports' writer (``xmppd.cli.userdata.add_archive``, for ``xmppctl
import prosody`` and XEP-0227): new messages in batches, known keys unchanged."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.cli import userdata
from xmppd.storage import open_storage

HOST = "falcot.com"


def msg(i: int) -> ET.Element:
    el = ET.Element("{jabber:client}message", {"type": "chat"})
    ET.SubElement(el, "{jabber:client}body").text = f"m{i}"
    return el


async def test_add_archive_in_batches(monkeypatch):
    monkeypatch.setattr(userdata, "ARCHIVE_BATCH", 3)
    s = await open_storage("memory")
    a = s.archive(HOST, "archive")
    await a.append("joe", "already", key="k1", when=86400.0 * 3)
    # 8 messages over two days: k1 is stored, k4 given twice (the first counts)
    messages = [(f"k{i}", msg(i), 86400.0 * (i // 5) + i, f"p{i % 2}@x") for i in range(8)]
    messages.insert(6, ("k4", msg(99), 9.0, "other@x"))

    dry = userdata.Tally()
    await userdata.add_archive(s, HOST, "joe", messages, dry, dry_run=True)
    assert (dry.imported, dry.unchanged) == (7, 2)
    assert await a.count("joe") == 1

    tally = userdata.Tally()
    await userdata.add_archive(s, HOST, "joe", messages, tally, dry_run=False)
    assert (tally.imported, tally.unchanged) == (7, 2)
    items = await a.query("joe")
    assert [it.key for it in items] == ["k0", "k2", "k3", "k4", "k5", "k6", "k7", "k1"]
    k4 = await a.get("joe", "k4")
    assert (k4.when, k4.with_jid) == (4.0, "p0@x") and ">m4<" in k4.value
    assert await s.map(HOST, "archive_cleanup").items("1970-01-01") == {"joe": True}
    assert await s.map(HOST, "archive_cleanup").items("1970-01-02") == {"joe": True}

    again = userdata.Tally()
    await userdata.add_archive(s, HOST, "joe", messages, again, dry_run=False)
    assert (again.imported, again.unchanged) == (0, 9)
    await s.close()

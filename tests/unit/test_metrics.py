"""The metrics registry and its OpenMetrics text (``xmppd/core/metrics.py``), and the
timed storage (``xmppd/storage/timed.py``), without a server. The text is read back
with the Prometheus client library's OpenMetrics parser."""
from __future__ import annotations

import math

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from xmppd.core.metrics import Histogram, MetricFamily, StanzaCounts, merge, render
from xmppd.storage import ItemNotFound, open_storage
from xmppd.storage.timed import TimedStorage


def parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_counter_gauge_and_histogram_read_back():
    c = MetricFamily("x_stanzas", "counter", "Stanzas \"in\"\nand \\ out").add(
        7, kind="message").add(2, kind='a "quoted"\nvalue\\')
    g = MetricFamily("x_memory_bytes", "gauge", "Memory", "bytes").add(1.5e9)
    h = Histogram((0.001, 0.01, 0.1))
    for v in (0.0005, 0.001, 0.002, 0.05, 3.0):
        h.observe(v)
    hf = MetricFamily("x_op_duration_seconds", "histogram", "Ops", "seconds").add_histogram(
        h, op="get")
    text = render([c, g, hf])
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    assert "# UNIT x_memory_bytes bytes\n" in text and "# TYPE x_stanzas counter\n" in text
    fams = parse(text)
    assert fams["x_stanzas"].documentation == "Stanzas \"in\"\nand \\ out"
    assert [(s.name, s.labels, s.value) for s in fams["x_stanzas"].samples] == [
        ("x_stanzas_total", {"kind": "message"}, 7),
        ("x_stanzas_total", {"kind": 'a "quoted"\nvalue\\'}, 2)]
    assert fams["x_memory_bytes"].unit == "bytes"
    assert fams["x_memory_bytes"].samples[0].value == 1.5e9
    got = {(s.name, s.labels.get("le")): s.value for s in fams["x_op_duration_seconds"].samples}
    # cumulative; a value equal to a bound is in that bound's bucket
    assert got == {("x_op_duration_seconds_bucket", "0.001"): 2,
                   ("x_op_duration_seconds_bucket", "0.01"): 3,
                   ("x_op_duration_seconds_bucket", "0.1"): 4,
                   ("x_op_duration_seconds_bucket", "+Inf"): 5,
                   ("x_op_duration_seconds_count", None): 5,
                   ("x_op_duration_seconds_sum", None): pytest.approx(3.0535)}


def test_names_are_checked():
    with pytest.raises(ValueError, match="without _total"):
        MetricFamily("x_total", "counter", "")
    with pytest.raises(ValueError, match="ends with _seconds"):
        MetricFamily("x_duration", "gauge", "", "seconds")
    with pytest.raises(ValueError, match="invalid metric name"):
        MetricFamily("x-y", "gauge", "")
    with pytest.raises(ValueError, match="unknown type"):
        MetricFamily("x", "summary", "")
    with pytest.raises(ValueError, match="invalid label name 'le'"):
        MetricFamily("x", "gauge", "").add(1, le="1")
    with pytest.raises(TypeError):
        MetricFamily("x", "histogram", "").add(1)


def test_special_values():
    text = render([MetricFamily("x", "gauge", "").add(math.inf, a="1").add(math.nan, a="2")
                   .add(True, a="3")])
    assert 'x{a="1"} +Inf\n' in text and 'x{a="2"} NaN\n' in text and 'x{a="3"} 1\n' in text
    values = [s.value for s in parse(text)["x"].samples]
    assert values[0] == math.inf and math.isnan(values[1]) and values[2] == 1


def test_merge_joins_families_of_one_name():
    a = MetricFamily("rooms", "gauge", "Rooms").add(1, host="a")
    b = MetricFamily("rooms", "gauge", "").add(2, host="b")
    wrong = MetricFamily("rooms", "counter", "").add(3, host="c")
    merged = merge([a, b, wrong])
    assert len(merged) == 1 and merged[0].help == "Rooms"
    assert [s[1]["host"] for s in merged[0].samples] == ["a", "b"]
    assert a.samples == [("", {"host": "a"}, 1)]      # the inputs are not changed
    parse(render(merged))


def test_stanza_counts_are_plain_fields():
    c = StanzaCounts()
    c.message_in += 1
    with pytest.raises(AttributeError):
        c.other = 1       # __slots__: a typo is an error, not a new counter


async def test_timed_storage_times_each_operation():
    seen: dict = {}

    def histogram_for(kind, op):
        return seen.setdefault((kind, op), Histogram())
    inner = await open_storage("memory")
    s = TimedStorage(inner, histogram_for)
    kv, mp, ar = s.keyval("h", "k"), s.map("h", "m"), s.archive("h", "a")
    await kv.set("u", {"a": 1})
    assert await kv.get("u") == {"a": 1}
    await mp.set("u", "k1", 1)
    assert await mp.items("u") == {"k1": 1}
    key = await ar.append("u", "x", with_jid="j@h")
    assert await ar.append_many("u", [("k2", 1.0, None, "y")]) == 1
    assert [i.key for i in await ar.query("u")] == ["k2", key]
    await s.delete_user("h", "u")
    assert await kv.get("u") is None
    counts = {k: h.count for k, h in seen.items() if h.count}
    assert counts == {("keyval", "set"): 1, ("keyval", "get"): 2, ("map", "set"): 1,
                      ("map", "items"): 1, ("archive", "append"): 1,
                      ("archive", "append_many"): 1, ("archive", "query"): 1,
                      ("storage", "delete_user"): 1}
    # a failing operation is timed too, and its error reaches the caller
    with pytest.raises(ItemNotFound):
        await ar.query("u", after="no-such-key")
    assert seen["archive", "query"].count == 2
    # what is not the API goes to the backend
    assert kv.store == "k" and kv.host == "h" and s.kind == inner.kind
    await s.close()

"""The s2s part of the metrics between two xmppd: stanzas in and out of server
streams by kind, the links and the remote domains (read back with prometheus_client's
OpenMetrics parser)."""
from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from .conftest import start_node
from .test_links import A, B, talk


def samples(node) -> dict:
    out = {}
    for family in text_string_to_metric_families(node.server.metrics.exposition()):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def get(m, name, **labels):
    return m[name, frozenset(labels.items())]


def stanzas(m, way, session_type, kind):
    return get(m, f"prosody_mod_measure_stanza_counts__{way}_total", session_type=session_type,
               stanza_kind=kind)


async def test_server_streams_are_counted(tmp_path, dns, cas):
    ca = cas.cafile("one")
    a = await start_node(tmp_path, dns, A, cas.issue("one", A), ca)
    b = await start_node(tmp_path, dns, B, cas.issue("one", B), ca)
    try:
        # 3 messages each way, then bob pings a.test and alice pings bob's client
        await talk(a, b, n=3)
        ma, mb = samples(a), samples(b)
        for m, local in ((ma, A), (mb, B)):
            # what one sent out is what the other took in: 3 messages, a ping and
            # its answer each way; no presence crossed
            assert {(way, t, k): stanzas(m, way, t, k)
                    for way, t in (("sent", "s2sout"), ("received", "s2sin"))
                    for k in ("message", "presence", "iq")} == {
                ("sent", "s2sout", "message"): 3, ("sent", "s2sout", "presence"): 0,
                ("sent", "s2sout", "iq"): 2,
                ("received", "s2sin", "message"): 3, ("received", "s2sin", "presence"): 0,
                ("received", "s2sin", "iq"): 2}
            assert get(m, "xmppd_connections", listener="s2s_out") == 1
            assert get(m, "xmppd_connections", listener="s2s_in") == 1
            assert get(m, "xmppd_s2s_remote_domains", direction="out") == 1
            assert get(m, "xmppd_s2s_remote_domains", direction="in") == 1
            assert get(m, "prosody_mod_s2s__connections_outbound", host=local, type="s2sout",
                       ip_family="ipv4") == 1
            assert get(m, "prosody_mod_s2s__connections_inbound", host=local, type="s2sin",
                       ip_family="ipv4") == 1
    finally:
        await a.stop()
        await b.stop()

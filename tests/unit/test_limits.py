"""core/limits.py: Prosody's ``limits`` table, token buckets, connections per
address and the failed-login bookkeeping, without sockets."""
import pytest

from xmppd.config import parse_config_text
from xmppd.core.limits import LimitError, Limits, TokenBucket, parse_limits, parse_rate


def limits(text: str = "") -> Limits:
    return Limits(parse_config_text(text + '\nVirtualHost "example.com"\n', filename="x.cfg.lua"))


@pytest.mark.parametrize("text,rate", [("10kb/s", 10_000), ("3000b/s", 3000), ("1 mb/s", 1_000_000),
                                       ("512b/s", 512), (2500, 2500.0), (False, None)])
def test_rates_read_as_prosody_reads_them(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["fast", "10kb", "-3kb/s", "10 kb/h"])
def test_bad_rates_are_refused(bad):
    with pytest.raises(LimitError):
        parse_rate(bad)


def test_defaults_are_prosodys_default_configuration():
    got = parse_limits(None)
    assert got["c2s"].rate == 10_000 and got["c2s"].burst == 2
    assert got["s2sin"].rate == 30_000
    assert got["c2s"].unauthenticated == 20 and got["c2s"].per_address == 200


def test_a_table_replaces_the_defaults_kind_by_kind_and_false_turns_off():
    got = parse_limits({"c2s": {"rate": "1kb/s"}})
    assert got["c2s"].rate == 1000 and got["c2s"].per_address == 200   # the rest stays default
    assert "s2sin" not in got
    assert parse_limits(False) == {}
    assert parse_limits({"c2s": False}) == {}
    with pytest.raises(LimitError, match="unknown limit 'rates'"):
        parse_limits({"c2s": {"rates": "1kb/s"}})
    with pytest.raises(LimitError, match="unknown connection kind 'http'"):
        parse_limits({"http": {"rate": "1kb/s"}})


def test_token_bucket_lets_a_burst_through_then_makes_the_sender_wait(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("xmppd.core.limits.time.monotonic", lambda: now[0])
    b = TokenBucket(1000, 2)               # 1000 bytes/s, 2000 bytes at once
    assert b.take(2000) == 0
    assert b.take(500) == pytest.approx(0.5)   # in debt by 500 bytes: half a second
    now[0] += 0.5
    assert b.take(0) == 0
    now[0] += 10                             # refills to the burst, no more
    assert b.take(2000) == 0 and b.take(1) > 0


def test_connections_per_address():
    lim = limits('limits = { c2s = { connections_per_address = 3; unauthenticated_per_address = 2 } }')
    assert lim.connect("c2s", "192.0.2.1") is None
    assert lim.connect("c2s", "192.0.2.1") is None
    assert "not logged in" in lim.connect("c2s", "192.0.2.1")      # a third one not logged in
    lim.disconnect("c2s", "192.0.2.1", authenticated=False)
    lim.authenticated("c2s", "192.0.2.1")
    lim.authenticated("c2s", "192.0.2.1")
    assert lim.connect("c2s", "192.0.2.1") is None                # 3 connections, 1 not logged in
    assert "too many connections" in lim.connect("c2s", "192.0.2.1")
    assert lim.connect("c2s", "198.51.100.7") is None             # another address
    assert lim.connections("c2s", "192.0.2.1") == (4, 2)


def test_failed_logins_slow_down_then_ban_the_address(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("xmppd.core.limits.time.monotonic", lambda: now[0])
    lim = limits("c2s_max_auth_failures = 5\nc2s_auth_ban_lifetime = 60\n")
    delays = [lim.auth_failed("192.0.2.1", "alice@example.com") for _ in range(4)]
    assert delays == [0, 0.25, 0.5, 1.0]
    assert lim.banned("192.0.2.1") is None
    lim.auth_failed("192.0.2.1", "alice@example.com")
    assert lim.banned("192.0.2.1") == pytest.approx(60)
    assert lim.banned("198.51.100.7") is None
    # the account is slowed down from any address, but not banned
    assert lim.auth_failed("198.51.100.7", "alice@example.com") == 4.0   # its 6th failure
    assert lim.banned("198.51.100.7") is None
    now[0] += 61
    assert lim.banned("192.0.2.1") is None
    assert lim.auth_failed("192.0.2.1", None) == 0


def test_describe_lists_what_is_in_force():
    lines = limits("limits = { c2s = { rate = \"5kb/s\" } }").describe()
    assert lines[0].startswith("c2s: read 5,000 bytes/s (burst 2s), 1,000,000 bytes may wait for it, "
                               "200 connections per address")
    assert any("20 failures from one address ban it for 600s" in line for line in lines)

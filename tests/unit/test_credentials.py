"""Stored SCRAM credentials: round trip, format, and PBKDF2 kept off the event loop."""
from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from scramp import ScramMechanism

from xmppd.core import credentials as cr
from xmppd.core.credentials import (
    DEFAULT_ITERATIONS, make_credentials, make_credentials_async, scram_auth_info,
    verify_password, verify_password_async,
)

FAST = 4096  # the minimum; keeps the tests quick


def test_round_trip_and_format():
    creds = make_credentials("s3cret pass", FAST)
    assert json.loads(json.dumps(creds)) == creds
    assert creds["iterations"] == FAST
    assert len(base64.b64decode(creds["salt"])) >= 12
    for key, size in (("scram-sha-1", 20), ("scram-sha-256", 32)):
        assert set(creds[key]) == {"stored_key", "server_key"}
        assert len(base64.b64decode(creds[key]["stored_key"])) == size
        assert len(base64.b64decode(creds[key]["server_key"])) == size
    assert "s3cret pass" not in json.dumps(creds)
    assert verify_password(creds, "s3cret pass")
    assert not verify_password(creds, "s3cret pasS")
    assert not verify_password(creds, "")
    assert not verify_password(None, "s3cret pass")


def test_default_iterations_matches_prosody():
    assert DEFAULT_ITERATIONS == 10000


def test_keys_match_scramp_byte_for_byte():
    creds = make_credentials("pencil", FAST)
    salt = base64.b64decode(creds["salt"])
    for key, mech in (("scram-sha-1", "SCRAM-SHA-1"), ("scram-sha-256", "SCRAM-SHA-256")):
        _s, stored, server, _i = ScramMechanism(mech).make_auth_info("pencil", FAST, salt)
        assert scram_auth_info(creds, key) == (salt, stored, server, FAST)


def test_saslprep_applied():
    # RFC 4013 §3 examples: soft hyphen maps to nothing, U+2168 (roman IX) to "IX".
    creds = make_credentials("I\u00adX", FAST)
    assert verify_password(creds, "IX")
    creds = make_credentials("\u2168", FAST)
    assert verify_password(creds, "IX")
    with pytest.raises(ValueError):
        make_credentials("a\u0007b", FAST)      # control character: prohibited
    with pytest.raises(ValueError):
        make_credentials("", FAST)
    assert not verify_password(creds, "a\u0007b")


def test_salts_differ():
    a, b = make_credentials("x", FAST), make_credentials("x", FAST)
    assert a["salt"] != b["salt"]
    assert a["scram-sha-256"] != b["scram-sha-256"]


def test_too_few_iterations_refused():
    with pytest.raises(ValueError):
        make_credentials("x", 1000)


def test_damaged_record_is_false():
    creds = make_credentials("x", FAST)
    assert not verify_password({"iterations": FAST, "salt": "!!"}, "x")
    damaged = dict(creds, **{"scram-sha-256": {"stored_key": "not base64!"}})
    # falls back to the SHA-1 keys, which are intact
    assert verify_password(damaged, "x")
    assert not verify_password({"iterations": FAST, "salt": creds["salt"]}, "x")


def test_only_sha1_record():
    creds = make_credentials("x", FAST)
    del creds["scram-sha-256"]
    assert verify_password(creds, "x")
    assert not verify_password(creds, "y")


async def test_async_round_trip():
    creds = await make_credentials_async("pw", FAST)
    assert await verify_password_async(creds, "pw")
    assert not await verify_password_async(creds, "nope")


async def test_pbkdf2_does_not_block_the_loop():
    """A heartbeat keeps ticking while a slow verification runs."""
    iterations = 2_000_000  # ~0.5-1 s of PBKDF2-SHA-256 on one core
    creds = await make_credentials_async("pw", iterations)
    ticks: list[float] = []

    async def heartbeat():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    hb = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    start = time.monotonic()
    assert await verify_password_async(creds, "pw")
    elapsed = time.monotonic() - start
    hb.cancel()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert elapsed > 0.2, elapsed      # long enough for a stall to show
    assert len(ticks) >= 5
    # a blocked loop would show one gap as long as the whole verification
    assert max(gaps) < min(0.25, elapsed / 2), (max(gaps), elapsed)


def test_module_exports():
    assert set(cr.__all__) >= {"make_credentials", "verify_password",
                               "make_credentials_async", "verify_password_async"}

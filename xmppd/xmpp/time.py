"""XEP-0082 date and time profiles."""
from __future__ import annotations

import time
from datetime import datetime, timezone


def utc_stamp(when: float | None = None) -> str:
    """DateTime, UTC, whole seconds: ``2026-11-27T04:50:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


def utc_stamp_ms(when: float) -> str:
    """DateTime, UTC, with milliseconds: ``2026-11-27T04:50:00.123Z``."""
    dt = datetime.fromtimestamp(when, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> float:
    """A DateTime with a time zone → Unix time; ValueError otherwise."""
    text = (text or "").strip()
    if not text:
        raise ValueError("empty timestamp")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return dt.timestamp()

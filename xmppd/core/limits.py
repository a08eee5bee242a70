"""Limits that protect the server from one peer: reading rates, connections per
address, and failed authentication, across connections.

Configured with Prosody's ``limits`` table (and ejabberd's names for the
authentication ban)::

    limits = {
        c2s = { rate = "10kb/s"; burst = "2s"; send_buffer = "1mb";
                connections_per_address = 200; unauthenticated_per_address = 20 };
        s2sin = { rate = "30kb/s"; burst = "2s" };
    }
    c2s_max_auth_failures = 20      -- failed logins from one address before a ban
    c2s_auth_ban_lifetime = 600     -- seconds the ban lasts

* **rate**: a token bucket per connection on what it sends us (Prosody's units:
  ``"10kb/s"`` is 10,000 bytes a second); a connection over it stops being read until
  it is back under, so a flooding client is slowed down, not dropped. ``burst`` is
  how many seconds' worth it may send at once.
* **send_buffer**: how much may wait for a peer that does not read what it is sent
  (``"1mb"``, ``"512kb"`` or a number of bytes). A connection over it is closed
  with ``policy-violation``, and what the peer never took goes where it would go
  had the peer gone offline: stream management's queue (the session hibernates),
  offline storage or another resource (messages), an error to the sender (IQs), the
  outgoing link's queue (server-to-server).
* **connections per address**: clients from one IP address may hold at most
  ``connections_per_address`` connections, of which at most
  ``unauthenticated_per_address`` not yet logged in; more are closed at once with
  ``policy-violation``.
* **failed authentication**: every failed login, from any connection, makes the
  next answer to that address and to that account slower (0.25 s doubling up to
  8 s); ``c2s_max_auth_failures`` failures from one address within
  ``c2s_auth_ban_lifetime`` seconds ban the address from logging in for that long.

Without a ``limits`` option the defaults below apply (Prosody's default
configuration: c2s 10 kB/s, s2sin 30 kB/s); ``limits = false`` (or ``rate = false``
for one kind) turns them off, as the benchmarks do.
"""
from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass

DEFAULTS = {
    "c2s": {"rate": "10kb/s", "burst": "2s", "send_buffer": "1mb",
            "connections_per_address": 200, "unauthenticated_per_address": 20},
    "s2sin": {"rate": "30kb/s", "burst": "2s", "send_buffer": "4mb",
              "connections_per_address": 100, "unauthenticated_per_address": 50},
    "s2sout": {"send_buffer": "4mb"},
    "component": {"send_buffer": "4mb"},
}
KINDS = ("c2s", "s2sin", "s2sout", "component")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*/\s*s\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12}
_BURST = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$", re.I)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$", re.I)


class LimitError(ValueError):
    """A ``limits`` value that cannot be read (the message says which and why)."""


def parse_rate(value) -> float | None:
    """Bytes per second from ``"10kb/s"`` (or a number); None for no limit."""
    if value is None or value is False:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise LimitError(f"rate {value!r} must be positive")
        return float(value)
    m = _RATE.match(str(value))
    if not m:
        raise LimitError(f"rate {value!r}: expected something like \"10kb/s\"")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_size(value) -> int | None:
    """Bytes from ``"1mb"``, ``"512kb"`` (decimal units, as Prosody's rates) or a
    number; None (or false) for no limit."""
    if value is None or value is False:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 1024:
            raise LimitError(f"send_buffer {value!r}: at least 1024 bytes")
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        raise LimitError(f"send_buffer {value!r}: expected a size like \"1mb\" or \"512kb\"")
    n = int(float(m.group(1)) * {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9}[m.group(2).lower()])
    if n < 1024:
        raise LimitError(f"send_buffer {value!r}: at least 1024 bytes")
    return n


def parse_burst(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise LimitError(f"burst {value!r} must be positive")
        return float(value)
    m = _BURST.match(str(value))
    if not m or float(m.group(1)) <= 0:
        raise LimitError(f"burst {value!r}: expected seconds, like \"2s\"")
    return float(m.group(1))


@dataclass(frozen=True)
class KindLimits:
    rate: float | None = None          # bytes per second read from one connection
    burst: float = 2.0                 # seconds of rate it may send at once
    send_buffer: int | None = None     # bytes that may wait for a peer that does not read
    per_address: int | None = None     # connections from one address
    unauthenticated: int | None = None # of which not yet authenticated

    def describe(self) -> str:
        parts = [f"read {self.rate:,.0f} bytes/s (burst {self.burst:g}s)" if self.rate else "no read rate limit"]
        if self.send_buffer:
            parts.append(f"{self.send_buffer:,} bytes may wait for it")
        if self.per_address:
            parts.append(f"{self.per_address} connections per address")
        if self.unauthenticated:
            parts.append(f"{self.unauthenticated} unauthenticated per address")
        return ", ".join(parts)


def parse_limits(value) -> dict[str, KindLimits]:
    """The ``limits`` option (None: the defaults; False: none) → limits per kind."""
    if value is False:
        return {}
    table = DEFAULTS if value is None else value
    if not isinstance(table, dict):
        raise LimitError("expected a table like { c2s = { rate = \"10kb/s\" } } or false")
    out = {}
    for kind, spec in table.items():
        if kind not in KINDS:
            raise LimitError(f"unknown connection kind {kind!r} (known: {', '.join(KINDS)})")
        if spec is False:
            continue
        if not isinstance(spec, dict):
            raise LimitError(f"{kind}: expected a table like {{ rate = \"10kb/s\" }}")
        base = DEFAULTS.get(kind, {}) if value is not None else {}
        merged = {**base, **spec}
        for key in merged:
            if key not in ("rate", "burst", "send_buffer", "connections_per_address",
                           "unauthenticated_per_address"):
                raise LimitError(f"{kind}: unknown limit {key!r}")
        counts = {}
        for key in ("connections_per_address", "unauthenticated_per_address"):
            n = merged.get(key)
            if n is None or n is False:
                counts[key] = None
            elif isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1 and int(n) == n:
                counts[key] = int(n)
            else:
                raise LimitError(f"{kind}: {key} must be a whole number of at least 1, or false")
        out[kind] = KindLimits(rate=parse_rate(merged.get("rate")),
                               burst=parse_burst(merged.get("burst", "2s")),
                               send_buffer=parse_size(merged.get("send_buffer")),
                               per_address=counts["connections_per_address"],
                               unauthenticated=counts["unauthenticated_per_address"])
    return out


class TokenBucket:
    """``take(n)`` → seconds to wait before the ``n`` bytes may be handled (0: now).
    Debt is allowed: what was taken beyond the tokens is paid back by waiting."""
    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.capacity = rate * burst
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, n: int) -> float:
        now = time.monotonic()
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        tokens -= n
        self.tokens = tokens
        return -tokens / self.rate if tokens < 0 else 0.0


class Limits:
    """The server's limits and the bookkeeping behind them."""

    def __init__(self, config, *, parsed: dict | None = None):
        self.by_kind = parse_limits(config.get("limits")) if parsed is None else parsed
        self.max_auth_failures = int(config.get("c2s_max_auth_failures", default=20))
        self.ban_lifetime = float(config.get("c2s_auth_ban_lifetime", default=600))
        # address -> [connections, unauthenticated] per kind
        self._conns: dict[tuple[str, str], list[int]] = {}
        # failed logins: address -> times; account -> times (newest last)
        self._fail_addr: dict[str, collections.deque] = {}
        self._fail_user: dict[str, collections.deque] = {}
        self._banned: dict[str, float] = {}

    def update(self, config) -> None:
        """New settings from a reloaded configuration; the counts and bans stay.
        Raises LimitError (the old settings stay) for a bad limits table."""
        by_kind = parse_limits(config.get("limits"))
        self.by_kind = by_kind
        self.max_auth_failures = int(config.get("c2s_max_auth_failures", default=20))
        self.ban_lifetime = float(config.get("c2s_auth_ban_lifetime", default=600))

    def of(self, kind: str) -> KindLimits | None:
        return self.by_kind.get(kind)

    def send_buffer(self, kind: str) -> int | None:
        lim = self.by_kind.get(kind)
        return lim.send_buffer if lim is not None else None

    def bucket(self, kind: str) -> TokenBucket | None:
        lim = self.by_kind.get(kind)
        return TokenBucket(lim.rate, lim.burst) if lim is not None and lim.rate else None

    # -- connections per address ------------------------------------------------
    def connect(self, kind: str, address: str) -> str | None:
        """Count a new connection; the reason to refuse it, or None."""
        lim = self.by_kind.get(kind)
        counts = self._conns.setdefault((kind, address), [0, 0])
        counts[0] += 1
        counts[1] += 1
        if lim is None:
            return None
        if lim.per_address and counts[0] > lim.per_address:
            return f"too many connections from {address} (at most {lim.per_address})"
        if lim.unauthenticated and counts[1] > lim.unauthenticated:
            return f"too many connections from {address} that are not logged in (at most {lim.unauthenticated})"
        return None

    def authenticated(self, kind: str, address: str) -> None:
        counts = self._conns.get((kind, address))
        if counts is not None and counts[1] > 0:
            counts[1] -= 1

    def disconnect(self, kind: str, address: str, *, authenticated: bool) -> None:
        counts = self._conns.get((kind, address))
        if counts is None:
            return
        counts[0] -= 1
        if not authenticated and counts[1] > 0:
            counts[1] -= 1
        if counts[0] <= 0:
            del self._conns[(kind, address)]

    def connections(self, kind: str, address: str) -> tuple[int, int]:
        c = self._conns.get((kind, address))
        return (c[0], c[1]) if c else (0, 0)

    # -- failed authentication --------------------------------------------------
    def _recent(self, table: dict, key: str, now: float) -> collections.deque:
        q = table.get(key)
        if q is None:
            q = table[key] = collections.deque()
        while q and now - q[0] > self.ban_lifetime:
            q.popleft()
        return q

    def banned(self, address: str) -> float | None:
        """Seconds left of the address's ban, or None."""
        until = self._banned.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._banned[address]
            return None
        return left

    def auth_failed(self, address: str, account: str | None) -> float:
        """Note a failed login; the seconds to wait before answering it."""
        now = time.monotonic()
        by_addr = self._recent(self._fail_addr, address, now)
        by_addr.append(now)
        n = len(by_addr)
        if account:
            by_user = self._recent(self._fail_user, account, now)
            by_user.append(now)
            n = max(n, len(by_user))
        if self.max_auth_failures and len(by_addr) >= self.max_auth_failures:
            self._banned[address] = now + self.ban_lifetime
        self._prune(now)
        return min(0.25 * 2 ** (n - 2), 8.0) if n > 1 else 0.0

    def auth_succeeded(self, address: str, account: str) -> None:
        self._fail_user.pop(account, None)

    def _prune(self, now: float) -> None:
        if len(self._fail_addr) + len(self._fail_user) < 10000:
            return
        for table in (self._fail_addr, self._fail_user):
            for key in [k for k, q in table.items() if not q or now - q[-1] > self.ban_lifetime]:
                del table[key]

    def describe(self) -> list[str]:
        """One line per limit in force (``xmppctl check config``)."""
        out = [f"{kind}: {lim.describe()}" for kind, lim in sorted(self.by_kind.items())]
        if self.max_auth_failures:
            out.append(f"authentication: slower answers after each failure; {self.max_auth_failures} "
                       f"failures from one address ban it for {self.ban_lifetime:g}s")
        return out

"""What is kept, and for how long: the ``default_archive_policy`` and
``archive_expires_after`` settings, and the expiry.

Each archived message notes its day and user in the ``archive_cleanup`` map
store (once per user and day); the expiry deletes the items older than
``archive_expires_after`` of the users noted on an expired day, and forgets the
days that have wholly expired. It runs a minute after start and then every
``archive_cleanup_interval`` seconds (the timers are set by ``setup``).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from xmppd.moduleapi import ModuleAPI, parse_period

if TYPE_CHECKING:
    from .service import MamService

FIRST_RUN = 60            # seconds after start of the first expiry
LAST_DAY_CACHE = 10000    # users whose last noted day is remembered

def parse_expiry(value) -> float | None:
    """Seconds to keep messages, or None for "never"; ValueError when unreadable."""
    return parse_period(value)


def parse_policy(value) -> str:
    """``always``, ``never`` or ``roster`` from the option's value; ValueError otherwise."""
    if value is True or (isinstance(value, str) and value.lower() in ("always", "true")):
        return "always"
    if value is False or (isinstance(value, str) and value.lower() in ("never", "false")):
        return "never"
    if isinstance(value, str) and value.lower() == "roster":
        return "roster"
    raise ValueError(f"expected true, false or \"roster\", got {value!r}")


def expiry_setting(m: ModuleAPI) -> float | None:
    """``archive_expires_after`` in seconds (None: never); an unreadable value is a
    configuration error at the setting's file:line:col."""
    try:
        return parse_expiry(m.get_option("archive_expires_after"))
    except ValueError as exc:
        raise m.option_error("archive_expires_after", str(exc)) from None


def policy_setting(m: ModuleAPI) -> str:
    """``default_archive_policy`` as ``always``, ``never`` or ``roster``."""
    try:
        return parse_policy(m.get_option("default_archive_policy"))
    except ValueError as exc:
        raise m.option_error("default_archive_policy", str(exc)) from None


def _day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


async def note(svc: "MamService", user: str, when: float) -> None:
    """Remember that ``user`` archived something on the day of ``when``."""
    if svc.expires is None:
        return
    day = _day(when)
    if svc.last_day.get(user) == day:
        svc.last_day.move_to_end(user)
        return
    await svc.cleanup_map.set(day, user, True)
    svc.last_day[user] = day
    if len(svc.last_day) > LAST_DAY_CACHE:
        svc.last_day.popitem(last=False)


async def cleanup(svc: "MamService", now: float | None = None) -> int:
    """Delete the items older than the expiry; returns how many went."""
    if svc.expires is None:
        return 0
    now = time.time() if now is None else now
    cutoff = now - svc.expires
    cut_day = _day(cutoff)
    users: set[str] = set()
    for day in await svc.cleanup_map.users():
        if day > cut_day:
            continue
        users.update(await svc.cleanup_map.items(day))
        if day < cut_day:
            await svc.cleanup_map.clear(day)  # every message of that day has expired
    removed = 0
    for user in sorted(users):
        removed += await svc.archive.delete(user, before_when=cutoff)
    if removed:
        svc.log.info("deleted %d expired archived messages of %d users", removed, len(users))
    return removed

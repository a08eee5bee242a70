"""The module's state, in one object every handler receives: the host's stores,
the settings read once at load, and two small caches. It is also what the module
provides (``host.provided("mam")``): ``cleanup(now=None)`` runs the expiry now."""
from __future__ import annotations

from collections import OrderedDict

from xmppd.moduleapi import ModuleAPI

from . import retention

STORE = "archive"               # archive store: user -> archived messages
PREFS_STORE = "archive_prefs"   # keyval store: user -> preferences (XEP-0441)
CLEANUP_STORE = "archive_cleanup"   # map store: day -> user -> True (for the expiry)


class MamService:
    """One per host: what archiving, queries, preferences and retention share."""

    def __init__(self, m: ModuleAPI):
        self.host = m.host
        self.accounts = m.server.accounts
        self.log = m.log
        self.archive = m.open_store(STORE, "archive")
        self.prefs_store = m.open_store(PREFS_STORE, "keyval")
        self.cleanup_map = m.open_store(CLEANUP_STORE, "map")
        # settings
        self.expires: float | None = retention.expiry_setting(m)   # seconds, None: never
        self.default_policy: str = retention.policy_setting(m)     # always, never, roster
        self.max_results: int = m.get_option("max_archive_query_results")
        self.strip_ns = frozenset(m.get_option("dont_archive_namespaces") or ())
        self.include_total: bool = m.get_option("mam_include_total")
        # caches
        self.prefs_cache: OrderedDict[str, dict] = OrderedDict()   # user -> preferences
        self.last_day: OrderedDict[str, str] = OrderedDict()       # user -> day noted

    def jid_of(self, user: str) -> str:
        """The bare JID of a local account."""
        return f"{user}@{self.host.name}"

    async def cleanup(self, now: float | None = None) -> int:
        """Delete the expired archived messages now; returns how many went."""
        return await retention.cleanup(self, now)

"""Accounts: SCRAM credentials in the ``accounts`` keyval store, one per host.

Passwords are never stored; only salted, iterated SCRAM keys
(``core/credentials.py``). PBKDF2 runs in a worker thread.

An account imported from a server that kept SCRAM-SHA-1 keys only (Prosody's
``internal_hashed``) has no SCRAM-SHA-256 keys until its password changes. Such
accounts are listed per host in the ``accounts_sha1_only`` store (host-wide value);
while a host has any, its streams offer SCRAM-SHA-1 (and PLAIN) but not
SCRAM-SHA-256 (:meth:`Accounts.offers_sha256`): mechanisms are offered before the
username is known, and a client that picks the strongest offered mechanism and does
not fall back would otherwise be locked out.

An account may be disabled (Prosody 13's ``disable_user``): the record keeps a
``disabled`` flag, its sessions end and it cannot log in (SASL ``account-disabled``)
until it is enabled again; its data stays.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Awaitable

from .credentials import keys_from_salted_password, make_credentials_async, verify_password_async

if TYPE_CHECKING:
    from ..storage import Storage

log = logging.getLogger("xmppd.accounts")

STORE = "accounts"
SHA1_ONLY = "accounts_sha1_only"


class AccountError(Exception):
    """An account operation that cannot be done; the message says why."""


class AccountExists(AccountError):
    pass


class NoSuchAccount(AccountError):
    pass


class Accounts:
    def __init__(self, storage: "Storage", *, on_deleted: Callable[[str, str], Awaitable[None]] | None = None,
                 on_disabled: Callable[[str, str], Awaitable[None]] | None = None):
        self.storage = storage
        self.on_deleted = on_deleted
        self.on_disabled = on_disabled
        self._sha1_only: dict[str, frozenset[str]] = {}

    def _kv(self, host: str):
        return self.storage.keyval(host, STORE)

    async def exists(self, host: str, user: str) -> bool:
        return await self._kv(host).get(user) is not None

    async def create(self, host: str, user: str, password: str) -> None:
        if await self.exists(host, user):
            raise AccountExists(f"{user}@{host} already exists")
        creds = await make_credentials_async(password)
        await self._kv(host).set(user, creds)
        log.info("account %s@%s created", user, host)

    async def set_password(self, host: str, user: str, password: str) -> None:
        old = await self.get_credentials(host, user)
        if old is None:
            raise NoSuchAccount(f"{user}@{host} does not exist")
        creds = await make_credentials_async(password)
        if old.get("disabled"):
            creds["disabled"] = True   # a new password does not enable the account
        await self._kv(host).set(user, creds)
        await self._unmark_sha1_only(host, user)
        log.info("password of %s@%s changed", user, host)

    async def add_hash(self, host: str, user: str, hash_key: str, salted_password: bytes) -> None:
        """Give the record keys for one more hash (*hash_key*, e.g. ``scram-sha-256``),
        made from the SaltedPassword the client derived with the record's salt and
        iteration count; the other keys stay. ValueError for a bad SaltedPassword."""
        creds = await self.get_credentials(host, user)
        if creds is None:
            raise NoSuchAccount(f"{user}@{host} does not exist")
        keys = keys_from_salted_password(hash_key, salted_password)
        await self._kv(host).set(user, {**creds, hash_key: keys})
        await self._unmark_sha1_only(host, user)
        log.info("%s@%s has %s keys now", user, host, hash_key)

    # -- accounts with SCRAM-SHA-1 keys only (imported) ------------------------------

    async def load_hash_state(self, host: str) -> None:
        """Read which accounts of *host* have SCRAM-SHA-1 keys only (at start and
        when a host is added)."""
        v = await self.storage.keyval(host, SHA1_ONLY).get(None)
        self._sha1_only[host] = frozenset(v or ())

    def offers_sha256(self, host: str) -> bool:
        """False while some account of *host* has no SCRAM-SHA-256 keys."""
        return not self._sha1_only.get(host)

    async def mark_sha1_only(self, host: str, users) -> None:
        """Record accounts stored with SCRAM-SHA-1 keys only (the importer does)."""
        kv = self.storage.keyval(host, SHA1_ONLY)
        now = set(await kv.get(None) or ()) | set(users)
        await kv.set(None, sorted(now))
        self._sha1_only[host] = frozenset(now)

    async def _unmark_sha1_only(self, host: str, user: str) -> None:
        kv = self.storage.keyval(host, SHA1_ONLY)
        now = set(await kv.get(None) or ())
        if user in now:
            now.discard(user)
            await kv.set(None, sorted(now) or None)
            log.info("%s@%s has SCRAM-SHA-256 keys now (%d account(s) of %s without)",
                     user, host, len(now), host)
        self._sha1_only[host] = frozenset(now)

    async def get_credentials(self, host: str, user: str) -> dict | None:
        return await self._kv(host).get(user)

    async def verify_password(self, host: str, user: str, password: str) -> bool:
        creds = await self.get_credentials(host, user)
        if creds is None:
            return False
        return await verify_password_async(creds, password)

    async def is_enabled(self, host: str, user: str) -> bool:
        """False for a disabled account (and for one that does not exist)."""
        creds = await self.get_credentials(host, user)
        return creds is not None and not creds.get("disabled")

    async def disable(self, host: str, user: str) -> None:
        """The account cannot log in any more and its sessions end; nothing is deleted."""
        creds = await self.get_credentials(host, user)
        if creds is None:
            raise NoSuchAccount(f"{user}@{host} does not exist")
        if not creds.get("disabled"):
            await self._kv(host).set(user, {**creds, "disabled": True})
            log.info("account %s@%s disabled", user, host)
        if self.on_disabled is not None:
            await self.on_disabled(host, user)

    async def enable(self, host: str, user: str) -> None:
        creds = await self.get_credentials(host, user)
        if creds is None:
            raise NoSuchAccount(f"{user}@{host} does not exist")
        if creds.get("disabled"):
            await self._kv(host).set(user, {k: v for k, v in creds.items() if k != "disabled"})
            log.info("account %s@%s enabled", user, host)

    async def delete(self, host: str, user: str) -> None:
        """Remove the account and every stored item of it."""
        if not await self.exists(host, user):
            raise NoSuchAccount(f"{user}@{host} does not exist")
        # credentials first, so nobody can log in while the rest goes; then the
        # sessions close and modules clean up (they still see the user's data:
        # the roster knows whose rosters to update); then every store is emptied
        await self._kv(host).delete(user)
        await self._unmark_sha1_only(host, user)
        if self.on_deleted is not None:
            await self.on_deleted(host, user)
        await self.storage.delete_user(host, user)
        log.info("account %s@%s deleted", user, host)

    async def users(self, host: str) -> list[str]:
        return sorted(await self._kv(host).users())

"""Persistent rooms (XEP-0045 §10.2 ``persistentroom``): configuration,
affiliations, reserved nicknames, subject, avatar and occupant-id secret in a keyval store
(``muc_rooms``, one value per room node). Temporary rooms are never written;
a room made temporary, or destroyed, is deleted.
"""
from __future__ import annotations

from .config import RoomConfig
from .room import Room, RoomEnv

VERSION = 1


def dump(room: Room) -> dict:
    return {
        "version": VERSION,
        "config": room.config.to_dict(),
        "affiliations": dict(room.affiliations),
        "nicks": dict(room.nicks),
        "subject": room.subject,
        "subject_from": room.subject_from,
        "secret": room.secret,
        "vcard": room.vcard,
        "avatar_hash": room.avatar_hash,
        "created": room.created,
        "locked": room.locked,
    }


def load(node: str, data: dict, env: RoomEnv) -> Room:
    room = Room(node, env, RoomConfig.from_dict(data.get("config") or {}),
                secret=data.get("secret"))
    room.affiliations = dict(data.get("affiliations") or {})
    room.nicks = dict(data.get("nicks") or {})
    room.subject = data.get("subject") or ""
    room.subject_from = data.get("subject_from") or ""
    room.vcard = data.get("vcard")
    room.avatar_hash = data.get("avatar_hash")
    room.created = data.get("created") or room.created
    room.locked = bool(data.get("locked"))
    return room


class RoomStore:
    """The rooms of one MUC service in storage."""

    def __init__(self, keyval):
        self.kv = keyval

    async def save(self, room: Room) -> None:
        """Write (or delete) the room according to its state; clears ``dirty``."""
        room.dirty = False
        if room.destroyed or not room.config.persistent:
            if room.stored:
                await self.kv.delete(room.node)
                room.stored = False
        else:
            await self.kv.set(room.node, dump(room))
            room.stored = True

    async def load_all(self, env: RoomEnv) -> dict[str, Room]:
        rooms = {}
        for node in await self.kv.users():
            if not node:
                continue
            data = await self.kv.get(node)
            if data:
                room = rooms[node] = load(node, data, env)
                room.stored = True
        return rooms

    async def names(self) -> list[str]:
        return [n for n in await self.kv.users() if n]

    async def get(self, node: str) -> dict | None:
        return await self.kv.get(node)

    async def delete(self, node: str) -> bool:
        return await self.kv.delete(node)

"""``xmppctl muc``: the rooms of a MUC component.

Declared in the module's ``CLI`` list; xmppctl calls each command as
``func(args, ctx)`` with its context (``ctx.config``, ``ctx.open_storage()``,
``ctx.call_running()``, ``ctx.Error``).

    xmppctl muc list conference.falcot.com
    xmppctl muc destroy lobby@conference.falcot.com --reason "moved to #general"

``list`` asks the running xmppd (the ``muc-rooms`` control command) for its rooms,
temporary ones too, with their occupants; when xmppd is not running it reads the
stored (persistent) rooms. ``destroy`` goes through the running xmppd when it runs:
the occupants get the ``<destroy/>`` presence, then the room and its archive are
deleted. When xmppd is not running it deletes them from storage.
"""
from __future__ import annotations

from xmppd.xmpp.jid import InvalidJID, nameprep, split

from .persistence import RoomStore

ROOMS_STORE = "muc_rooms"
ARCHIVE_STORE = "muc_log"


def room_info(jid: str, cfg: dict, affiliations: dict, *, created: float | None = None,
              locked: bool = False, occupants: int | None = None) -> dict:
    """What ``xmppctl muc list`` shows of a room, live or stored: ``{"jid", "name",
    "persistent", "public", "members_only", "password", "moderated", "locked",
    "created", "occupants" (None: not known, xmppd is not running), "affiliations"}``
    (``password`` says whether there is one, never which)."""
    return {
        "jid": jid,
        "name": cfg.get("name") or "",
        "persistent": bool(cfg.get("persistent")),
        "public": bool(cfg.get("public", True)),
        "members_only": bool(cfg.get("members_only")),
        "password": bool(cfg.get("password")),
        "moderated": bool(cfg.get("moderated")),
        "locked": bool(locked),
        "created": created,
        "occupants": occupants,
        "affiliations": dict(affiliations or {}),
    }


async def list_rooms(storage, domain: str) -> list[dict]:
    """The stored (persistent) rooms of ``domain``, as :func:`room_info`."""
    store = RoomStore(storage.keyval(domain, ROOMS_STORE))
    out = []
    for node in await store.names():
        data = await store.get(node) or {}
        cfg = dict(data.get("config") or {}, persistent=True)
        out.append(room_info(f"{node}@{domain}", cfg, data.get("affiliations") or {},
                             created=data.get("created"), locked=bool(data.get("locked"))))
    return out


def live_rooms(svc) -> list[dict]:
    """The rooms of a running MUC service, temporary ones too, as :func:`room_info`."""
    return [room_info(r.jid, r.config.to_dict(), r.affiliations, created=r.created,
                      locked=r.locked, occupants=len(r.occupants))
            for _node, r in sorted(svc.rooms.items()) if not r.destroyed]


async def destroy_room(storage, domain: str, node: str) -> bool:
    """Delete a stored room and its archive; False if there was no such room."""
    existed = await RoomStore(storage.keyval(domain, ROOMS_STORE)).delete(node)
    deleted = await storage.archive(domain, ARCHIVE_STORE).delete(node)
    return existed or bool(deleted)


def _muc_domain(ctx, domain: str) -> str:
    cfg = ctx.config
    try:
        domain = nameprep(domain)
    except InvalidJID:
        raise ctx.Error(f"invalid domain {domain!r}") from None
    hc = cfg.hosts.get(domain)
    if hc is None or getattr(hc, "component_module", None) != "muc":
        known = ", ".join(h.name for h in cfg.hosts.values()
                          if getattr(h, "component_module", None) == "muc") or "none"
        raise ctx.Error(f"{domain!r} is not a MUC component in {cfg.path} "
                       f"(Component \"{domain}\" \"muc\"; configured: {known})")
    return domain


def _when(t: float | None) -> str:
    if not t:
        return "-"
    import time
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def room_line(r: dict) -> str:
    """One room, tab-separated: JID, persistent|temporary, occupants (``-``: not
    running), flags, created, owners, name."""
    flags = [("public" if r["public"] else "hidden")]
    for key, flag in (("members_only", "members-only"), ("password", "password"),
                      ("moderated", "moderated"), ("locked", "locked")):
        if r.get(key):
            flags.append(flag)
    owners = sorted(j for j, a in r["affiliations"].items() if a == "owner")
    occupants = "-" if r.get("occupants") is None else f"{r['occupants']} occupant(s)"
    line = (f"{r['jid']}\t{'persistent' if r.get('persistent') else 'temporary'}\t{occupants}\t"
            f"{','.join(flags)}\tcreated {_when(r.get('created'))}\towners={','.join(owners) or '-'}")
    if r["name"]:
        line += f"\t{r['name']}"
    return line


async def cmd_list(args, ctx) -> int:
    domain = _muc_domain(ctx, args.domain)
    rooms, running = await ctx.running_or_stored(
        "muc-rooms", {"domain": domain}, lambda storage: list_rooms(storage, domain))
    if args.json:
        import json
        print(json.dumps(rooms, indent=2, sort_keys=True))
        return 0
    for r in rooms:
        print(room_line(r))
    if running:
        if not rooms:
            print(f"no rooms on {domain}")
    else:
        if not rooms:
            print(f"no persistent rooms on {domain}")
        print("(xmppd is not running: the persistent rooms in the storage)")
    return 0


async def cmd_destroy(args, ctx) -> int:
    try:
        node, domain, res = split(args.room)
    except InvalidJID:
        node, domain, res = "", "", ""
    if not node or res:
        raise ctx.Error(f"invalid room {args.room!r}: expected room@conference.domain")
    domain = _muc_domain(ctx, domain)
    reason_text = args.reason or args.reason_pos
    reason = f" ({reason_text})" if reason_text else ""
    r = ctx.call_running("muc-destroy", {"room": f"{node}@{domain}", "reason": reason_text},
                         required=False)
    if r is not ctx.NOT_RUNNING:
        print(f"destroyed {node}@{domain} and its archive{reason}")
        if r["live"]:
            print(f"(on the running xmppd: {r['occupants']} occupant(s) told)")
        return 0
    storage = await ctx.open_storage()
    try:
        if not await destroy_room(storage, domain, node):
            raise ctx.Error(f"no stored room {node}@{domain}")
    finally:
        await storage.close()
    print(f"destroyed {node}@{domain} and its archive{reason}")
    print("(xmppd is not running: deleted from the storage)")
    return 0


def register(subparsers, common_parser) -> None:
    p = subparsers.add_parser("muc", parents=[common_parser], help="multi-user chat rooms",
                              description="The rooms of a MUC component.")
    sub = p.add_subparsers(dest="muc_command", metavar="ACTION")
    sub.required = True
    pl = sub.add_parser("list", parents=[common_parser],
                        help="list the rooms of a MUC domain (live on the running xmppd, "
                             "temporary ones too; else the persistent ones in storage)")
    pl.add_argument("domain", metavar="DOMAIN", help="e.g. conference.falcot.com")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_list)
    pd = sub.add_parser("destroy", parents=[common_parser],
                       help="destroy a room (live on the running xmppd, else in storage) and its archive")
    pd.add_argument("room", metavar="ROOM", help="room@conference.domain")
    pd.add_argument("reason_pos", nargs="?", default=None, metavar="REASON",
                    help="why (sent to the occupants of a live room)")
    pd.add_argument("--reason", default=None, help="the same as REASON")
    pd.set_defaults(func=cmd_destroy)
    return p

"""``xmppctl muc``: the persistent rooms of a MUC component, from storage.

Declared in the module's ``CLI`` list; xmppctl calls each command as
``func(args, ctx)`` with its context (``ctx.config``, ``ctx.open_storage()``,
``ctx.call_running()``, ``ctx.Error``).

    xmppctl muc list conference.falcot.com
    xmppctl muc destroy lobby@conference.falcot.com --reason "moved to #general"

``list`` reads the stored rooms (configuration, affiliations). ``destroy`` goes
through the running xmppd when it runs (its control socket): the occupants get
the ``<destroy/>`` presence, then the room and its archive are deleted. When xmppd
is not running it deletes them from storage.
"""
from __future__ import annotations

from xmppd.xmpp.jid import InvalidJID, nameprep, split

from .persistence import RoomStore

ROOMS_STORE = "muc_rooms"
ARCHIVE_STORE = "muc_log"


async def list_rooms(storage, domain: str) -> list[dict]:
    """``[{"jid", "name", "public", "members_only", "password", "affiliations"}...]``."""
    store = RoomStore(storage.keyval(domain, ROOMS_STORE))
    out = []
    for node in await store.names():
        data = await store.get(node) or {}
        cfg = data.get("config") or {}
        out.append({
            "jid": f"{node}@{domain}",
            "name": cfg.get("name") or "",
            "public": bool(cfg.get("public", True)),
            "members_only": bool(cfg.get("members_only")),
            "password": bool(cfg.get("password")),
            "affiliations": dict(data.get("affiliations") or {}),
        })
    return out


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


async def cmd_list(args, ctx) -> int:
    domain = _muc_domain(ctx, args.domain)
    storage = await ctx.open_storage()
    try:
        rooms = await list_rooms(storage, domain)
    finally:
        await storage.close()
    for r in rooms:
        flags = [("public" if r["public"] else "hidden")]
        if r["members_only"]:
            flags.append("members-only")
        if r["password"]:
            flags.append("password")
        owners = sorted(j for j, a in r["affiliations"].items() if a == "owner")
        line = f"{r['jid']}\t{','.join(flags)}\towners={','.join(owners) or '-'}"
        if r["name"]:
            line += f"\t{r['name']}"
        print(line)
    if not rooms:
        print(f"no persistent rooms on {domain}")
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
                              description="Persistent rooms of a MUC component.")
    sub = p.add_subparsers(dest="muc_command", metavar="ACTION")
    sub.required = True
    pl = sub.add_parser("list", parents=[common_parser], help="list the stored rooms of a MUC domain")
    pl.add_argument("domain", metavar="DOMAIN", help="e.g. conference.falcot.com")
    pl.set_defaults(func=cmd_list)
    pd = sub.add_parser("destroy", parents=[common_parser],
                       help="destroy a room (live on the running xmppd, else in storage) and its archive")
    pd.add_argument("room", metavar="ROOM", help="room@conference.domain")
    pd.add_argument("reason_pos", nargs="?", default=None, metavar="REASON",
                    help="why (sent to the occupants of a live room)")
    pd.add_argument("--reason", default=None, help="the same as REASON")
    pd.set_defaults(func=cmd_destroy)
    return p

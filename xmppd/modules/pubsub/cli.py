"""``xmppctl pubsub``: the nodes of a pubsub component.

Declared in the module's ``CLI`` list; xmppctl calls each command as
``func(args, ctx)`` with its context (``ctx.config``, ``ctx.open_storage()``,
``ctx.call_running()``, ``ctx.Error``).

    xmppctl pubsub list [--host pubsub.falcot.com] [--json]
    xmppctl pubsub delete NODE [--host pubsub.falcot.com]

``--host`` may be left out when one pubsub component is configured. Both go
through the running xmppd when it runs (``pubsub-nodes``, ``pubsub-delete``
control commands: a deleted node's subscribers are told); otherwise they read
and change the module's stores directly.
"""
from __future__ import annotations

from xmppd.xmpp.jid import InvalidJID, nameprep

NODES_STORE = "pubsub_nodes"
ITEMS_STORE = "pubsub_items"


def node_info(name: str, rec: dict, items: int) -> dict:
    """What ``xmppctl pubsub list`` shows of a node: ``{"node", "title",
    "access_model", "publish_model", "owners", "subscribers", "pending", "items"}``."""
    cfg = rec.get("config") or {}
    subs = rec.get("subs") or {}
    return {
        "node": name,
        "title": cfg.get("pubsub#title") or "",
        "access_model": cfg.get("pubsub#access_model") or "open",
        "publish_model": cfg.get("pubsub#publish_model") or "publishers",
        "owners": sorted(j for j, a in (rec.get("aff") or {}).items() if a == "owner"),
        "subscribers": sum(1 for s in subs.values() if s == "subscribed"),
        "pending": sum(1 for s in subs.values() if s == "pending"),
        "items": items,
    }


async def stored_nodes(storage, domain: str) -> list[dict]:
    nodes = await storage.map(domain, NODES_STORE).items("")
    items = await storage.map(domain, ITEMS_STORE).items("") if nodes else {}
    return [node_info(name, rec, len(items.get(name) or ())) for name, rec in sorted(nodes.items())]


async def delete_stored(storage, domain: str, node: str) -> bool:
    existed = await storage.map(domain, NODES_STORE).delete("", node)
    await storage.map(domain, ITEMS_STORE).delete("", node)
    return bool(existed)


def _domain(ctx, host: str | None) -> str:
    cfg = ctx.config
    services = [h.name for h in cfg.hosts.values()
                if getattr(h, "component_module", None) == "pubsub"]
    if host is None:
        if len(services) == 1:
            return services[0]
        if not services:
            raise ctx.Error(f"no pubsub component in {cfg.path} "
                            "(Component \"pubsub.example.com\" \"pubsub\")")
        raise ctx.Error(f"several pubsub components ({', '.join(services)}): say which "
                        "with --host")
    try:
        host = nameprep(host)
    except InvalidJID:
        raise ctx.Error(f"invalid domain {host!r}") from None
    if host not in services:
        raise ctx.Error(f"{host!r} is not a pubsub component in {cfg.path} "
                        f"(Component \"{host}\" \"pubsub\"; configured: "
                        f"{', '.join(services) or 'none'})")
    return host


def node_line(n: dict) -> str:
    line = (f"{n['node']}\t{n['access_model']}\t{n['items']} item(s)\t"
            f"{n['subscribers']} subscriber(s)")
    if n["pending"]:
        line += f" ({n['pending']} pending)"
    line += f"\towners={','.join(n['owners']) or '-'}"
    if n["title"]:
        line += f"\t{n['title']}"
    return line


async def cmd_list(args, ctx) -> int:
    domain = _domain(ctx, args.host)
    nodes, running = await ctx.running_or_stored(
        "pubsub-nodes", {"domain": domain}, lambda storage: stored_nodes(storage, domain))
    if args.json:
        import json
        print(json.dumps(nodes, indent=2, sort_keys=True))
        return 0
    for n in nodes:
        print(node_line(n))
    if not nodes:
        print(f"no nodes on {domain}")
    if not running:
        print("(xmppd is not running: the nodes in the storage)")
    return 0


async def cmd_delete(args, ctx) -> int:
    domain = _domain(ctx, args.host)
    r = ctx.call_running("pubsub-delete", {"domain": domain, "node": args.node}, required=False)
    if r is not ctx.NOT_RUNNING:
        print(f"deleted node {args.node} of {domain}")
        return 0
    storage = await ctx.open_storage()
    try:
        if not await delete_stored(storage, domain, args.node):
            raise ctx.Error(f"no node {args.node!r} on {domain}")
    finally:
        await storage.close()
    print(f"deleted node {args.node} of {domain}")
    print("(xmppd is not running: deleted from the storage)")
    return 0


def register(subparsers, common_parser) -> None:
    p = subparsers.add_parser("pubsub", parents=[common_parser], help="publish-subscribe nodes",
                              description="The nodes of a pubsub component.")
    sub = p.add_subparsers(dest="pubsub_command", metavar="ACTION")
    sub.required = True
    pl = sub.add_parser("list", parents=[common_parser],
                        help="list the nodes of a pubsub service")
    pl.add_argument("--host", default=None, metavar="DOMAIN",
                    help="the pubsub component, e.g. pubsub.falcot.com (default: the only one)")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_list)
    pd = sub.add_parser("delete", parents=[common_parser],
                        help="delete a node, its items and subscriptions")
    pd.add_argument("node", metavar="NODE", help="the node's name")
    pd.add_argument("--host", default=None, metavar="DOMAIN",
                    help="the pubsub component, e.g. pubsub.falcot.com (default: the only one)")
    pd.set_defaults(func=cmd_delete)
    return p

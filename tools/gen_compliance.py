#!/usr/bin/env python3
"""Write docs/compliance.md: XEP-0479 (XMPP Compliance Suites 2023) for servers,
from ``tools/compliance.toml`` (each requirement, the module that does it, the
tests that cover it, its status) and from what servers built from the code
advertise.

Two servers are started in-process (memory storage, no listener): one host with
the default modules (``modules_enabled`` not set), and one with the opt-in
modules and the components a full deployment adds (websocket, bosh,
server_contact_info, external_services; a ``muc`` and an ``http_file_share``
Component). Their disco#info features (of the domain, of accounts, of each
component) and stream features are what the page marks as advertised.

    python tools/gen_compliance.py           # rewrite docs/compliance.md
    python tools/gen_compliance.py --check   # exit 1 if it is out of date

tests/cli/test_compliance.py checks the page and the table against the code.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import types
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TABLE = REPO / "tools" / "compliance.toml"
PAGE = REPO / "docs" / "compliance.md"

CATEGORIES = [
    ("Core", "Core Compliance Suite"),
    ("Web", "Web Compliance Suite"),
    ("IM", "IM Compliance Suite"),
    ("Mobile", "Mobile Compliance Suite"),
    ("A/V", "A/V Calling Compliance Suite"),
    ("Future", "Future development, and beyond the suite"),
]
OPT_IN_MODULES = ("websocket", "bosh", "server_contact_info", "external_services", "fast",
                  "invites", "invites_register", "invites_adhoc")
COMPONENTS = {"muc": "conference.example.com", "http_file_share": "upload.example.com",
              "pubsub": "pubsub.example.com"}
STATUS_DONE = "done"
LEVELS = {"yes": "✓", "no": "—", "n/a": "n/a"}


def load_table(path: Path = TABLE) -> list[dict]:
    with path.open("rb") as f:
        rows = tomllib.load(f)["req"]
    for r in rows:
        r.setdefault("features", [])
        r.setdefault("tests", [])
        r.setdefault("note", "")
    return rows


# -- what servers built from the code advertise -------------------------------------------

def _config_text(data: str) -> str:
    from xmppd.config.options import DEFAULT_MODULES
    full = ", ".join(f'"{m}"' for m in (*DEFAULT_MODULES, *OPT_IN_MODULES))
    comps = "".join(f'Component "{host}" "{module}"\n' for module, host in COMPONENTS.items())
    return (f'data_path = "{data}"\ncontrol_socket = false\ninterfaces = {{ "127.0.0.1" }}\n'
            'VirtualHost "default.example"\n'
            'VirtualHost "example.com"\n'
            f"    modules_enabled = {{ {full} }}\n" + comps)


def _host_features(host, prefix: str = "") -> set[str]:
    out = {f"{prefix}host:{f}" for f in host.features}
    out |= {f"{prefix}account:{f}" for f in host.account_features}
    fresh = types.SimpleNamespace(state={})    # a session that has not enabled anything yet
    for funcs in host.stream_features.values():
        for func in funcs:
            try:
                el = func(fresh)
            except Exception:     # a feature that needs a real session: not ours to list
                continue
            if el is not None and el.tag.startswith("{"):
                out.add(f"{prefix}stream:{el.tag[1:].split('}')[0]}")
    return out


async def _advertised() -> tuple[set[str], set[str]]:
    import logging

    from xmppd.app import FINDER
    from xmppd.config import parse_config_text
    from xmppd.core.server import Server
    from xmppd.storage import open_storage
    logging.disable(logging.WARNING)     # the self-signed certificates it makes
    try:
        with tempfile.TemporaryDirectory() as d:
            cfg = parse_config_text(_config_text(f"{d}/data"), filename=f"{d}/xmppd.cfg.lua",
                                    base_dir=d)
            storage = await open_storage("memory")
            server = Server(cfg, storage=storage, finder=FINDER)
            await server.start()
            try:
                default = _host_features(server.hosts["default.example"])
                full = _host_features(server.hosts["example.com"])
                for module, name in COMPONENTS.items():
                    full |= {f"component:{module}:{f}" for f in server.hosts[name].features}
            finally:
                await server.stop()
                await storage.close()
    finally:
        logging.disable(logging.NOTSET)
    return default, full


def advertised() -> tuple[set[str], set[str]]:
    """(what the default host advertises, what the full deployment does) as
    ``host:…``, ``account:…``, ``stream:…``, ``component:MODULE:…`` strings."""
    return asyncio.run(_advertised())


def is_advertised(row: dict, feature: str, default: set[str], full: set[str]) -> bool:
    return feature in (default if row["load"] in ("default", "core") else full)


# -- the page ----------------------------------------------------------------------------

def _spec_link(spec: str) -> str:
    kind, _, num = spec.partition(" ")
    if kind == "RFC":
        return f"[{spec}](https://www.rfc-editor.org/rfc/rfc{num.strip()})"
    n = spec.split("-")[1]
    return f"[{spec}](https://xmpp.org/extensions/xep-{n}.html)"


def _status(row: dict) -> str:
    s = row["status"]
    if s == STATUS_DONE:
        return "✅ done"
    if s.startswith("in progress"):
        return f"🚧 {s}"
    return f"❌ {s}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(rows: list[dict], default: set[str], full: set[str]) -> str:
    out = [
        "# XEP-0479 compliance (XMPP Compliance Suites 2023)",
        "",
        "<!-- Generated by tools/gen_compliance.py from tools/compliance.toml and from what",
        "     servers built from the code advertise; edit those, then `make docs`.",
        "     tests/cli/test_compliance.py fails when this page is stale. -->",
        "",
        "What [XEP-0479](https://xmpp.org/extensions/xep-0479.html) (version 0.1.0)",
        "requires of servers, category by category, and where xmppd does it. The",
        "*Server* and *Advanced* columns are the suite's (✓ required, — not required,",
        "n/a); *Version* is the version of each XEP that xmppd follows.",
        "*Advertised* is checked against a server built from the code: a host with the",
        "default modules (*load* `default`/`core`), or one with the opt-in modules",
        f"({', '.join(f'`{m}`' for m in OPT_IN_MODULES)}) and the components "
        f"({', '.join(f'`{m}`' for m in COMPONENTS)}) (*load* `opt-in`):",
        "`host:` is the domain's disco#info, `account:` an account's, `stream:` a",
        "stream feature, `component:M:` the disco#info of a component running M.",
        "",
    ]
    summary = ["| category | server | advanced server |", "|---|---|---|"]
    for cat, _ in CATEGORIES:
        cells = []
        for level in ("server", "advanced"):
            req = [r for r in rows if r["category"] == cat and r[level] == "yes"]
            if not req:
                cells.append("—")
                continue
            done = sum(r["status"] == STATUS_DONE for r in req)
            cells.append(f"{done}/{len(req)} done" + (" ✅" if done == len(req) else ""))
        if cat != "Future":
            summary.append(f"| {cat} | {cells[0]} | {cells[1]} |")
    out += summary + [""]
    for cat, title in CATEGORIES:
        cat_rows = [r for r in rows if r["category"] == cat]
        if not cat_rows:
            continue
        out += [f"## {title}", "",
                "| feature | specification | version | server | advanced | module | load "
                "| advertised | tests | status |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in cat_rows:
            specs = "<br>".join(_spec_link(s) for s in r["specs"])
            versions = "<br>".join(v or "—" for v in r["versions"])
            modules = ", ".join("core" if m == "core" else f"[{m}](modules/{m}.md)"
                                if (REPO / "docs" / "modules" / f"{m}.md").exists() else f"`{m}`"
                                for m in r["modules"]) or "—"
            adv = "<br>".join(("✓ " if is_advertised(r, f, default, full) else "✗ ") + f"`{f}`"
                              for f in r["features"]) or "—"
            tests = "<br>".join(f"`{t}`" for t in r["tests"]) or "—"
            status = _status(r) + (f": {r['note']}" if r["note"] else "")
            out.append("| " + " | ".join(_cell(c) for c in (
                r["feature"], specs, versions, LEVELS[r["server"]], LEVELS[r["advanced"]],
                modules, r["load"], adv, tests, status)) + " |")
        out.append("")
    return "\n".join(out)


def page(rows: list[dict] | None = None, adv: tuple[set[str], set[str]] | None = None) -> str:
    rows = load_table() if rows is None else rows
    default, full = advertised() if adv is None else adv
    return render(rows, default, full)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/compliance.md is stale")
    args = ap.parse_args()
    text = page()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(REPO)} is out of date: run python tools/gen_compliance.py")
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

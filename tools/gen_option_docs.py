#!/usr/bin/env python3
"""Write the option tables of the docs from the option declarations.

Options are declared by the code that reads them: ``CORE_OPTIONS`` in
``xmppd/config/options.py`` and each module's ``OPTIONS``. This script rewrites the
part between the markers below in ``docs/configuration.md`` (every option) and in
``docs/modules/NAME.md`` (that module's options), leaving the rest of each page alone.

    python tools/gen_option_docs.py           # rewrite the pages
    python tools/gen_option_docs.py --check   # exit 1 if a page is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BEGIN = "<!-- BEGIN GENERATED OPTIONS: tools/gen_option_docs.py -->"
END = "<!-- END GENERATED OPTIONS -->"

SCOPES = {"global": "global", "host": "per host", "both": "global or per host"}


def lua(value) -> str:
    """A default value as it would be written in the config file."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (int, float)):
        return f"`{value}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (list, tuple, set)):
        items = sorted(value) if isinstance(value, set) else value
        return "`{ " + ", ".join(lua(v).strip("`") for v in items) + " }`" if items else "`{ }`"
    if isinstance(value, dict):
        return "`{ " + "; ".join(f"{k} = {lua(v).strip('`')}" for k, v in value.items()) + " }`" \
            if value else "`{ }`"
    return f"`{value!r}`"


def table(options) -> str:
    rows = ["| option | type | default | where | what it does |",
            "|---|---|---|---|---|"]
    for o in options:
        kind = o.type
        if o.min is not None or o.max is not None:
            kind += f" ({o.min if o.min is not None else ''}..{o.max if o.max is not None else ''})"
        if o.choices:
            kind += ": " + ", ".join(lua(c) for c in o.choices)
        doc = o.doc.replace("|", "\\|")
        rows.append(f"| `{o.name}` | {kind} | {lua(o.default)} | {SCOPES[o.scope]} | {doc} |")
    return "\n".join(rows) + "\n"


def module_options() -> dict[str, list]:
    from xmppd.app import FINDER
    out = {}
    for name in FINDER.available():
        opts = list(getattr(FINDER.load(name), "OPTIONS", ()) or ())
        out[name] = opts
    return out


def configuration_section() -> str:
    from xmppd.config.options import CORE_OPTIONS
    parts = ["### Core options\n", "Read by the server itself; names and defaults are "
             "Prosody's where the meaning is the same.\n", table(CORE_OPTIONS)]
    for name, opts in module_options().items():
        if opts:
            page = REPO / "docs" / "modules" / f"{name}.md"
            see = f" (see [modules/{name}.md](modules/{name}.md))" if page.exists() else ""
            parts += [f"\n### Module `{name}`\n",
                      f"Read when `{name}` is loaded{see}.\n", table(opts)]
    return "\n".join(parts)


def module_section(name: str, opts) -> str:
    if not opts:
        return "This module has no options.\n"
    return table(opts)


def replace_section(text: str, body: str, path: Path) -> str:
    try:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{path}: the markers {BEGIN!r} and {END!r} are missing") from None
    return f"{head}{BEGIN}\n{body}{END}{tail}"


def pages() -> dict[Path, str]:
    """Each page that carries a generated section, with its expected content."""
    out = {}
    conf = REPO / "docs" / "configuration.md"
    out[conf] = replace_section(conf.read_text(), configuration_section(), conf)
    for name, opts in module_options().items():
        page = REPO / "docs" / "modules" / f"{name}.md"
        if page.exists() and BEGIN in page.read_text():
            out[page] = replace_section(page.read_text(), module_section(name, opts), page)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report out-of-date pages")
    args = ap.parse_args(argv)
    stale = []
    for path, text in pages().items():
        if path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    rel = [str(p.relative_to(REPO)) for p in stale]
    if args.check:
        if stale:
            print(f"out of date: {', '.join(rel)}; run: python tools/gen_option_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    print(f"updated: {', '.join(rel)}" if rel else "docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

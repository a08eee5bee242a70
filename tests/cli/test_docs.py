"""The option tables in docs/ are generated from the declarations: keep them current."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("gen_option_docs", REPO / "tools" / "gen_option_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_option_docs_are_up_to_date():
    tool = load_tool()
    stale = [str(p.relative_to(REPO)) for p, text in tool.pages().items() if p.read_text() != text]
    assert not stale, f"out of date: {stale}; run `make docs` (python tools/gen_option_docs.py)"


def test_every_core_option_is_documented():
    from xmppd.config import CORE_OPTIONS
    text = (REPO / "docs" / "configuration.md").read_text()
    missing = [o.name for o in CORE_OPTIONS if f"| `{o.name}` |" not in text]
    assert not missing


def test_every_module_has_a_page_and_every_page_a_module():
    from xmppd.app import ALIASES, FINDER
    pages = {p.stem for p in (REPO / "docs" / "modules").glob("*.md")} - {"README"}
    assert pages == set(FINDER.available())
    index = (REPO / "docs" / "modules" / "README.md").read_text()
    for name in FINDER.available():
        assert f"({name}.md)" in index or name in ("dialback", "s2s_bidi"), name
    for alias, target in ALIASES.items():
        assert f"| `{alias}` | [{target}]({target}.md) |" in index, alias

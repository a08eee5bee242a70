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


def test_existing_modules_have_a_page():
    for name in ("disco", "ping", "version", "time", "message", "presence"):
        assert (REPO / "docs" / "modules" / f"{name}.md").exists(), name

"""docs/compliance.md (XEP-0479) cannot drift from the code: the page is what
tools/gen_compliance.py makes now, and each row of tools/compliance.toml holds
against the code (its modules load as it says and list its specs, the features it
names are advertised, the tests it names exist)."""
from __future__ import annotations

import ast
import importlib
import importlib.util
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What XEP-0479 (0.1.0, §2) requires of servers: (category, provider) at the
# Server or Advanced Server level. The table must have a row for each.
REQUIRED = {
    ("Core", "RFC 6120"), ("Core", "RFC 7590"), ("Core", "XEP-0368"), ("Core", "XEP-0030"),
    ("Core", "XEP-0115"), ("Core", "XEP-0114"), ("Core", "XEP-0163"),
    ("Web", "RFC 7395"), ("Web", "XEP-0206"),
    ("IM", "RFC 6121"), ("IM", "XEP-0398"), ("IM", "XEP-0153"), ("IM", "XEP-0054"),
    ("IM", "XEP-0280"), ("IM", "XEP-0191"), ("IM", "XEP-0045"), ("IM", "XEP-0249"),
    ("IM", "XEP-0048"), ("IM", "XEP-0313"), ("IM", "XEP-0402"), ("IM", "XEP-0410"),
    ("IM", "XEP-0223"), ("IM", "XEP-0049"), ("IM", "XEP-0198"), ("IM", "XEP-0363"),
    ("Mobile", "XEP-0198"), ("Mobile", "XEP-0352"), ("Mobile", "XEP-0357"),
    ("A/V", "XEP-0215"),
}


@cache
def tool():
    spec = importlib.util.spec_from_file_location("gen_compliance", REPO / "tools" / "gen_compliance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def rows() -> tuple:
    return tuple(tool().load_table())


@cache
def advertised():
    return tool().advertised()


def done(r) -> bool:
    return r["status"] == "done"


def test_the_page_is_up_to_date():
    text = (REPO / "docs" / "compliance.md").read_text()
    assert text == tool().page(list(rows()), advertised()), \
        "docs/compliance.md is stale: run `make docs` (python tools/gen_compliance.py)"


def test_rows_are_well_formed():
    cats = {c for c, _ in tool().CATEGORIES}
    for r in rows():
        assert r["category"] in cats, r["feature"]
        assert r["server"] in ("yes", "no", "n/a") and r["advanced"] in ("yes", "no", "n/a"), r["feature"]
        assert r["load"] in ("default", "core", "opt-in"), r["feature"]
        assert len(r["specs"]) == len(r["versions"]), r["feature"]
        assert r["status"] == "done" or r["status"].startswith("in progress (issue #") \
            or r["status"] == "not implemented", r["feature"]
        if r["status"] == "not implemented":
            assert r["note"], f"{r['feature']}: say why it is not implemented"


def test_every_server_requirement_of_the_suite_has_a_row():
    have = {(r["category"], s) for r in rows() for s in r["specs"]
            if r["server"] == "yes" or r["advanced"] == "yes"}
    assert REQUIRED <= have, sorted(REQUIRED - have)


def test_advanced_core_im_and_mobile_are_done_or_owned_by_an_issue():
    for r in rows():
        if r["category"] in ("Core", "IM", "Mobile") and "yes" in (r["server"], r["advanced"]):
            assert done(r) or r["status"].startswith("in progress (issue #"), r["feature"]


def _protocols(module: str) -> list[str]:
    from xmppd.app import FINDER
    return list(getattr(importlib.import_module(f"xmppd.modules.{FINDER.resolve(module)}"),
                        "PROTOCOLS", []))


@pytest.mark.parametrize("row", [r for r in rows() if done(r)], ids=lambda r: f"{r['category']}:{r['feature']}")
def test_a_done_row_holds_against_the_code(row):
    from xmppd.app import AUTOLOAD, FINDER
    from xmppd.config.options import DEFAULT_MODULES
    modules = [m for m in row["modules"] if m != "core"]
    assert row["modules"], "a done row names the module that does it"
    for m in modules:
        assert FINDER.resolve(m) in FINDER.available(), f"no module {m}"
        if row["load"] == "default":
            assert m in DEFAULT_MODULES or m in AUTOLOAD, f"{m} is not loaded by default"
    if modules:
        protocols = [p for m in modules for p in _protocols(m)]
        for spec in row["specs"]:
            assert any(p == spec or p.startswith(spec + " ") for p in protocols), \
                f"{spec} is in no PROTOCOLS of {modules}"
    default, full = advertised()
    missing = [f for f in row["features"] if not tool().is_advertised(row, f, default, full)]
    assert not missing, f"not advertised: {missing}"
    if "yes" in (row["server"], row["advanced"]):
        assert row["tests"], "a required row names its tests"


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{n.name}" for n in node.body
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def test_named_tests_exist():
    for r in rows():
        for t in r["tests"]:
            path, _, name = t.partition("::")
            p = REPO / path
            assert p.is_file() and p.name.startswith("test_"), f"{r['feature']}: no file {path}"
            if name:
                assert name.startswith("test") and name in _defined(p), f"{r['feature']}: no test {t}"

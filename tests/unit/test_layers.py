"""The rules the code's shape keeps, read from every import statement (those inside
functions too):

* ``xmppd.xmpp`` (the protocol vocabulary) imports no layer above it;
* ``xmppd.core`` never imports ``protocol``, ``http``, ``modules``, ``cli`` or ``app``;
* ``xmppd.protocol`` and ``xmppd.http`` never import ``modules``, ``cli`` or ``app``;
* a module imports the vocabulary (``xmppd.xmpp``) and the module API
  (``xmppd.moduleapi``), and within its own package; never another module, the core,
  a protocol or the command line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "xmppd"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in the file; for ``from X
    import a`` both ``X`` and ``X.a`` (``a`` may be a submodule)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out.extend((node.lineno, f"{mod}.{a.name}") for a in node.names)
    return out


def under(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


FILES = sorted(ROOT.rglob("*.py"))


def violations(rule) -> list[str]:
    out = []
    for path in FILES:
        me = module_name(path)
        for line, mod in imports_of(path):
            if not under(mod, "xmppd"):
                continue
            why = rule(me, mod)
            if why:
                out.append(f"{path.relative_to(ROOT.parent)}:{line}: {me} imports {mod} ({why})")
    return out


def vocabulary_rule(me: str, mod: str) -> str | None:
    if under(me, "xmppd.xmpp") and not under(mod, "xmppd.xmpp", "xmppd.stream", "xmppd"):
        return "the vocabulary stands on nothing above it"
    if under(me, "xmppd.xmpp") and under(mod, "xmppd.core", "xmppd.protocol", "xmppd.modules",
                                         "xmppd.cli", "xmppd.app", "xmppd.moduleapi",
                                         "xmppd.storage", "xmppd.net", "xmppd.config"):
        return "the vocabulary stands on nothing above it"
    return None


def core_rule(me: str, mod: str) -> str | None:
    if under(me, "xmppd.core") and under(mod, "xmppd.protocol", "xmppd.http", "xmppd.modules",
                                         "xmppd.cli", "xmppd.app", "xmppd.moduleapi"):
        return "the core names no protocol and no feature"
    return None


def protocol_rule(me: str, mod: str) -> str | None:
    if under(me, "xmppd.protocol", "xmppd.http") and under(mod, "xmppd.modules", "xmppd.cli",
                                                          "xmppd.app", "xmppd.moduleapi"):
        return "protocols fire events; features hook them"
    return None


def module_rule(me: str, mod: str) -> str | None:
    if not under(me, "xmppd.modules") or me == "xmppd.modules":
        return None
    own = ".".join(me.split(".")[:3])   # xmppd.modules.<name>
    if under(mod, own, "xmppd.xmpp", "xmppd.moduleapi"):
        return None
    if mod in ("xmppd", "xmppd.modules"):
        return None
    return "a module imports the vocabulary, the module API and its own package only"


@pytest.mark.parametrize("rule", [vocabulary_rule, core_rule, protocol_rule, module_rule],
                         ids=lambda r: r.__name__)
def test_layers(rule):
    assert violations(rule) == []


def test_the_rules_see_imports_inside_functions(tmp_path):
    """A rule that could not fail would be worth nothing: an import hidden in a
    function body is found."""
    p = ROOT / "core" / "_layer_probe.py"
    p.write_text("def f():\n    from ..modules import muc\n    return muc\n")
    try:
        FILES.append(p)
        found = violations(core_rule)
    finally:
        FILES.remove(p)
        p.unlink()
    assert any("_layer_probe.py:2" in v and "xmppd.modules.muc" in v for v in found)

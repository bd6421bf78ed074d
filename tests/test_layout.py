"""The package's layout: its imports form no cycle (those run at import time, and those inside functions too), and
modules stay small."""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tueval", "tueval_analyses")
MAX_LINES = 400


def _modules(root: Path = ROOT, packages: tuple = PACKAGES) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out = {}
    for pkg in packages:
        for p in sorted((root / pkg).rglob("*.py")):
            parts = list(p.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _import_time_nodes(body: list[ast.stmt]) -> list[ast.stmt]:
    """The import statements run at import time: module level, inside if/try, not under TYPE_CHECKING."""
    out: list[ast.stmt] = []
    for n in body:
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out.append(n)
        elif isinstance(n, ast.If) and "TYPE_CHECKING" not in ast.dump(n.test):
            out += _import_time_nodes(n.body) + _import_time_nodes(n.orelse)
        elif isinstance(n, ast.Try):
            out += _import_time_nodes(n.body) + _import_time_nodes(n.orelse) + _import_time_nodes(n.finalbody)
            for h in n.handlers:
                out += _import_time_nodes(h.body)
    return out


def _targets(mod: str, is_pkg: bool, node: ast.stmt, mods: dict) -> set[str]:
    """The project modules an import statement of ``mod`` loads (a parent package's own __init__ aside)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in mods}
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if node.level:
        base = base[:len(base) - node.level + 1]
    pref = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
    subs = {f"{pref}.{a.name}" for a in node.names if f"{pref}.{a.name}" in mods}
    return subs | ({pref} if len(subs) < len(node.names) and pref in mods else set())


def _deferred_nodes(body: list[ast.stmt]) -> list[ast.stmt]:
    """Every import statement, inside functions too, but not under TYPE_CHECKING (names for annotations only)."""
    out: list[ast.stmt] = []
    for n in body:
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n.test):
            continue
        out += [x for x in ast.walk(n) if isinstance(x, (ast.Import, ast.ImportFrom))]
    return out


def import_graph(root: Path = ROOT, packages: tuple = PACKAGES, deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the project modules it imports at import time (``deferred``: anywhere in its code). Imports by
    ``importlib`` with a computed name (the registries' built-ins) are not seen."""
    mods = _modules(root, packages)
    graph = {}
    for mod, (path, is_pkg) in mods.items():
        body = ast.parse(path.read_text(encoding="utf-8")).body
        nodes = _deferred_nodes(body) if deferred else _import_time_nodes(body)
        graph[mod] = set().union(*(_targets(mod, is_pkg, n, mods) for n in nodes)) - {mod}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        return list(e.args[1])
    return None


@pytest.mark.parametrize("deferred", [False, True], ids=["import-time", "deferred-too"])
def test_imports_form_no_cycle(deferred):
    graph = import_graph(deferred=deferred)
    assert {"tueval.unlearn", "tueval.spec", "tueval_analyses.controls"} <= set(graph)
    assert "tueval.spec" in graph["tueval.unlearn"]  # the graph sees relative imports
    found = cycle(graph)
    assert found is None, f"import cycle: {' -> '.join(found)}"


def test_a_planted_cycle_is_found_and_a_deferred_import_is_not_one(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\n")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("x = 1\ndef f():\n    from .sub import a\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.sub"] == {"pkg.a"} and graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == set()
    assert cycle(graph) is None
    assert sorted(set(cycle(import_graph(tmp_path, ("pkg",), deferred=True)))) == ["pkg.a", "pkg.b", "pkg.sub"]
    (pkg / "b.py").write_text("try:\n    import pkg.sub\nexcept ImportError:\n    pass\n")
    assert sorted(set(cycle(import_graph(tmp_path, ("pkg",))))) == ["pkg.a", "pkg.b", "pkg.sub"]


def test_no_module_is_over_400_lines():
    long = {m: n for m, (p, _) in _modules().items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"

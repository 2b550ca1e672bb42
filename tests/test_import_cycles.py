"""No import cycle inside uolrps/: every import statement (module-level and inside functions) is read with ast,
names resolved through the packages' lazy export tables, and the graph checked for cycles between modules
and between subpackages (``uolrps.eval`` <-> ``uolrps.explain`` is a cycle even when no single module
pair is). A cycle's message names the modules and the lines that close it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "uolrps").rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def lazy_exports(tree: ast.Module) -> dict[str, str]:
    """A package's ``_EXPORTS = {"name": "module", ...}`` table (uolrps.core.lazy), if it has one."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: v for k, v in value.items() if isinstance(v, str)}
    return {}


def imports_of(path: Path, name: str) -> list[tuple[str, str | None, int]]:
    """``(module imported, name imported from it or None, line)`` for every uolrps import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for c in child.orelse:
                    visit_one(c)
                continue
            visit_one(child)

    def visit_one(child):
        if isinstance(child, ast.Import):
            for a in child.names:
                out.append((a.name, None, child.lineno))
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (child.level - 1)]
                mod = ".".join(base + ([child.module] if child.module else []))
            else:
                mod = child.module or ""
            for a in child.names:
                out.append((mod, a.name, child.lineno))
        visit(child)

    visit(tree)
    return [(m, n, line) for m, n, line in out if m == "uolrps" or m.startswith("uolrps.")]


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {module it imports: first line}; ``from pkg import x`` goes to pkg.x when that is a module,
    else to the module pkg's lazy table names for x, else to pkg itself."""
    mods = all_modules(root)
    tables = {m: lazy_exports(ast.parse(p.read_text(encoding="utf-8"))) for m, p in mods.items()
              if p.name == "__init__.py"}
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, p in mods.items():
        for target, attr, line in imports_of(p, m):
            if attr is not None and f"{target}.{attr}" in mods:
                dest = f"{target}.{attr}"
            elif attr is not None and attr in tables.get(target, {}):
                dest = tables[target][attr]
            else:
                dest = target
            if dest in mods and dest != m:
                graph[m].setdefault(dest, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def package_of(module: str) -> str:
    """The subpackage a module belongs to (``uolrps.eval.sweep`` -> ``uolrps.eval``); top-level modules are
    their own unit, and the runtime's backends count as the runtime."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """subpackage -> {subpackage it imports: 'module:line -> module' of the first such import}."""
    out: dict[str, dict[str, str]] = {}
    for m, deps in graph.items():
        pm = package_of(m)
        out.setdefault(pm, {})
        for d, line in deps.items():
            pd = package_of(d)
            if pd != pm and pm != "uolrps" and pd != "uolrps":
                out[pm].setdefault(pd, f"{m}:{line} -> {d}")
    return out


def describe(comp: list[str], graph: dict) -> str:
    inside = set(comp)
    edges = [f"{a} -> {b} ({a}:{line})" if isinstance(line, int) else f"{a} -> {b} ({line})"
             for a in comp for b, line in graph[a].items() if b in inside]
    return " | ".join(edges)


# ---- the checker on a hand-made package ---------------------------------------------------------------
def test_checker_finds_function_level_and_lazy_cycles(tmp_path):
    pkg = tmp_path / "uolrps"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text('_EXPORTS = {"thing": "uolrps.a.impl"}\n')
    (pkg / "a" / "impl.py").write_text("def f():\n    from uolrps.b.user import g\n")
    (pkg / "a" / "free.py").write_text("import os\n")
    (pkg / "b" / "__init__.py").write_text("")
    (pkg / "b" / "user.py").write_text("from uolrps.a import thing\nfrom ..a import free\n")
    (pkg / "b" / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                        "    from uolrps.b.user import g\n")
    g = import_graph(tmp_path)
    assert g["uolrps.a.impl"] == {"uolrps.b.user": 2}  # function-level import seen
    assert g["uolrps.b.user"] == {"uolrps.a.impl": 1, "uolrps.a.free": 2}  # lazy name and relative import resolved
    assert g["uolrps.b.typed"] == {}  # TYPE_CHECKING imports never run
    assert cycles(g) == [["uolrps.a.impl", "uolrps.b.user"]]


# ---- the real package -----------------------------------------------------------------------------------
# Imports that close a cycle in areas other than eval/explain, known when this test was written, each with its
# owner and the way out. The test removes them, then fails on any other cycle; it fails too once a listed
# import is gone (delete its entry then), and xfails (strict) while any listed one remains.
KNOWN_BACK_EDGES: dict = {}  # none left (the runner now gets the server factory from its caller)


def _without_known(graph):
    return {m: {d: line for d, line in deps.items() if (m, d) not in KNOWN_BACK_EDGES} for m, deps in graph.items()}


def test_no_import_cycle_beyond_the_known_ones():
    g = import_graph()
    assert len(g) > 40 and "uolrps.eval.datasets" in g
    clean = _without_known(g)
    found = cycles(clean)
    assert not found, "import cycles between modules: " + "; ".join(describe(c, clean) for c in found)
    pg = package_graph(clean)
    found = cycles(pg)
    assert not found, "import cycles between subpackages: " + "; ".join(describe(c, pg) for c in found)
    gone = [e for e in KNOWN_BACK_EDGES if e[1] not in g.get(e[0], {})]
    assert not gone, f"these known cycle-closing imports are gone, delete them from KNOWN_BACK_EDGES: {gone}"
    remaining = [f"{a} -> {b} ({a}:{g[a][b]}) [{why}]" for (a, b), why in KNOWN_BACK_EDGES.items()]
    if remaining:
        pytest.xfail("known cycles remain: " + "; ".join(remaining))

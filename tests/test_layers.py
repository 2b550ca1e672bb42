"""The package's layers, lowest first: core < model < calib < export < runtime < eval, explain, bench < serve <
cli. A module imports only from its own layer or below. Every import is read with ast, those inside functions
included (a lazy import is still a dependency), through the packages' lazy export tables."""

from __future__ import annotations

import pytest

from test_import_cycles import import_graph

LAYERS = (("core",), ("model",), ("calib",), ("export",), ("runtime",), ("eval", "explain", "bench"), ("serve",),
          ("cli",))
RANK = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}


def rank_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # uolrps/__init__.py: the version only, below everything
        return -1
    if parts[1] not in RANK:
        raise KeyError(f"{module} sits in no layer: put it in one of {', '.join(RANK)} (or add its package to "
                       f"LAYERS here and to docs/ARCHITECTURE.md)")
    return RANK[parts[1]]


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    return [f"{m}:{line} imports {d} ({m.split('.')[1]} < {d.split('.')[1]})"
            for m, deps in sorted(graph.items()) for d, line in deps.items() if rank_of(d) > rank_of(m)]


def test_every_module_sits_in_a_layer():
    g = import_graph()
    for m in g:
        rank_of(m)
    assert "uolrps.core.errors" in g and "uolrps.model.meta" in g


def test_no_module_imports_from_a_higher_layer():
    bad = upward_imports(import_graph())
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_lazy_table_imports(tmp_path):
    pkg = tmp_path / "uolrps"
    for sub in ("core", "runtime", "cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "runtime" / "__init__.py").write_text('_EXPORTS = {"go": "uolrps.runtime.go"}\n')
    (pkg / "runtime" / "go.py").write_text("def go():\n    pass\n")
    (pkg / "core" / "low.py").write_text("import os\n\ndef f():\n    from uolrps.runtime import go\n")
    (pkg / "cli" / "top.py").write_text("from uolrps.core import low\n")
    bad = upward_imports(import_graph(tmp_path))
    assert bad == ["uolrps.core.low:4 imports uolrps.runtime.go (core < runtime)"]
    (pkg / "stray").mkdir()
    (pkg / "stray" / "__init__.py").write_text("")
    with pytest.raises(KeyError, match="sits in no layer"):
        [rank_of(m) for m in import_graph(tmp_path)]

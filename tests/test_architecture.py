"""The import graph of ``rlvr``'s top-level packages points one way (docs/architecture.md):
no cycles, ``train`` never imports ``scale``, ``config`` imports no feature package,
``verifiers`` imports no torch, ``ray`` is imported only inside ``scale``.

Read from the source with ``ast`` (every import statement, including those inside functions and
``TYPE_CHECKING`` blocks: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rlvr"


def imports() -> list[tuple[str, str, str]]:
    """(importing top-level package, imported module, file) for every import in the package;
    ``rlvr/x.py`` and ``rlvr/x/...`` are both the package ``x``."""
    out = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        here = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out += [(here, a.name, str(rel)) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "rlvr":  # from rlvr import scale
                    out += [(here, f"rlvr.{a.name}", str(rel)) for a in node.names]
                else:
                    out.append((here, node.module, str(rel)))
    return out


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for here, module, _ in imports():
        parts = module.split(".")
        if parts[0] == "rlvr" and len(parts) > 1 and parts[1] != here:
            graph[here].add(parts[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_top_level_packages() -> None:
    graph = package_graph()
    assert graph["train"] and graph["scale"], "the graph was not read"
    assert cycles(graph) == []


def test_train_never_imports_scale() -> None:
    offending = [
        (f, m) for here, m, f in imports() if here == "train" and m.startswith("rlvr.scale")
    ]
    assert offending == []


def test_config_imports_no_feature_package() -> None:
    assert package_graph().get("config", set()) == set()


def test_verifiers_import_no_torch() -> None:
    offending = [
        (f, m) for here, m, f in imports() if here == "verifiers" and m.split(".")[0] == "torch"
    ]
    assert offending == []


def test_ray_is_imported_only_inside_scale() -> None:
    offending = [(f, m) for here, m, f in imports() if m.split(".")[0] == "ray" and here != "scale"]
    assert offending == []

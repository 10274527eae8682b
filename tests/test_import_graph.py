"""The package's import graph (every import statement, at module level or inside a function) has no cycle, and the
nerfstudio fixes (``nerfstudio_methods.compat``) import nothing from ``dataparsers``: the input-error types they report
live in ``nerfstudio_methods.input_errors``, which dataparsers and methods import alike."""

from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGES = ("nerfstudio_methods", "dataparsers")


def modules() -> dict[str, tuple[ast.Module, bool]]:
    """Dotted name -> (parsed source, is a package ``__init__``) for every module of both packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (ast.parse(path.read_text()), is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a name imported from a module counts as that module, a submodule
    imported from a package as the submodule)."""
    found = modules()

    def owner(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, (tree, is_package) in found.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name].update(target for target in map(owner, targets) if target is not None and target != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_on_a_hand_made_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "nerfstudio_methods.compat.errors" in graph and "dataparsers.n3dv" in graph
    assert cycles(graph) == []


def test_compat_imports_nothing_from_dataparsers_and_loads_its_fixes_by_name() -> None:
    graph = import_graph()
    upward = {(name, target) for name, targets in graph.items() if name.startswith("nerfstudio_methods.compat")
              for target in targets if target.startswith("dataparsers")}  # fmt: skip
    assert upward == set()
    fixes = {name for name in graph if name.startswith("nerfstudio_methods.compat.")}
    assert len(fixes) >= 8 and graph["nerfstudio_methods.compat"].isdisjoint(fixes)
    assert "nerfstudio_methods.input_errors" in graph["dataparsers._common"]

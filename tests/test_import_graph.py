"""The package's modules import each other without circles (issue 20).

The graph is built from the source with ``ast``: every ``import`` and ``from ... import``
between ``autoopt_lab`` modules, those inside functions included (a lazy import is still a
dependency); imports under ``if TYPE_CHECKING:`` are left out (they never run). A package's
``__init__`` is not a node: it only gathers its modules' names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "autoopt_lab"

#: Circles known and owned elsewhere; each entry is the sorted list of the circle's modules.
KNOWN: list[list[str]] = [
    ["autoopt_lab.data.fingerprint", "autoopt_lab.data.loading"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST):
    """Import nodes outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _runtime_nodes(ast.Module(body=node.orelse, type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package's non-``__init__`` modules."""
    mods = _modules()
    packages = {name for name, p in mods.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        if name in packages:
            continue
        deps: set[str] = set()
        base = name.split(".")[:-1]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                mod = node.module or ""
                if node.level:
                    prefix = base[: len(base) - (node.level - 1)]
                    mod = ".".join([*prefix, *([mod] if mod else [])])
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod
                           for a in node.names]
            deps |= {t for t in targets if t in mods and t not in packages and t != name}
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_graph_sees_imports_of_every_kind():
    graph = import_graph()
    assert "autoopt_lab.experiments.config" in graph["autoopt_lab.experiments.run"]  # relative
    assert "autoopt_lab.health" in graph["autoopt_lab.experiments.result"]  # absolute
    assert "autoopt_lab.experiments.sweep" in graph["autoopt_lab.seeds"]  # inside a function
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    typed = ast.parse("if TYPE_CHECKING:\n    import a\nelse:\n    import b\n    x = 1\n")
    assert [n.names[0].name for n in _runtime_nodes(typed)] == ["b"]


@pytest.mark.parametrize("package", ["experiments", "streams", "workbench", "online", "arena", "optim"])
def test_no_import_circles(package):
    prefix = f"autoopt_lab.{package}."
    found = [c for c in circles(import_graph()) if any(m.startswith(prefix) for m in c)]
    assert found == [], f"import circles through {package}/: {found}"


def test_no_import_circles_anywhere_but_the_known_ones():
    assert [c for c in circles(import_graph()) if c not in KNOWN] == []

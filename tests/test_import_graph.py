"""No import circles in the code packages (issue 14: "no import circles anywhere").

The module import graph of `tslic.*` is built statically from the source: every `import` and
`from ... import` anywhere in a module (inside functions and `if TYPE_CHECKING:` blocks too,
since a circle hidden behind a local or type-only import is still a circle in the design),
relative imports resolved. `from package import name` is an edge to the submodule
`package.name` when there is one, else to the package itself. The implicit import of a
module's parent packages is not an edge (it would make every package a circle with its own
`__init__`). Any strongly connected component of more than one module, or a module importing
itself, fails the test, and the message names the circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tslic.protocol

ROOT = Path(tslic.protocol.__file__).resolve().parents[1]
PACKAGES = ("protocol", "runtime", "server", "client", "cli")


def _modules() -> dict[str, Path]:
    """Dotted name -> path of every module of the code packages."""
    found: dict[str, Path] = {}
    for folder in PACKAGES:
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(["tslic", folder, *parts])] = path
    return found


def _imported(module: str, path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name or None) for every import statement in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name


def import_graph() -> dict[str, set[str]]:
    """Module -> the tslic modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        for target, name in _imported(module, path):
            if name is not None and f"{target}.{name}" in modules:
                graph[module].add(f"{target}.{name}")
            elif target in modules:
                graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a circle in them (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:
        nonlocal counter
        # Iterative depth-first search: (node, iterator over its successors).
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(sorted(graph[root]))))
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


def _path_around(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete circle through the component's first module (for the message)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if succ not in parents:
                    parents[succ] = node
                    following.append(succ)
        frontier = following
    return component


def test_the_graph_sees_relative_local_and_type_only_imports() -> None:
    graph = import_graph()
    # `from . import schema`-style and `from .x import y` relative imports resolved:
    assert "tslic.protocol.framing" in graph["tslic.protocol.connection"]
    # a submodule named by `from package import submodule`:
    assert "tslic.protocol.messages.admin" in graph["tslic.client.admin.cli"]
    assert len(graph) > 100


def test_cycle_finder_names_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]


def test_no_import_circles() -> None:
    graph = import_graph()
    found = list(cycles(graph))
    described = [" -> ".join(_path_around(graph, c)) for c in found]
    assert described == [], "import circles:\n" + "\n".join(described)

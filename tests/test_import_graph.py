"""No import circles among the modules of pdqn/ and analysis/: every ``import`` and ``from ... import`` of one of
their modules, at module level or inside a function, goes one way only. A circle that Python tolerates today
(one side importing inside a function) still ties the two modules together; this keeps them apart.

Pure ``ast`` over whatever files are there (nothing is imported, so modules may come and go); imports under
``if TYPE_CHECKING:`` are left out (they never run). An import names its module when the name is one
(``from pdqn import checkpoint`` imports ``pdqn.checkpoint``), else the package it names; the packages above a
module, which Python runs first, are not counted (``pdqn/__init__.py`` re-exporting the library would otherwise
make every module a circle with it).
"""

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("pdqn", "analysis")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    return {module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def run_time_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` at any depth, except the bodies of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                yield from run_time_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        yield from run_time_imports(node)


def targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The known modules ``node`` imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package, one level up per extra dot
            package = importer.split(".") if is_package else importer.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    for name in names:
        while name and name not in known:  # `import pdqn.x.y` with no module y: its package
            name = name.rpartition(".")[0]
        if name:
            yield name


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, dict[str, int]]:
    """``{importer: {imported: line of the first such import}}`` over the modules of ``packages``."""
    found = modules(root, packages)
    known = set(found)
    graph: dict[str, dict[str, int]] = {name: {} for name in found}
    for name, path in found.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in run_time_imports(tree):
            for target in targets(node, name, path.name == "__init__.py", known):
                if target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return [circle_through(graph, set(group)) for group in groups]


def circle_through(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest circle from the group's first module back to it, within the group (breadth first)."""
    start = min(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child in group and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not a circle")


def describe(graph: dict[str, dict[str, int]], circle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(circle, circle[1:])) + f" -> {circle[-1]}"


def test_pdqn_and_analysis_have_no_import_circles():
    graph = import_graph(REPO)
    assert len(graph) > 10 and any(graph.values())  # the walk found the modules and their imports
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(describe(graph, circle) for circle in found)


def test_the_checker_finds_a_circle_closed_inside_a_function(tmp_path):
    files = {
        "pkg/__init__.py": "from pkg.a import f\n",
        "pkg/a.py": "from pkg import b\n\ndef f():\n    return b\n",
        "pkg/b.py": "def g():\n    from pkg.c import h\n    return h\n",
        "pkg/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import f\n\ndef h():\n    from . import a\n",
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": {"pkg.a": 1}, "pkg.a": {"pkg.b": 1}, "pkg.b": {"pkg.c": 2}, "pkg.c": {"pkg.a": 6}, "pkg.d": {}}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]

"""The library stays readable: short functions, calls with few positional arguments, one place that exits."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pdqn"
MAX_FUNCTION_LINES = 60
MAX_POSITIONAL_ARGUMENTS = 5


def modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(PACKAGE.rglob("*.py"))]


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{where(path, node)} {node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_no_call_passes_more_than_5_positional_arguments():
    crowded = [
        f"{where(path, node)} {ast.unparse(node.func)}(... {len(node.args)} positional)"
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and len(node.args) > MAX_POSITIONAL_ARGUMENTS
    ]
    assert not crowded, "calls with more than 5 positional arguments:\n" + "\n".join(crowded)


def test_only_the_entry_points_exit():
    """Library code raises; ``pdqn/experiments/*`` and the command-line helper turn errors into exit codes."""
    exits = []
    for path, tree in modules():
        if path.parent.name == "experiments" or path.name == "cli.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and ast.unparse(node.exc.func) == "SystemExit":
                exits.append(where(path, node))
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit", "fail", "os._exit"):
                exits.append(where(path, node))
    assert not exits, "library code that exits instead of raising: " + ", ".join(exits)

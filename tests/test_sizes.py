"""Size limits in both houses (the runner, the engine) and the reporter: no function over 50
lines or over 6 parameters (self and cls aside), no class over 200 lines. A function that does
several jobs is several functions; many parameters that travel together are a record. Nothing
stands over a limit, so there is no list of exceptions to keep."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("hyperparameter_system", "codes", "hpsys_reporter")
FUNCTION_LINES, PARAMETERS, CLASS_LINES = 50, 6, 200


def _definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """Every function and class of `tree` by its qualified name (Class.method)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield prefix + node.name, node
            yield from _definitions(node, f"{prefix}{node.name}.")
        else:
            yield from _definitions(node, prefix)


def over_limits(node: ast.AST) -> list[str]:
    """What of the limits `node` (a function or a class) stands over."""
    lines = node.end_lineno - node.lineno + 1
    if isinstance(node, ast.ClassDef):
        return [f"{lines} lines"] if lines > CLASS_LINES else []
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    count = len(names) - (names[:1] in (["self"], ["cls"]))
    return [
        *([f"{lines} lines"] if lines > FUNCTION_LINES else []),
        *([f"{count} parameters"] if count > PARAMETERS else []),
    ]


def offenders() -> dict[str, list[str]]:
    """`path::qualname` -> the limits it stands over, for every module of the folders."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for name, node in _definitions(tree):
                if over := over_limits(node):
                    found[f"{path.relative_to(ROOT).as_posix()}::{name}"] = over
    return found


def test_no_function_or_class_over_the_size_limits() -> None:
    assert offenders() == {}, "split it, or carry its parameters in a record"


def test_the_limits_are_read_as_written() -> None:
    tree = ast.parse("class C:\n    def m(self, a, b, c, d, e, f, g):\n        pass\n")
    assert [name for name, _ in _definitions(tree)] == ["C", "C.m"]
    assert over_limits(next(n for name, n in _definitions(tree) if name == "C.m")) == [
        "7 parameters"
    ]

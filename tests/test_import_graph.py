"""No import circle at run time in either house (the runner, the engine) or the reporter
between them: every import a module can run, lazy ones inside functions included, is read from
the source; imports under `if TYPE_CHECKING:` run never and are left out."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (folder, the module name of its files' root): codes/ runs with codes/ on sys.path.
HOUSES = ((ROOT, "hyperparameter_system"), (ROOT, "hpsys_reporter"), (ROOT / "codes", "trainer"))


def _modules() -> dict[str, Path]:
    """Every module of the houses by its import name; codes/'s scripts by their file name."""
    found = {p.stem: p for p in (ROOT / "codes").glob("*.py")}
    for base, package in HOUSES:
        for path in (base / package).rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _run_time_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `tree`, skipping the bodies of `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        test = node.test if isinstance(node, ast.If) else None
        if test is not None and "TYPE_CHECKING" in ast.unparse(test):
            yield from (n for child in node.orelse for n in [child, *_run_time_nodes(child)])
            continue
        yield node
        yield from _run_time_nodes(node)


def run_time_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` (at `path`) may import while it runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _run_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) + 1 - node.level]
            module = ".".join([*(base if node.level else []), *filter(None, [node.module])])
            targets.update(
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            )
    return {t for t in targets if t in known and t != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_at_run_time_in_either_house() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: run_time_imports(path, name, known) for name, path in modules.items()}
    assert {"train", "trainer.registry", "hyperparameter_system.run.executor"} <= known
    assert circles(graph) == []


def test_the_reader_counts_lazy_imports_and_skips_type_only_ones(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from pkg import b\n")
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    known = {"pkg.a", "pkg.b"}
    graph = {"pkg.a": run_time_imports(a, "pkg.a", known),
             "pkg.b": run_time_imports(b, "pkg.b", known)}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": set()}
    assert circles(graph) == []
    b.write_text("import pkg.a\n")
    graph["pkg.b"] = run_time_imports(b, "pkg.b", known)
    assert circles(graph) == [["pkg.a", "pkg.b"]]

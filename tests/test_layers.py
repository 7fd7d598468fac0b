"""The border import-linter cannot see: codes/'s top-level scripts are not a package, so their
imports are read here (codes/trainer is the contract's `trainer` root in `make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CODES = Path(__file__).resolve().parents[1] / "codes"


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("script", sorted(CODES.glob("*.py")), ids=lambda p: p.name)
def test_training_scripts_never_import_the_runner(script: Path) -> None:
    assert "hyperparameter_system" not in _imported(script)


def test_the_reader_sees_imports_anywhere_in_a_file(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from hyperparameter_system.core import errors\n")
    assert "hyperparameter_system" in _imported(probe)

"""Shared fixtures for the runner tests: the repository root, no network, a master config over
the fake trainer whose ledger, runs and temp configs all stay inside tmp_path, and the CLI run
as a subprocess (as a user runs it)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hyperparameter_system import plugins

ROOT = Path(__file__).resolve().parents[1]
FAKE_PY = "python tests/fakes/fake_train.py"
FAKE_SH = "tests/fakes/fake_train.sh"
BASE = ROOT / "tests" / "fakes" / "base.yaml"
RUNNER = (sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"))

MasterConfig = Callable[..., Path]
Cli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network (W&B off, no hub downloads), no contract variables leaking in from outside,
    and plugins loaded afresh per test (tests install entry points on the fly)."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in list(os.environ):
        if name.startswith(("HPSYS_", "WANDB_")) and name not in ("WANDB_MODE", "WANDB_SILENT"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("EXPERIMENT_CONFIG", raising=False)
    monkeypatch.setenv("PYTHON", sys.executable)  # the .sh fakes run this interpreter
    plugins.reset()


@pytest.fixture
def repo_root() -> Path:
    return ROOT


def master_doc(tmp: Path) -> dict[str, Any]:
    """Two fake models (a python command and a .sh script), two built-in categories."""
    return {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "temp_config_dir": str(tmp / "temp_configs"), "ledger": str(tmp / "ledger.db"),
                   "runs_dir": str(tmp / "runs"), "reports_dir": str(tmp / "reports"),
                   "wandb_mode": "disabled"},
        "models": [{"name": "fake-net.v1", "script": FAKE_PY},
                   {"name": "org/fake_sh", "script": FAKE_SH}],
        "experiment_categories": {
            "optimizer": {"options": [{"name": "SGD", "lr": 0.01, "momentum": 0.9,
                                       "weight_decay": 0.0001}]},
            "early_stopping": {"options": [{"patience": 5}, {"patience": 7}]},
        },
        "execution": {"max_parallel": 2, "experiment_timeout": 60, "retry_failed": False,
                      "gpus": "none"},
    }


def write_master(tmp: Path, name: str = "master.yaml", text: str | None = None,
                 **sections: Any) -> Path:
    """Write a master YAML into `tmp` and return its path. `system` and `execution` mappings
    are merged into the defaults; any other section replaces its default; `text=` writes that
    YAML verbatim instead."""
    doc = master_doc(tmp)
    for key, value in sections.items():
        if key in ("system", "execution") and isinstance(value, dict):
            doc[key].update(value)
        else:
            doc[key] = value
    path = tmp / name
    path.write_text(text if text is not None else yaml.safe_dump(doc, sort_keys=False),
                    encoding="utf-8")
    return path


@pytest.fixture
def master_config(tmp_path: Path) -> MasterConfig:
    """`master_config(name=..., text=..., **sections)`: write_master into this test's tmp_path."""
    return functools.partial(write_master, tmp_path)


@pytest.fixture(scope="session")
def master_writer() -> Callable[..., Path]:
    """write_master itself, for module-scoped fixtures that pick their own folder."""
    return write_master


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's data/ when prepared, else the embedded dataset written once here."""
    data = ROOT / "data"
    if (data / "train.csv").is_file():
        return data
    out = tmp_path_factory.mktemp("digits") / "data"
    subprocess.run([sys.executable, "codes/prepare_data.py", "--out", str(out)], cwd=ROOT,
                   check=True, timeout=300)
    return out


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """`cli(*args, env={...})`: the runner CLI in a subprocess from the repository root."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
            timeout: float = 120) -> subprocess.CompletedProcess:
        full = {**os.environ, "COLUMNS": "250", "PYTHON": sys.executable, **(env or {})}
        return subprocess.run([*RUNNER, *args], cwd=cwd, env=full, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    return run


def records(runs_dir: Path) -> dict[str, dict[str, Any]]:
    """The fake trainer's record.json of every run under runs_dir, keyed
    `<W&B project>/<run name>` (the run folder without its experiment id)."""
    return {f"{p.parent.parent.name}/{p.parent.name.rsplit('_', 1)[0]}": json.loads(p.read_text())
            for p in sorted(runs_dir.glob("*/*/record.json"))}


@pytest.fixture(scope="session")
def fake_records() -> Callable[[Path], dict[str, dict[str, Any]]]:
    return records

"""Fixtures for the training-engine tests: codes/ on sys.path, no network, W&B off, and a
config shrunk to a tiny CPU run on the embedded digits data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODES = ROOT / "codes"
if str(CODES) not in sys.path:
    sys.path.insert(0, str(CODES))

from trainer.config import load_yaml  # noqa: E402

TINY = {
    "model_name": "test_resnet",
    "image_size": 32,
    "batch_size": 32,
    "epochs": 1,
    "limit_samples": 160,
    "cpu_threads": 2,
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No hub downloads and no W&B unless a test turns it on."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in (
        "WANDB_PROJECT",
        "WANDB_NAME",
        "WANDB_RUN_ID",
        "WANDB_RUN_GROUP",
        "WANDB_TAGS",
        "HPSYS_RUN_DIR",
        "HPSYS_EXPERIMENT_ID",
        "EXPERIMENT_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded dataset, written once per session by codes/prepare_data.py."""
    out = tmp_path_factory.mktemp("digits") / "data"
    sys.path.insert(0, str(CODES))
    from prepare_data import prepare

    prepare(out)
    return out


@pytest.fixture
def tiny_cfg(digits_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """The shipped base config shrunk to a one-epoch CPU run of a tiny timm model."""
    cfg = load_yaml(CODES / "config_v2.yaml")
    cfg.update(TINY, data_dir=str(digits_dir), output_dir=str(tmp_path / "outputs"))
    cfg["wandb"]["mode"] = "disabled"
    return cfg


@pytest.fixture
def write_cfg(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a config mapping to a YAML file and return its path."""
    import yaml

    def _write(cfg: dict[str, Any], name: str = "cfg.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return _write


@pytest.fixture
def run_script() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a codes/ script (or a shell script) from the repository root, as the runner does."""

    def _run(
        args: list[str], env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        if args[0].endswith(".sh"):
            cmd = [str(ROOT / args[0]), *args[1:]]
        else:
            cmd = [sys.executable, *args]
        return subprocess.run(
            cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
        )

    return _run


@pytest.fixture(scope="session")
def codes_dir() -> Path:
    return CODES


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_values() -> dict[str, Any]:
    """The keys that shrink a config to a tiny CPU run."""
    return dict(TINY)

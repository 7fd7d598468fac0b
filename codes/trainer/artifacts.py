"""The run folder: resolved config, log tee, per-epoch metrics, figures, checkpoints, result.

Everything the runner reads is written so it can never see half a file: metrics.jsonl lines are
flushed one by one and result.json is replaced atomically (the writers are hpsys_reporter's,
the contract's training side that any script may use).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from hpsys_reporter.files import append_line, write_atomic, write_atomic_with

__all__ = ["RunDir", "default_run_name", "run_dir_for", "tee_output", "write_atomic",
           "write_atomic_with"]


def run_dir_for(cfg: dict[str, Any], run_name: str) -> Path:
    """$HPSYS_RUN_DIR when the runner set it, else output_dir/<run name>/."""
    env = os.environ.get("HPSYS_RUN_DIR")
    if env:
        return Path(env)
    return Path(cfg.get("output_dir") or "outputs") / run_name


def default_run_name(cfg: dict[str, Any]) -> str:
    """WANDB_NAME, else the config's run_name, else <model>_<timestamp>."""
    name = os.environ.get("WANDB_NAME") or cfg.get("run_name")
    if name:
        return str(name)
    model = cfg.get("model_name")
    model = model.get("_target_", "model") if isinstance(model, dict) else str(model)
    return f"{model.replace('/', '_')}_{time.strftime('%Y%m%d-%H%M%S')}"


class _Tee:
    """Write to the original stream and to the log file."""

    def __init__(self, stream: TextIO, log: TextIO) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _same_file(stream: TextIO, path: Path) -> bool:
    try:
        return path.exists() and os.path.samestat(os.fstat(stream.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def tee_output(log_path: Path) -> Iterator[None]:
    """Copy stdout and stderr into train.log, unless they already go to that very file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if _same_file(sys.stdout, log_path):
        yield
        return
    saved = sys.stdout, sys.stderr
    with log_path.open("a", buffering=1, encoding="utf-8") as log:
        sys.stdout = _Tee(saved[0], log)  # type: ignore[assignment]
        sys.stderr = _Tee(saved[1], log)  # type: ignore[assignment]
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


class RunDir:
    """Paths and writers of one experiment's output folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.figures = path / "figures"
        self.checkpoints = path / "checkpoints"
        for folder in (path, self.figures, self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        self.metrics_path = path / "metrics.jsonl"
        self.metrics_path.write_text("")  # a rerun into the same folder starts clean
        self.result_path = path / "result.json"
        self.result_path.unlink(missing_ok=True)

    def write_config(self, cfg: dict[str, Any], overrides: dict[str, Any]) -> None:
        write_atomic(self.path / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        write_atomic(self.path / "overrides.yaml", yaml.safe_dump(overrides, sort_keys=False))

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Append one JSON line and flush it at once, so the runner can follow progress."""
        append_line(self.metrics_path, record)

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    def write_result(self, result: dict[str, Any]) -> Path:
        write_atomic(self.result_path, json.dumps(result, indent=2, default=str) + "\n")
        return self.result_path

    def artifact_paths(self) -> dict[str, str]:
        """Where each output lies (absolute), for result.json."""
        names = {
            "config": "config.yaml",
            "overrides": "overrides.yaml",
            "log": "train.log",
            "metrics": "metrics.jsonl",
            "loss_curve": "figures/loss_curve.png",
            "f1_curve": "figures/f1_curve.png",
            "confusion_matrix": "figures/confusion_matrix.png",
            "best_checkpoint": "checkpoints/best_model.pt",
            "last_checkpoint": "checkpoints/last.pt",
        }
        return {key: str((self.path / rel).resolve()) for key, rel in names.items()}

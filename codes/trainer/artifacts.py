"""The run folder: resolved config, log tee, per-epoch metrics, figures, checkpoints, result.

Everything the runner reads is written so it can never see half a file: metrics.jsonl lines are
flushed one by one and result.json is replaced atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import yaml


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


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and os.replace, so readers never see half."""
    write_atomic_with(path, lambda fh: fh.write(text.encode("utf-8")))


def write_atomic_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write` fills a temp file in the same folder, synced, then os.replace: a reader (or a
    kill mid-write) sees the old file whole or the new one, never half (text or a checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

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

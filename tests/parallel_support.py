"""Shared by the parallel and Ray tests: a master config over the fake trainer, and the
start/end/CUDA_VISIBLE_DEVICES events the fake trainer appends to $FAKE_EVENTS."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def fake_settings(tmp: Path, options: Sequence[dict[str, Any]],
                  execution: dict[str, Any]) -> Settings:
    """Settings for one fake model and a YAML-only category `fake` with these options."""
    master = {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "ledger": str(tmp / "l.db"), "runs_dir": str(tmp / "runs"),
                   "temp_config_dir": str(tmp / "tc"), "wandb_mode": "disabled",
                   "baseline": False},
        "models": [{"name": "m1", "script": "python tests/fakes/fake_train.py"}],
        "experiment_categories": {"fake": {"options": [dict(o) for o in options]}},
        "execution": execution,
    }
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(master, sort_keys=False), encoding="utf-8")
    return api.load(path)


def events(path: Path) -> list[dict[str, Any]]:
    """The fake trainer's records: id, start, end, pid, cuda."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def max_overlap(records: Sequence[dict[str, Any]]) -> int:
    """The most experiments running at the same instant."""
    edges = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best

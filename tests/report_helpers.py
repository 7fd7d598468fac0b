"""Shared by the report tests: a small master config over the fake trainer, and a ledger filled
with known metrics without running anything."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hyperparameter_system.config.settings import Settings, load_settings
from hyperparameter_system.matrix.experiments import Experiment, build_matrix
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[1]


def write_master(tmp: Path, categories: Mapping[str, Any], models: tuple[str, ...] = ("m1",),
                 repeats: int = 1, wandb_mode: str = "disabled", **system: Any) -> Path:
    """A master config whose models run tests/fakes/fake_train.py; outputs stay under tmp."""
    doc = {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "temp_config_dir": str(tmp / "temp"), "ledger": str(tmp / "ledger.db"),
                   "runs_dir": str(tmp / "runs"), "reports_dir": str(tmp / "reports"),
                   "wandb_mode": wandb_mode, **system},
        "models": [{"name": m, "script": "python tests/fakes/fake_train.py"} for m in models],
        "experiment_categories": {name: {"options": opts} for name, opts in categories.items()},
        "execution": {"repeats": repeats, "max_parallel": 2},
    }
    path = tmp / "experiment_config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def fill_ledger(settings: Settings, outcome: Callable[[Experiment], Any]) -> list[Experiment]:
    """Record every experiment of the matrix as `outcome(e)` says: a float (done with that
    metric), a string (failed with that reason) or None (left pending)."""
    experiments = build_matrix(settings)
    ledger = Ledger(settings.system.ledger)
    ledger.sync(experiments)
    now = time.time()
    for e in experiments:
        value = outcome(e)
        if value is None:
            continue
        run_dir = settings.system.runs_dir / e.id
        run_dir.mkdir(parents=True, exist_ok=True)
        log = run_dir / "train.log"
        if isinstance(value, str):
            log.write_text(f"boom\n{value}\n")
            ledger.finish(e.id, Outcome(e.id, "failed", now, now + 1, exit_code=1, error=value,
                                        run_dir=str(run_dir), log_path=str(log)), None)
            continue
        with (run_dir / "metrics.jsonl").open("w") as fh:
            for epoch in (1, 2):
                fh.write(json.dumps({"epoch": epoch, "val_f1": value * epoch / 2}) + "\n")
        result = {"metrics": {"best_val_f1": value, "epochs_run": 2},
                  "wandb": {"project": e.project, "run_id": e.id, "mode": "offline",
                            "dir": str(run_dir / "wandb" / "offline-run-x")}}
        ledger.finish(e.id, Outcome(e.id, "done", now, now + 10, exit_code=0, result=result,
                                    run_dir=str(run_dir), log_path=str(log)), value)
    return experiments


def settings_for(tmp: Path, categories: Mapping[str, Any], **kw: Any) -> Settings:
    return load_settings(write_master(tmp, categories, **kw))

"""Two-stage training (the original V2's `two_stage: true` with `--config2`): stage 1 trains as
its config says, into <run>/stage1/ (its own metrics.jsonl, checkpoints, figures and
result.json); stage 2 trains with the second config, starting every fold from stage 1's best
weights (checkpoints/best_model.pt), into the run folder itself, so the run's best_model.pt is
the final model. result.json holds stage 2's metrics and `stages`: both stages' metrics,
effective values and unused keys. W&B logs stage 2 only (stage 1 keeps its files)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.artifacts import RunDir
from trainer.errors import ConfigError
from trainer.key_reads import unused
from trainer.tracking import Tracker


@dataclass(frozen=True)
class StageStart:
    """How one stage of a two-stage run starts where an ordinary run would not: stage 1 with
    a tracker that keeps W&B off, stage 2 from stage 1's best weights (`init_state`)."""

    tracker: Tracker | None = None
    init_state: dict[str, Any] | None = None


class QuietTracker(Tracker):
    """A Tracker that never starts W&B (stage 1 of two)."""

    def __init__(self, run_name: str) -> None:  # noqa: D107 - no W&B, no config reads
        self.mode, self.project, self.name = "disabled", None, run_name
        self.run_id, self.tags, self.dir, self.run, self.enabled = None, [], None, None, False


def _stage_entry(stage: int, result: dict[str, Any], folder: Path) -> dict[str, Any]:
    keep = ("status", "metrics", "effective", "unused_keys", "duration_s")
    return {"stage": stage, "run_dir": str(folder.resolve()), **{k: result.get(k) for k in keep}}


def train_two_stages(
    cfg1: dict[str, Any],
    cfg2: dict[str, Any],
    run_dir: RunDir,
    run_name: str,
    started: float,
    train: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """Stage 1, then stage 2 from stage 1's best weights; the combined result.json. `train`
    is run.train, handed in: each stage is one ordinary run (no import back up)."""
    names = (cfg1.get("model_name"), cfg2.get("model_name"))
    if names[0] != names[1]:
        raise ConfigError(
            f"model_name: stage 2 must train the same model as stage 1, got {names[1]!r} "
            f"after {names[0]!r}"
        )
    stage1_dir = RunDir(run_dir.path / "stage1")
    print("stage 1 of 2", flush=True)
    quiet = StageStart(tracker=QuietTracker(run_name))
    first = train(cfg1, stage1_dir, f"{run_name}_stage1", started, stage=quiet)
    if first.get("status") != "completed":  # pruned or stopped: no second stage
        first["stages"] = [_stage_entry(1, first, stage1_dir.path)]
        first["effective"]["stages"] = 1
        run_dir.write_result(first)
        return first
    best = torch.load(stage1_dir.checkpoint("best_model.pt"), map_location="cpu",
                      weights_only=False)
    print(f"stage 2 of 2: from stage 1's best weights (epoch {best['epoch']})", flush=True)
    from_best = StageStart(init_state=best["model_state"])
    second = train(cfg2, run_dir, run_name, started, stage=from_best)
    second["stages"] = [
        _stage_entry(1, first, stage1_dir.path),
        _stage_entry(2, second, run_dir.path),
    ]
    second["effective"]["stages"] = 2
    second["unused_keys"] = sorted(set(unused(cfg1)) | set(unused(cfg2)))
    run_dir.write_result(second)
    return second

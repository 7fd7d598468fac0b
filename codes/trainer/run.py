"""One experiment end to end: data, (k-fold) training, artifacts, W&B and result.json."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from trainer.artifacts import RunDir
from trainer.callbacks import (
    Callback,
    Checkpoints,
    ConsoleLog,
    EarlyStopping,
    MetricsFile,
    Resumable,
    StopRequest,
    TrackerLog,
)
from trainer.data import ImageSet, load_train_set, split_indices
from trainer.device import AmpPlan, amp_plan, configure_threads, pick_device
from trainer.engine import fit
from trainer.figures import plot_confusion, plot_curves
from trainer.key_reads import unused
from trainer.parts.assemble import build_parts, describe_parts, validate_names
from trainer.results import effective, fold_metrics, kfold_summary
from trainer.resume import resume_checkpoint
from trainer.stages import StageStart, train_two_stages
from trainer.tracking import Tracker


def seed_everything(seed: int) -> None:
    """Same seed, same run: Python, NumPy and torch generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """What every fold of one run shares."""

    cfg: dict[str, Any]
    run_dir: RunDir
    data: ImageSet
    splits: list[tuple[np.ndarray, np.ndarray]]
    device: torch.device
    amp: AmpPlan
    tracker: Tracker
    started: float
    resume: dict[str, Any] | None = None  # the last.pt of $HPSYS_RESUME, when it can go on
    init_state: dict[str, Any] | None = None  # two-stage: stage 2 starts from these weights

    @property
    def monitor(self) -> str:
        return self.cfg.get("monitor", "val_f1")


def train(
    cfg: dict[str, Any],
    run_dir: RunDir,
    run_name: str,
    started: float,
    cfg2: dict[str, Any] | None = None,
    stage: StageStart | None = None,
) -> dict[str, Any]:
    """Train as configured and return the result.json payload (already written); with
    `cfg2`, a second stage from the first's best weights (trainer/stages.py), each stage
    started as its `stage` says (its tracker, its first weights)."""
    if cfg2 is not None:
        return train_two_stages(cfg, cfg2, run_dir, run_name, started, train)
    validate_names(cfg)
    device = pick_device(cfg.get("device", "auto"))
    threads = configure_threads(cfg.get("cpu_threads"))
    amp = amp_plan(bool(cfg.get("mixed_precision", False)), device)
    seed_everything(int(cfg.get("random_seed", 42)))
    data = load_train_set(cfg)
    splits = split_indices(data.labels, cfg)
    print(
        f"data: {len(data.ids)} images, {data.num_classes} classes, "
        f"{len(splits)} split(s); device {device} ({threads} CPU threads); {amp.note}",
        flush=True,
    )
    point = resume_checkpoint(cfg, len(splits))
    ckpt = point[0] if point else None
    resume_id = ckpt["resume"].get("wandb_run_id") if ckpt else None
    stage = stage or StageStart()
    tracker = stage.tracker or Tracker(cfg, run_name, run_dir.path, resume_id=resume_id)
    exit_code = 1  # a run that raises shows as failed in W&B, not as finished
    try:
        setup = Setup(
            cfg, run_dir, data, splits, device, amp, tracker, started, ckpt, stage.init_state
        )
        result = _train_splits(setup)
        exit_code = 0
        return result
    finally:
        tracker.finish(exit_code)


def callbacks_for(setup: Setup) -> list[Callback]:
    """The per-epoch work of a run, in the order it happens (one instance for all folds)."""
    return [
        Resumable(setup.run_dir, setup.cfg, setup.data, setup.tracker, setup.resume),
        StopRequest(setup.run_dir.path / "stop_request.json", setup.started),
        MetricsFile(setup.run_dir),
        TrackerLog(setup.tracker),
        ConsoleLog(),
        EarlyStopping(setup.cfg.get("patience")),
        Checkpoints(setup.run_dir, setup.cfg, setup.data),
    ]


def _train_splits(setup: Setup) -> dict[str, Any]:
    """Fit each split with the same callbacks, then summarise, plot and write result.json."""
    cfg, data = setup.cfg, setup.data
    kfold = len(setup.splits) > 1
    callbacks = callbacks_for(setup)
    early = next(cb for cb in callbacks if isinstance(cb, EarlyStopping))
    history: list[dict[str, Any]] = []
    folds: list[dict[str, Any]] = []
    y_true: list[int] = []
    y_pred: list[int] = []
    status = "completed"
    summary: dict[str, Any] = {}
    eff: dict[str, Any] = {}
    for k, split in enumerate(setup.splits):
        seed_everything(int(cfg.get("random_seed", 42)) + k)
        parts = build_parts(cfg, data, split, setup.device, setup.amp)
        if setup.init_state is not None:
            parts.model.load_state_dict(setup.init_state)
        if k == 0:
            print(describe_parts(parts), flush=True)
        fold = k if kfold else None
        result = fit(parts, callbacks, int(cfg["epochs"]), setup.monitor, fold)
        metrics = fold_metrics(result)
        history.extend(result.history)
        assert result.best is not None
        y_true.extend(result.best.y_true.tolist())
        y_pred.extend(result.best.y_pred.tolist())
        if kfold:
            sizes = {"train_size": len(split[0]), "val_size": len(split[1])}
            folds.append({"fold": k, **sizes, **metrics})
        else:
            summary = metrics
        eff = effective(cfg, parts, result, early.patience, setup.monitor)
        eff.update(folds=len(setup.splits), stages=1)  # fold checkpoints predict.py averages
        if result.stop_status:  # a callback ended the run (not just this fold)
            status = result.stop_status
            break
    if kfold:
        summary = kfold_summary(folds)
    summary["monitor"] = setup.monitor
    figures = _figures(setup, history, y_true, y_pred)
    setup.tracker.log_final(summary, y_true, y_pred, data.class_names, figures)
    resumable = next(cb for cb in callbacks if isinstance(cb, Resumable))
    return _write_result(setup, status, summary, eff, resumable.resumed_from_epoch)


def _figures(
    setup: Setup, history: list[dict[str, Any]], y_true: list[int], y_pred: list[int]
) -> dict[str, Any]:
    """Loss and F1 curves and the confusion matrix of the best weights, as PNGs."""
    folder, data = setup.run_dir.figures, setup.data
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(data.num_classes)))
    return {
        "loss_curve": plot_curves(
            history, ["train_loss", "val_loss"], "loss", folder / "loss_curve.png"
        ),
        "f1_curve": plot_curves(history, ["val_f1"], "macro F1", folder / "f1_curve.png"),
        "confusion_matrix": plot_confusion(
            matrix, data.class_names, folder / "confusion_matrix.png"
        ),
    }


def _write_result(
    setup: Setup,
    status: str,
    summary: dict[str, Any],
    eff: dict[str, Any],
    resumed_from_epoch: int | None = None,
) -> dict[str, Any]:
    """result.json, written atomically once W&B has finished (its final run id is in it)."""
    import timm

    tracker, run_dir = setup.tracker, setup.run_dir
    result_json = {
        "status": status,
        "experiment_id": os.environ.get("HPSYS_EXPERIMENT_ID"),
        "run_name": tracker.name,
        "run_dir": str(run_dir.path.resolve()),
        "metrics": summary,
        "duration_s": round(time.time() - setup.started, 3),
        "artifacts": run_dir.artifact_paths(),
        "wandb": tracker.describe(),
        "effective": eff,
        "versions": {"torch": torch.__version__, "timm": timm.__version__},
    }
    if resumed_from_epoch is not None:
        result_json["resumed_from_epoch"] = resumed_from_epoch
    result_json["unused_keys"] = unused(setup.cfg)  # config keys nothing read (trainer/key_reads)
    if status == "pruned":
        tracker.add_tag("pruned")
    tracker.finish()
    result_json["wandb"] = tracker.describe()
    run_dir.write_result(result_json)
    return result_json

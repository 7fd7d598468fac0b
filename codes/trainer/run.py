"""One experiment end to end: data, (k-fold) training, artifacts, W&B and result.json."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from torch import nn

from trainer import builders
from trainer.artifacts import RunDir
from trainer.data import ImageSet, TensorLoader, load_train_set, make_loaders, split_indices
from trainer.device import AmpPlan, amp_plan, configure_threads, pick_device
from trainer.engine import EarlyStopping, FitResult, fit
from trainer.figures import plot_confusion, plot_curves
from trainer.tracking import Tracker

METRIC_KEYS = (
    "best_val_f1",
    "best_val_acc",
    "best_val_loss",
    "best_epoch",
    "epochs_run",
    "final_val_f1",
    "final_val_acc",
    "final_val_loss",
)


def seed_everything(seed: int) -> None:
    """Same seed, same run: Python, NumPy and torch generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def effective_model_name(model: nn.Module, asked: Any) -> str:
    """The architecture (and weight tag, when one was asked for) of the built model."""
    pcfg = getattr(model, "pretrained_cfg", None) or {}
    arch = pcfg.get("architecture")
    if not arch:
        return f"{type(model).__module__}.{type(model).__qualname__}"
    tag = pcfg.get("tag")
    return f"{arch}.{tag}" if tag and isinstance(asked, str) and "." in asked else arch


def build_effective(
    cfg: dict[str, Any],
    model: nn.Module,
    optimizer_info: dict[str, Any],
    schedule: builders.Schedule,
    criterion: nn.Module,
    loader: TensorLoader,
    fit_result: FitResult,
    amp: AmpPlan,
    stopper: EarlyStopping,
    device: torch.device,
    threads: int,
    epochs: int,
) -> dict[str, Any]:
    """Hyperparameters read back from the objects that trained, not from the config."""
    shape = fit_result.fed_shape or ()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "model_name": effective_model_name(model, cfg["model_name"]),
        "model_class": type(model).__name__,
        "pretrained": bool(getattr(model, "loaded_pretrained", False)),
        "num_classes": getattr(model, "num_classes", None),
        "trainable_params": trainable,
        "total_params": sum(p.numel() for p in model.parameters()),
        **optimizer_info,
        "scheduler": type(schedule.main).__name__ if schedule.main is not None else None,
        "scheduler_params": schedule.params,
        "scheduler_interval": schedule.interval if schedule.main is not None else None,
        "warmup_epochs": schedule.warmup_epochs,
        **builders.effective_criterion(criterion),
        "image_size": int(shape[-2]) if shape else None,
        "input_shape": list(shape[1:]),
        "batch_size": loader.batch_size,
        "mixed_precision": amp.enabled,
        "amp_dtype": amp.dtype_name,
        "grad_scaler": amp.scaler is not None,
        "amp_note": amp.note,
        "patience": stopper.patience,
        "monitor": stopper.monitor,
        "epochs": epochs,
        "device": str(device),
        "cpu_threads": threads,
    }


def _fold_metrics(fr: FitResult) -> dict[str, Any]:
    best, last = fr.best, fr.last
    assert best is not None and last is not None
    return {
        "best_val_f1": best.f1,
        "best_val_acc": best.acc,
        "best_val_loss": best.loss,
        "best_epoch": fr.best_epoch,
        "epochs_run": len(fr.history),
        "final_val_f1": last.f1,
        "final_val_acc": last.acc,
        "final_val_loss": last.loss,
        "stopped_early": fr.stopped_early,
    }


def _checkpoint(
    state: dict[str, torch.Tensor],
    cfg: dict[str, Any],
    data: ImageSet,
    epoch: int,
    metrics: dict[str, Any],
    fold: int | None,
) -> dict[str, Any]:
    """What evaluate.py and predict.py need to rebuild the model without the run folder."""
    return {
        "model_state": state,
        "config": cfg,
        "model_name": cfg["model_name"],
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "image_size": cfg["image_size"],
        "norm_mean": cfg.get("norm_mean"),
        "norm_std": cfg.get("norm_std"),
        "epoch": epoch,
        "fold": fold,
        "metrics": metrics,
    }


def train(cfg: dict[str, Any], run_dir: RunDir, run_name: str, started: float) -> dict[str, Any]:
    """Train as configured and return the result.json payload (already written)."""
    builders.validate_names(cfg)
    device = pick_device(cfg.get("device", "auto"))
    threads = configure_threads(cfg.get("cpu_threads"))
    amp = amp_plan(bool(cfg.get("mixed_precision", False)), device)
    seed = int(cfg.get("random_seed", 42))
    seed_everything(seed)
    data = load_train_set(cfg)
    splits = split_indices(data.labels, cfg)
    epochs = int(cfg["epochs"])
    print(
        f"data: {len(data.ids)} images, {data.num_classes} classes, "
        f"{len(splits)} split(s); device {device} ({threads} CPU threads); {amp.note}",
        flush=True,
    )
    tracker = Tracker(cfg, run_name, run_dir.path)
    exit_code = 1  # a run that raises shows as failed in W&B, not as finished
    try:
        result = _train_splits(
            cfg, run_dir, data, splits, device, threads, amp, epochs, tracker, started
        )
        exit_code = 0
        return result
    finally:
        tracker.finish(exit_code)


def _train_splits(
    cfg: dict[str, Any],
    run_dir: RunDir,
    data: ImageSet,
    splits: list,
    device: torch.device,
    threads: int,
    amp: AmpPlan,
    epochs: int,
    tracker: Tracker,
    started: float,
) -> dict[str, Any]:
    seed = int(cfg.get("random_seed", 42))
    kfold = len(splits) > 1
    history: list[dict[str, Any]] = []
    folds: list[dict[str, Any]] = []
    y_true, y_pred = [], []
    best_payload: dict[str, Any] | None = None
    effective: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    step = 0
    for k, (train_idx, val_idx) in enumerate(splits):
        fold = k if kfold else None
        seed_everything(seed + k)
        model = builders.build_model(cfg, data.num_classes).to(device)
        train_loader, val_loader = make_loaders(data, train_idx, val_idx, cfg, device)
        optimizer = builders.build_optimizer(cfg, model)
        optimizer_info = builders.effective_optimizer(optimizer)  # before a scheduler moves lr
        schedule = builders.build_scheduler(cfg, optimizer, len(train_loader))
        weight = builders.class_weights(cfg, data.labels[train_idx], data.num_classes)
        criterion = builders.build_criterion(
            cfg, weight.to(device) if weight is not None else None
        ).to(device)
        stopper = EarlyStopping(cfg.get("monitor", "val_f1"), cfg.get("patience"))
        if k == 0:
            print(
                f"built: {type(optimizer).__name__} lr={optimizer_info['lr']:g} "
                f"wd={optimizer_info['weight_decay']:g} momentum={optimizer_info['momentum']}; "
                f"scheduler {type(schedule.main).__name__ if schedule.main else None} "
                f"{schedule.params}; loss {type(criterion).__name__}; batch "
                f"{train_loader.batch_size}; {len(train_idx)} train / {len(val_idx)} val",
                flush=True,
            )

        def on_epoch(record: dict[str, Any], _k: int = k) -> None:
            nonlocal step
            step += 1
            run_dir.log_epoch(record)
            tracker.log_epoch(
                {f"fold{_k}/{key}" if kfold else key: v for key, v in record.items()}, step=step
            )
            fold_txt = f"fold {_k} " if kfold else ""
            print(
                f"{fold_txt}epoch {record['epoch']}/{epochs} train_loss {record['train_loss']:.4f}"
                f" val_loss {record['val_loss']:.4f} val_acc {record['val_acc']:.4f}"
                f" val_f1 {record['val_f1']:.4f} lr {record['lr']:.3g}"
                f" {record['seconds']:.2f}s",
                flush=True,
            )

        result = fit(
            model,
            train_loader,
            val_loader,
            criterion,
            optimizer,
            schedule,
            amp,
            stopper,
            epochs,
            data.num_classes,
            on_epoch,
            fold,
        )
        metrics = _fold_metrics(result)
        history.extend(result.history)
        assert result.best is not None and result.best_state is not None
        y_true.extend(result.best.y_true.tolist())
        y_pred.extend(result.best.y_pred.tolist())
        payload = _checkpoint(result.best_state, cfg, data, result.best_epoch, metrics, fold)
        if kfold:
            torch.save(payload, run_dir.checkpoint(f"fold{k}_best.pt"))
            folds.append(
                {"fold": k, "train_size": len(train_idx), "val_size": len(val_idx), **metrics}
            )
        if best_payload is None or metrics["best_val_f1"] > best_payload["metrics"]["best_val_f1"]:
            best_payload = payload
        torch.save(
            _checkpoint(result.last_state or {}, cfg, data, len(result.history), metrics, fold),
            run_dir.checkpoint("last.pt"),
        )
        effective = build_effective(
            cfg,
            model,
            optimizer_info,
            schedule,
            criterion,
            train_loader,
            result,
            amp,
            stopper,
            device,
            threads,
            epochs,
        )
        if not kfold:
            summary = metrics
    assert best_payload is not None
    torch.save(best_payload, run_dir.checkpoint("best_model.pt"))
    if kfold:
        summary = {key: float(np.mean([f[key] for f in folds])) for key in METRIC_KEYS}
        summary["best_epoch"] = round(summary["best_epoch"])
        summary["epochs_run"] = max(f["epochs_run"] for f in folds)
        summary["stopped_early"] = any(f["stopped_early"] for f in folds)
        summary["best_val_f1_std"] = float(np.std([f["best_val_f1"] for f in folds]))
        summary["n_folds"] = len(folds)
        summary["folds"] = folds
    summary["monitor"] = cfg.get("monitor", "val_f1")

    figures = {
        "loss_curve": plot_curves(
            history, ["train_loss", "val_loss"], "loss", run_dir.figures / "loss_curve.png"
        ),
        "f1_curve": plot_curves(history, ["val_f1"], "macro F1", run_dir.figures / "f1_curve.png"),
        "confusion_matrix": plot_confusion(
            confusion_matrix(y_true, y_pred, labels=list(range(data.num_classes))),
            data.class_names,
            run_dir.figures / "confusion_matrix.png",
        ),
    }
    tracker.log_final(summary, y_true, y_pred, data.class_names, figures)
    import timm

    result_json = {
        "status": "completed",
        "experiment_id": os.environ.get("HPSYS_EXPERIMENT_ID"),
        "run_name": tracker.name,
        "run_dir": str(run_dir.path.resolve()),
        "metrics": summary,
        "duration_s": round(time.time() - started, 3),
        "artifacts": run_dir.artifact_paths(),
        "wandb": tracker.describe(),
        "effective": effective,
        "versions": {"torch": torch.__version__, "timm": timm.__version__},
    }
    tracker.finish()
    result_json["wandb"] = tracker.describe()
    run_dir.write_result(result_json)
    return result_json

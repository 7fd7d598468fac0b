"""What a run reports: per-fold and k-fold metrics, and `effective`, the hyperparameters read
back from the objects that trained (never from the config), so tests and the runner can compare
them with what was asked for."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.data.loader import effective_data
from trainer.engine import FitResult
from trainer.parts.assemble import Parts
from trainer.parts.losses import effective_criterion
from trainer.parts.model import effective_model

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


def fold_metrics(fr: FitResult) -> dict[str, Any]:
    """Best and final validation metrics of one fit."""
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


def kfold_summary(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of the folds' metrics, their spread and the folds themselves."""
    summary: dict[str, Any] = {key: float(np.mean([f[key] for f in folds])) for key in METRIC_KEYS}
    summary["best_epoch"] = round(summary["best_epoch"])
    summary["epochs_run"] = max(f["epochs_run"] for f in folds)
    summary["stopped_early"] = any(f["stopped_early"] for f in folds)
    summary["best_val_f1_std"] = float(np.std([f["best_val_f1"] for f in folds]))
    summary["n_folds"] = len(folds)
    summary["folds"] = folds
    return summary


def effective_model_name(model: nn.Module, asked: Any) -> str:
    """The architecture (and weight tag, when one was asked for) of the built model."""
    pcfg = getattr(model, "pretrained_cfg", None) or {}
    arch = pcfg.get("architecture")
    if not arch:
        return f"{type(model).__module__}.{type(model).__qualname__}"
    tag = pcfg.get("tag")
    return f"{arch}.{tag}" if tag and isinstance(asked, str) and "." in asked else arch


def effective(
    cfg: dict[str, Any], parts: Parts, fit: FitResult, patience: int | None, monitor: str
) -> dict[str, Any]:
    """Hyperparameters read back from the objects that trained, not from the config."""
    model, schedule, amp = parts.model, parts.schedule, parts.amp
    shape = fit.fed_shape or ()
    scheduled = schedule.main is not None
    return {
        "model_name": effective_model_name(model, cfg["model_name"]),
        "model_class": type(model).__name__,
        **effective_model(model),  # head: the classifier's layers; activation: the backbone's
        "pretrained": bool(getattr(model, "loaded_pretrained", False)),
        "num_classes": getattr(model, "num_classes", None),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        **parts.optimizer_info,
        "scheduler": type(schedule.main).__name__ if scheduled else None,
        "scheduler_params": schedule.params,
        "scheduler_interval": schedule.interval if scheduled else None,
        "warmup_epochs": schedule.warmup_epochs,
        **effective_criterion(parts.criterion),
        "image_size": int(shape[-2]) if shape else None,
        "input_shape": list(shape[1:]),
        "batch_size": parts.train_loader.batch_size,
        "mixed_precision": amp.enabled,
        "amp_dtype": amp.dtype_name,
        "grad_scaler": amp.scaler is not None,
        "amp_note": amp.note,
        "patience": patience,
        "monitor": monitor,
        "epochs": int(cfg["epochs"]),
        "device": str(parts.train_loader.device),
        "cpu_threads": torch.get_num_threads(),
        **effective_data(parts.train_loader, parts.val_loader),
    }

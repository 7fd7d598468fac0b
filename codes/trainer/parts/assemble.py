"""Everything one fit trains with, built from the config in one call, so the loop, the
callbacks and result.json's `effective` all take one object instead of a dozen arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.data import ImageSet, TensorLoader, make_loaders
from trainer.device import AmpPlan
from trainer.errors import ConfigError
from trainer.parts.losses import build_criterion, class_weights
from trainer.parts.model import build_model, check_model_name
from trainer.parts.optimizer import build_optimizer, effective_optimizer, optimizer_key
from trainer.parts.scheduler import Schedule, build_scheduler, scheduler_class
from trainer.schema import rule_problem


@dataclass
class Parts:
    """The built objects of one training split."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    criterion: nn.Module
    train_loader: TensorLoader
    val_loader: TensorLoader
    amp: AmpPlan
    num_classes: int
    optimizer_info: dict[str, Any]  # read before the scheduler first moves lr


def build_parts(
    cfg: dict[str, Any],
    data: ImageSet,
    split: tuple[np.ndarray, np.ndarray],
    device: torch.device,
    amp: AmpPlan,
) -> Parts:
    """Model, loaders, optimizer, schedule and loss of one (train, val) split, on `device`."""
    train_idx, val_idx = split
    model = build_model(cfg, data.num_classes).to(device)
    train_loader, val_loader = make_loaders(data, train_idx, val_idx, cfg, device)
    optimizer = build_optimizer(cfg, model)
    optimizer_info = effective_optimizer(optimizer)
    schedule = build_scheduler(cfg, optimizer, len(train_loader))
    weight = class_weights(cfg, data.labels[train_idx], data.num_classes)
    criterion = build_criterion(cfg, weight.to(device) if weight is not None else None)
    return Parts(
        model,
        optimizer,
        schedule,
        criterion.to(device),
        train_loader,
        val_loader,
        amp,
        data.num_classes,
        optimizer_info,
    )


def describe_parts(parts: Parts) -> str:
    """The one 'built:' line the log shows before the first epoch."""
    info, schedule = parts.optimizer_info, parts.schedule
    scheduler = type(schedule.main).__name__ if schedule.main is not None else None
    return (
        f"built: {type(parts.optimizer).__name__} lr={info['lr']:g} "
        f"wd={info['weight_decay']:g} momentum={info['momentum']}; "
        f"scheduler {scheduler} {schedule.params}; loss {type(parts.criterion).__name__}; "
        f"batch {parts.train_loader.batch_size}; {parts.train_loader.dataset_size} train / "
        f"{parts.val_loader.dataset_size} val"
    )


def validate_names(cfg: dict[str, Any]) -> None:
    """Check optimizer, scheduler, loss and model names before any data is read."""
    spec = cfg.get("optimizer_name")
    if isinstance(spec, str):
        optimizer_key(spec)
    if not isinstance(cfg.get("scheduler_name"), dict):
        scheduler_class(cfg.get("scheduler_name"))
    if not isinstance(cfg.get("criterion"), dict):
        build_criterion(cfg, None)
    if isinstance(cfg.get("model_name"), str):
        check_model_name(cfg["model_name"])
        if cfg.get("pretrained") and cfg.get("fine_tuning", "full") != "scratch":
            from trainer.pretrained import ensure_available

            ensure_available(cfg["model_name"])  # before the data is read: fail in seconds
    broken = rule_problem(cfg)  # the schema's cross-key rules (config.validate checks them
    if broken is not None:  # too; a caller of train() may not have validated)
        raise ConfigError(broken)

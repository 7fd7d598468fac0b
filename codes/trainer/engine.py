"""The training loop: epochs, mixed precision, validation metrics and early stopping."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from trainer.builders import Schedule
from trainer.data import TensorLoader
from trainer.device import AmpPlan


@dataclass
class EarlyStopping:
    """Stop after `patience` epochs without improvement of `monitor`; None or 0 never stops."""

    monitor: str = "val_f1"
    patience: int | None = None
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0

    @property
    def mode(self) -> str:
        return "min" if "loss" in self.monitor else "max"

    def improved(self, value: float, epoch: int) -> bool:
        """Record `value`; True when it is the best so far."""
        better = (
            self.best is None
            or (value < self.best if self.mode == "min" else value > self.best)
            or (math.isnan(self.best) and not math.isnan(value))
        )
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return better

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.bad_epochs >= self.patience  # type: ignore[operator]


@dataclass
class Evaluation:
    loss: float
    acc: float
    f1: float
    y_true: np.ndarray
    y_pred: np.ndarray


@dataclass
class FitResult:
    """One training run (one fold): its history, best and last state."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: Evaluation | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    last_state: dict[str, torch.Tensor] | None = None
    last: Evaluation | None = None
    fed_shape: tuple[int, ...] | None = None
    stopped_early: bool = False


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    amp: AmpPlan,
) -> torch.Tensor:
    """Forward, backward and optimizer step (scaled for float16); returns the loss tensor."""
    with torch.autocast(x.device.type, dtype=amp.dtype, enabled=amp.enabled):
        loss = criterion(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    if amp.scaler is not None:
        amp.scaler.scale(loss).backward()
        amp.scaler.step(optimizer)
        amp.scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


def train_one_epoch(
    model: nn.Module,
    loader: TensorLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    amp: AmpPlan,
    schedule: Schedule,
) -> tuple[float, tuple[int, ...]]:
    """One pass over the training loader; returns the mean loss and the input tensor shape."""
    model.train()
    device = loader.device
    total = torch.zeros((), device=device)
    seen = 0
    shape: tuple[int, ...] = ()
    for x, y in loader:
        loss = train_step(model, x, y, criterion, optimizer, amp)
        schedule.after_batch()
        total += loss.float() * len(y)
        seen += len(y)
        shape = tuple(x.shape)
    return float(total) / max(seen, 1), shape


@torch.inference_mode()
def evaluate(model: nn.Module, loader: TensorLoader, amp: AmpPlan, num_classes: int) -> Evaluation:
    """Cross-entropy, accuracy and macro F1 on a loader (CE keeps val_loss comparable across
    training losses)."""
    model.eval()
    logits, targets = [], []
    for x, y in loader:
        with torch.autocast(loader.device.type, dtype=amp.dtype, enabled=amp.enabled):
            logits.append(model(x).float())
        targets.append(y)
    out, y_all = torch.cat(logits), torch.cat(targets)
    loss = float(F.cross_entropy(out, y_all))
    y_true, y_pred = y_all.cpu().numpy(), out.argmax(1).cpu().numpy()
    f1 = f1_score(y_true, y_pred, average="macro", labels=list(range(num_classes)), zero_division=0)
    return Evaluation(loss, float(accuracy_score(y_true, y_pred)), float(f1), y_true, y_pred)


def fit(
    model: nn.Module,
    train_loader: TensorLoader,
    val_loader: TensorLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    amp: AmpPlan,
    stopper: EarlyStopping,
    epochs: int,
    num_classes: int,
    on_epoch: Callable[[dict[str, Any]], None],
    fold: int | None = None,
) -> FitResult:
    """Train up to `epochs`, stop early on `stopper`, and restore the best weights."""
    result = FitResult()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        train_loss, result.fed_shape = train_one_epoch(
            model, train_loader, criterion, optimizer, amp, schedule
        )
        val = evaluate(model, val_loader, amp, num_classes)
        monitored = {"val_f1": val.f1, "val_acc": val.acc, "val_loss": val.loss}[stopper.monitor]
        schedule.after_epoch(monitored)
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val.loss,
            "val_acc": val.acc,
            "val_f1": val.f1,
            "lr": lr,
            "seconds": round(time.perf_counter() - start, 4),
        }
        if fold is not None:
            record["fold"] = fold
        result.history.append(record)
        result.last = val
        if stopper.improved(monitored, epoch):
            result.best, result.best_epoch = val, epoch
            result.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        on_epoch(record)
        if stopper.should_stop:
            result.stopped_early = epoch < epochs
            break
    result.last_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if result.best_state is not None:
        model.load_state_dict(copy.deepcopy(result.best_state))
    return result

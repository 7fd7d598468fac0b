"""The training loop: epochs, mixed precision, validation metrics and the best weights.

`fit(parts, callbacks)` owns only what every run needs (train, validate, step the schedule,
keep the best weights of the monitored metric); everything else an epoch does (metrics.jsonl,
W&B, the console, early stopping, checkpoints) is a callback, see trainer/callbacks.py.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.data import TensorLoader
from trainer.device import AmpPlan
from trainer.evaluation import Evaluation, scored
from trainer.parts.assemble import Parts


@dataclass
class Monitor:
    """The metric that picks the best epoch (its weights are restored and checkpointed)."""

    name: str = "val_f1"
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best, for early stopping

    @property
    def mode(self) -> str:
        return "min" if "loss" in self.name else "max"

    def update(self, value: float, epoch: int) -> bool:
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
    stop_status: str | None = None  # the stopping callback's result.json status, if any


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


class EpochInterrupted(Exception):
    """A callback ended the run inside an epoch (`status`: its result.json status)."""

    def __init__(self, status: str | None) -> None:
        super().__init__(status)
        self.status = status


def train_one_epoch(
    parts: Parts, interrupt: Callable[[], str | None] | None = None
) -> tuple[float, tuple[int, ...]]:
    """One pass over the parts' training loader (its model, loss, optimizer, precision and
    schedule); returns the mean loss and the input tensor shape. `interrupt` is asked after
    each batch: a status string raises EpochInterrupted."""
    model, loader = parts.model, parts.train_loader
    model.train()
    device = loader.device
    total = torch.zeros((), device=device)
    seen = 0
    shape: tuple[int, ...] = ()
    for x, y in loader:
        loss = train_step(model, x, y, parts.criterion, parts.optimizer, parts.amp)
        parts.schedule.after_batch()
        total += loss.float() * len(y)
        seen += len(y)
        shape = tuple(x.shape)
        if interrupt is not None and (status := interrupt()) is not None:
            raise EpochInterrupted(status)
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
    return scored(loss, y_all.cpu().numpy(), out.argmax(1).cpu().numpy(), num_classes)


@dataclass
class FitState:
    """What callbacks see: the parts, where the loop is, and what it has found so far.

    A callback may set `epoch` in on_fit_start (a resumed run): the loop goes on after it.
    """

    parts: Parts
    epochs: int
    fold: int | None
    monitor: Monitor
    result: FitResult = field(default_factory=FitResult)
    epoch: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    val: Evaluation | None = None
    improved: bool = False


class Callback:
    """A hook into the loop; every method is optional. Defined here, beside the loop that
    calls it, so the loop never imports the callbacks (trainer/callbacks.py) that use it."""

    stop_status: str | None = None  # result.json's status when this callback stops a run

    def on_fit_start(self, state: FitState) -> None:
        """Before the first epoch of a fold."""

    def on_epoch_end(self, state: FitState) -> bool | None:
        """After an epoch is validated; True asks the loop to stop."""
        return None

    def interrupts(self, state: FitState) -> bool:
        """After each training batch (keep it cheap); True ends the run inside the epoch."""
        return False

    def on_fit_end(self, state: FitState) -> None:
        """After the last epoch of a fold, with the best weights restored."""


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def run_epoch(state: FitState, interrupt: Callable[[], str | None] | None = None) -> None:
    """Train one epoch, validate, step the schedule; the record and the best go into `state`."""
    parts, result = state.parts, state.result
    start = time.perf_counter()
    lr = float(parts.optimizer.param_groups[0]["lr"])
    set_epoch = getattr(parts.train_loader, "set_epoch", None)  # dynamic augmentation's stage
    stage = set_epoch(state.epoch) if set_epoch is not None else None
    train_loss, result.fed_shape = train_one_epoch(parts, interrupt)
    val = evaluate(parts.model, parts.val_loader, parts.amp, parts.num_classes)
    extra: dict[str, Any] = {} if stage is None else {"aug_stage": stage}
    if getattr(parts.val_loader, "tta", None) is not None:  # val_TTA: reported beside val_*
        from trainer.tta import evaluate_tta

        tta = evaluate_tta(
            parts.model, parts.val_loader, parts.amp, parts.num_classes, parts.val_loader.tta
        )
        extra.update(val_loss_tta=tta.loss, val_acc_tta=tta.acc, val_f1_tta=tta.f1)
    monitored = {"val_f1": val.f1, "val_acc": val.acc, "val_loss": val.loss}[state.monitor.name]
    parts.schedule.after_epoch(monitored)
    state.record = {
        "epoch": state.epoch,
        "train_loss": train_loss,
        "val_loss": val.loss,
        "val_acc": val.acc,
        "val_f1": val.f1,
        "lr": lr,
        **extra,
        "seconds": round(time.perf_counter() - start, 4),
    }
    if state.fold is not None:
        state.record["fold"] = state.fold
    result.history.append(state.record)
    state.val = result.last = val
    state.improved = state.monitor.update(monitored, state.epoch)
    if state.improved:
        result.best, result.best_epoch = val, state.epoch
        result.best_state = snapshot(parts.model)


def fit(
    parts: Parts,
    callbacks: Sequence[Callback],
    epochs: int,
    monitor: str = "val_f1",
    fold: int | None = None,
) -> FitResult:
    """Train up to `epochs`, stop when a callback asks, and restore the best weights."""
    state = FitState(parts, epochs, fold, Monitor(monitor))
    for callback in callbacks:
        callback.on_fit_start(state)

    def interrupt() -> str | None:  # only once an epoch is done: a run needs one to report
        if not state.result.history:
            return None
        asking = [cb for cb in callbacks if cb.interrupts(state)]
        return (asking[0].stop_status or "stopped") if asking else None

    for epoch in range(state.epoch + 1, epochs + 1):
        state.epoch = epoch
        try:
            run_epoch(state, interrupt)
        except EpochInterrupted as stop:  # the unfinished epoch is discarded
            state.epoch = epoch - 1
            state.result.stopped_early, state.result.stop_status = True, stop.status
            break
        stoppers = [cb for cb in callbacks if cb.on_epoch_end(state)]  # every one is called
        if stoppers:
            state.result.stopped_early = epoch < epochs
            state.result.stop_status = stoppers[0].stop_status
            break
    result = state.result
    result.last_state = snapshot(parts.model)
    if result.best_state is not None:
        parts.model.load_state_dict(copy.deepcopy(result.best_state))
    for callback in callbacks:
        callback.on_fit_end(state)
    return result

"""Per-epoch work as a list of small callbacks (Lightning's idea, a few lines of it).

`fit` calls every callback's `on_fit_start(state)` once, `on_epoch_end(state)` after each
validated epoch (a truthy return asks the loop to stop after this epoch; all of them are still
called), and `on_fit_end(state)` once the best weights are back in the model. One instance
serves every fold, so a callback may keep state across folds.

More behaviour is one more callback:
- a stop request: `on_epoch_end` returns True when $HPSYS_RUN_DIR/stop_request.json exists,
  with `stop_status = "pruned"`; run.py writes the stopping callback's status to result.json.
- a resumable checkpoint: `on_epoch_end` saves model, optimizer and schedule state;
  `on_fit_start` loads it and sets `state.epoch`, and the loop continues after that epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.artifacts import RunDir
from trainer.data import ImageSet
from trainer.engine import FitState
from trainer.infer.checkpoint import checkpoint_payload
from trainer.results import fold_metrics
from trainer.tracking import Tracker


class Callback:
    """A hook into the loop; every method is optional."""

    stop_status: str | None = None  # result.json's status when this callback stops a run

    def on_fit_start(self, state: FitState) -> None:
        """Before the first epoch of a fold."""

    def on_epoch_end(self, state: FitState) -> bool | None:
        """After an epoch is validated; True asks the loop to stop."""
        return None

    def on_fit_end(self, state: FitState) -> None:
        """After the last epoch of a fold, with the best weights restored."""


@dataclass
class EarlyStopping(Callback):
    """Stop after `patience` epochs without improvement of the monitor; None or 0 never stops."""

    patience: int | None = None

    def on_epoch_end(self, state: FitState) -> bool:
        return bool(self.patience) and state.monitor.bad_epochs >= self.patience  # type: ignore[operator]


@dataclass
class MetricsFile(Callback):
    """One flushed metrics.jsonl line per epoch: what the runner's stoppers follow."""

    run_dir: RunDir

    def on_epoch_end(self, state: FitState) -> None:
        self.run_dir.log_epoch(state.record)


@dataclass
class TrackerLog(Callback):
    """The epoch's metrics to W&B, keyed `fold<k>/...` in k-fold, one step count across folds."""

    tracker: Tracker
    step: int = 0

    def on_epoch_end(self, state: FitState) -> None:
        self.step += 1
        record = state.record
        if state.fold is not None:
            record = {f"fold{state.fold}/{key}": value for key, value in record.items()}
        self.tracker.log_epoch(record, step=self.step)


class ConsoleLog(Callback):
    """One line per epoch on stdout (train.log), flushed so the runner's tail is current."""

    def on_epoch_end(self, state: FitState) -> None:
        r = state.record
        fold = f"fold {state.fold} " if state.fold is not None else ""
        print(
            f"{fold}epoch {r['epoch']}/{state.epochs} train_loss {r['train_loss']:.4f}"
            f" val_loss {r['val_loss']:.4f} val_acc {r['val_acc']:.4f}"
            f" val_f1 {r['val_f1']:.4f} lr {r['lr']:.3g} {r['seconds']:.2f}s",
            flush=True,
        )


@dataclass
class Checkpoints(Callback):
    """After each fold: last.pt, fold<k>_best.pt in k-fold, and best_model.pt whenever this
    fold's best beats the earlier folds' (by best_val_f1)."""

    run_dir: RunDir
    cfg: dict[str, Any]
    data: ImageSet
    best_f1: float | None = field(default=None, init=False)

    def on_fit_end(self, state: FitState) -> None:
        result, fold = state.result, state.fold
        assert result.best_state is not None
        metrics = fold_metrics(result)
        best = checkpoint_payload(
            result.best_state, self.cfg, self.data, result.best_epoch, metrics, fold
        )
        if fold is not None:
            torch.save(best, self.run_dir.checkpoint(f"fold{fold}_best.pt"))
        if self.best_f1 is None or metrics["best_val_f1"] > self.best_f1:
            self.best_f1 = metrics["best_val_f1"]
            torch.save(best, self.run_dir.checkpoint("best_model.pt"))
        last = checkpoint_payload(
            result.last_state or {}, self.cfg, self.data, len(result.history), metrics, fold
        )
        torch.save(last, self.run_dir.checkpoint("last.pt"))

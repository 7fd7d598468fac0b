"""Per-epoch work as a list of small callbacks (Lightning's idea, a few lines of it).

`fit` calls every callback's `on_fit_start(state)` once, `on_epoch_end(state)` after each
validated epoch (a truthy return asks the loop to stop after this epoch; all of them are still
called), and `on_fit_end(state)` once the best weights are back in the model. One instance
serves every fold, so a callback may keep state across folds.

More behaviour is one more callback, for instance:
- StopRequest: `on_epoch_end` returns True when $HPSYS_RUN_DIR/stop_request.json exists, with
  `stop_status = "pruned"`; run.py writes the stopping callback's status to result.json. Long
  epochs: `interrupts(state)` is asked after every batch (a callback throttles itself) and a
  True ends the run within the epoch, that unfinished epoch discarded (once one epoch is done).
- Resumable: `on_epoch_end` saves last.pt (weights plus trainer/resume.py's training state)
  and resume.json; given a checkpoint, `on_fit_start` restores it and sets `state.epoch`, and
  the loop continues after that epoch. It comes first, so the others see the restored state.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hpsys_reporter.files import stop_line, stop_request
from trainer.artifacts import RunDir, write_atomic
from trainer.data import ImageSet
from trainer.engine import Callback, FitState, snapshot  # Callback: the loop's hook interface
from trainer.infer.checkpoint import checkpoint_payload, save_checkpoint
from trainer.results import fold_metrics
from trainer.resume import restore, training_state
from trainer.tracking import Tracker

STOP_REQUEST = "stop_request.json"
RESUME_FILE = "resume.json"


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

    def on_fit_start(self, state: FitState) -> None:
        if state.fold is None:  # a resumed run goes on from its last logged step
            self.step = max(self.step, state.epoch)

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
    """After each fold: fold<k>_best.pt in k-fold, and best_model.pt whenever this fold's best
    beats the earlier folds' (by best_val_f1). last.pt is Resumable's, saved every epoch."""

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


@dataclass
class StopRequest(Callback):
    """The runner's graceful stop: $HPSYS_RUN_DIR/stop_request.json ends the run at the next
    epoch end (or within a long epoch: checked every `every_batches` batches or `every_s`
    seconds), with result.json's status `pruned`. A request older than this process (`since`)
    is an earlier attempt's and is ignored."""

    path: Path
    since: float
    every_batches: int = 50
    every_s: float = 30.0
    stop_status = "pruned"
    _batches: int = field(default=0, init=False)
    _checked: float = field(default_factory=time.monotonic, init=False)
    _told: bool = field(default=False, init=False)

    def requested(self) -> bool:
        request = stop_request(self.path, self.since - 1.0)  # mtime is a coarse clock
        if request is not None and not self._told:
            self._told = True
            print(stop_line(request), flush=True)
        return request is not None

    def on_epoch_end(self, state: FitState) -> bool:
        self._batches, self._checked = 0, time.monotonic()
        return self.requested()

    def interrupts(self, state: FitState) -> bool:
        self._batches += 1
        if self._batches < self.every_batches and time.monotonic() - self._checked < self.every_s:
            return False
        self._batches, self._checked = 0, time.monotonic()
        return self.requested()


@dataclass
class Resumable(Callback):
    """last.pt after every epoch (atomically: the weights with what trainer/resume.py captures),
    and, outside k-fold, resume.json (`checkpoint`, `epoch`) telling the runner this run can go
    on from there. `checkpoint` (a loaded last.pt) is restored at the first fit's start."""

    run_dir: RunDir
    cfg: dict[str, Any]
    data: ImageSet
    tracker: Tracker
    checkpoint: dict[str, Any] | None = None
    resumed_from_epoch: int | None = field(default=None, init=False)

    def on_fit_start(self, state: FitState) -> None:
        ckpt, self.checkpoint = self.checkpoint, None
        if ckpt is None:
            return
        restore(state, ckpt)
        self.resumed_from_epoch = state.epoch
        for record in state.result.history:  # metrics.jsonl: epochs 1..k once, as saved
            self.run_dir.log_epoch(record)
        print(
            f"resumed after epoch {state.epoch} (best epoch {state.monitor.best_epoch})", flush=True
        )

    def on_epoch_end(self, state: FitState) -> None:
        path = self.run_dir.checkpoint("last.pt")
        payload = checkpoint_payload(
            snapshot(state.parts.model),
            self.cfg,
            self.data,
            state.epoch,
            fold_metrics(state.result),
            state.fold,
        )
        payload["resume"] = training_state(state, self.tracker.run_id)
        save_checkpoint(payload, path)
        if state.fold is None:
            point = {"checkpoint": str(path.resolve()), "epoch": state.epoch}
            write_atomic(self.run_dir.path / RESUME_FILE, json.dumps(point) + "\n")

"""`HpsysCallback`: a Lightning app joins the matrix with one callback and one `ckpt_path`.

    from hpsys_reporter.lightning import HpsysCallback

    hpsys = HpsysCallback()                       # reporter.start(): config, folder, resume
    trainer = L.Trainer(max_epochs=hpsys.run.config["epochs"], callbacks=[hpsys],
                        default_root_dir=hpsys.run.dir)
    trainer.fit(model, train_loader, val_loader, ckpt_path=hpsys.ckpt_path)

Per validation epoch it logs the scalar metrics of `trainer.callback_metrics` to
metrics.jsonl, saves a resumable checkpoint (Lightning's own: weights, optimizers, loops) and
reports it (resume.json), and honours the runner's stop request (`trainer.should_stop`: the
fit ends after this epoch, status `pruned`). At the end of the fit it writes result.json with
`effective` read from the trainer. Lightning is imported here only (the `lightning` extra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from hpsys_reporter import effective_from
from hpsys_reporter.run import Run, start


class HpsysCallback(pl.Callback):
    """The script contract for a Lightning `Trainer` (see the module docstring)."""

    def __init__(self, run: Run | None = None, keys: Sequence[str] | None = None,
                 monitor: str = "val_f1", checkpoint: str = "last.ckpt") -> None:
        """`run`: an open reporter run (default: `start()`); `keys`: the metrics to log
        (default: every scalar Lightning holds); `monitor`: the key `best_epoch` follows;
        `checkpoint`: its file name in the run folder."""
        self.run = run or start()
        self.keys = tuple(keys) if keys is not None else None
        self.monitor, self.checkpoint_name = monitor, checkpoint
        self._validated = False  # this epoch ran validation (its metrics are fresh)

    @property
    def ckpt_path(self) -> str | None:
        """For `trainer.fit(..., ckpt_path=...)`: the checkpoint an interrupted run goes on
        from (HPSYS_RESUME), else None (a fresh start)."""
        return str(self.run.resume) if self.run.resume else None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # train_epoch_end comes after the epoch's validation: both its metrics are known here.
        # An epoch without validation (check_val_every_n_epoch) logs nothing: its val_ values
        # would be an older epoch's; a fit without any validation logs every epoch.
        epoch = trainer.current_epoch + 1  # the contract counts epochs from 1
        path = self.run.dir / self.checkpoint_name
        fresh = self._validated or not any(trainer.num_val_batches or ())
        self._validated = False
        if trainer.is_global_zero and fresh:
            self.run.log(epoch, **self._metrics(trainer))
        trainer.save_checkpoint(path)  # every rank calls it (a collective under DDP)
        if trainer.is_global_zero:
            self.run.checkpoint(path, epoch)
        stop = self.run.should_stop() if trainer.is_global_zero else False
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.run.finish(effective=self.effective(trainer, pl_module), monitor=self.monitor)

    def effective(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """What trained, read from the trainer: the optimizer (class, lr, weight decay,
        momentum), the scheduler, precision, the train loader's batch size, max epochs."""
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        configs = trainer.lr_scheduler_configs
        loader = trainer.train_dataloader
        return effective_from(
            optimizer=optimizer, scheduler=configs[0].scheduler if configs else None,
            loader=loader if hasattr(loader, "batch_size") else None, model=pl_module,
            precision=str(trainer.precision), max_epochs=trainer.max_epochs,
            accelerator=type(trainer.accelerator).__name__, devices=trainer.num_devices)

    def _metrics(self, trainer: pl.Trainer) -> dict[str, float]:
        out = {}
        for key, value in trainer.callback_metrics.items():
            if self.keys is not None and key not in self.keys or key.endswith("_step"):
                continue
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                number = float(value.item())
            elif isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
            else:
                continue
            if math.isfinite(number):
                out[key.removesuffix("_epoch")] = number  # on_step and on_epoch: `x_epoch`
        return out

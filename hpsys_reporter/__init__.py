"""The training side of the runner's script contract, for any training script.

    import hpsys_reporter as hpsys

    run = hpsys.start()                       # config, run folder, resume point
    for epoch in range(run.start_epoch, run.config["epochs"] + 1):
        ...                                   # train and validate one epoch
        run.log(epoch, train_loss=tl, val_loss=vl, val_f1=f1)
        torch.save(state, run.dir / "last.pt")
        run.checkpoint("last.pt", epoch)
        if run.should_stop():
            break
    run.finish(effective=hpsys.effective_from(optimizer=opt, loader=train_loader))

It imports neither torch nor the runner (`hyperparameter_system`), so `codes/` and any script
may use it; `hpsys_reporter.lightning` (the Lightning callback) alone imports Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpsys_reporter.run import EXIT_BAD_CONFIG, Run, fail, start

__all__ = ["EXIT_BAD_CONFIG", "Run", "effective_from", "fail", "start"]

_SCHEDULER_SKIP = {"last_epoch", "verbose", "_step_count", "base_lrs"}


def effective_from(optimizer: Any = None, scheduler: Any = None, loader: Any = None,
                   model: Any = None, **extra: Any) -> dict[str, Any]:
    """`effective` read back from the objects that train (duck-typed: no torch import), so the
    runner and tests compare what ran with what the option asked for: the optimizer's class,
    lr, weight decay and momentum (or betas); the scheduler's class and its number-valued
    settings; the loader's batch size; the model's class and parameter counts; then `extra`."""
    out: dict[str, Any] = {}
    if optimizer is not None:
        group: Mapping[str, Any] = optimizer.param_groups[0]
        out.update(optimizer=type(optimizer).__name__, lr=group.get("lr"),
                   weight_decay=group.get("weight_decay"))
        if "momentum" in group:
            out["momentum"] = group["momentum"]
        if "betas" in group:
            out["betas"] = list(group["betas"])
    if scheduler is not None:
        params = {k: v for k, v in vars(scheduler).items()
                  if not k.startswith("_") and k not in _SCHEDULER_SKIP
                  and isinstance(v, int | float) and not isinstance(v, bool)}
        out.update(scheduler=type(scheduler).__name__, scheduler_params=params)
    if loader is not None:
        out["batch_size"] = getattr(loader, "batch_size", None)
    if model is not None:
        params = list(model.parameters())
        out.update(model_class=type(model).__name__,
                   total_params=sum(p.numel() for p in params),
                   trainable_params=sum(p.numel() for p in params if p.requires_grad))
    out.update(extra)
    return out

"""The learning-rate schedule: a registry record (or `_target_` class) built with only the
parameters it accepts, preceded by an optional linear warm-up, stepped when its record says."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import lr_scheduler

from trainer import registry
from trainer.errors import ConfigError
from trainer.parts.targets import call_target, import_target


@dataclass
class Schedule:
    """The built scheduler and when to step it: per 'epoch', per 'step', or on 'plateau'."""

    main: Any = None
    stepper: Any = None
    interval: str = "epoch"
    warmup_epochs: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def after_batch(self) -> None:
        if self.stepper is not None and self.interval == "step":
            self.stepper.step()

    def after_epoch(self, monitored: float) -> None:
        if self.stepper is None:
            return
        if self.interval == "plateau":
            self.stepper.step(monitored)
        elif self.interval == "epoch":
            self.stepper.step()


def accepted_params(cls: type, info: registry.SchedulerInfo | None) -> list[str]:
    """The parameter names a scheduler class takes from scheduler_params: its record's fields
    when its constructor takes them in one (registry.SchedulerInfo.record), else the
    constructor's own parameters."""
    if info is not None and info.record is not None:
        return [f.name for f in dataclasses.fields(info.record)]
    return list(inspect.signature(cls.__init__).parameters)


def scheduler_class(name: Any) -> type | None:
    """The scheduler class for a config name, None for 'none'."""
    info = registry.scheduler_info(None if name is None else str(name))
    return None if info is None else import_target(info.target, "scheduler_name")


def build_scheduler(
    cfg: dict[str, Any], optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> Schedule:
    """The configured scheduler with only the parameters its class accepts, plus warm-up."""
    spec = cfg.get("scheduler_name")
    epochs = int(cfg["epochs"])
    warmup = warmup_epochs(cfg)
    params = cfg.get("scheduler_params") or {}  # read key by key below (unused_keys)
    if isinstance(spec, dict):
        spec = dict(spec)
        interval = spec.pop("interval", None)
        main = call_target(spec, "scheduler_name", optimizer)
        return _with_warmup(optimizer, main, warmup, interval)
    info = registry.scheduler_info(None if spec is None else str(spec))
    main = None
    if info is not None:
        cls = import_target(info.target, "scheduler_name")
        accepted = accepted_params(cls, info)
        names = dict(info.aliases)  # e.g. min_lr read as CosineAnnealingLR's eta_min
        given = {}
        for key in list(params):  # only the accepted keys are read (unused_keys shows the rest)
            target = key if key in accepted else names.get(key)
            if target in accepted and params[key] is not None and target not in given:
                given[target] = params[key]
        if info.own_warmup:
            warmup_for_main, warmup = warmup, 0
        else:
            warmup_for_main = warmup
        ctx = registry.ScheduleContext(
            float(cfg["lr"]), epochs, warmup_for_main, steps_per_epoch,
            cfg.get("monitor", "val_f1"),
        )
        try:
            main = cls(optimizer, **info.prepare(ctx, given))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"scheduler_params: {cls.__name__} rejected them ({exc})") from None
        if info.own_warmup:
            schedule = _with_warmup(optimizer, main, 0, None)
            schedule.warmup_epochs = warmup_for_main
            return schedule
    return _with_warmup(optimizer, main, warmup, None)


class CosineAnnealingWarmupRestarts:
    """The original V2 scheduler through timm's CosineLRScheduler, stepped per batch: a
    linear warm-up of `warmup_epochs` to `max_lr`, then cosine cycles of `T_max` epochs down
    to `min_lr`, each cycle's peak `gamma` times the last one's (timm's cycle_decay). Its
    shape comes in one record (registry.WarmRestarts), built by the registry's `prepare`
    from scheduler_params; a `_target_` mapping may still give the record's fields as flat
    keywords (`shape`). It keeps each field as an attribute of the same name."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cycles: registry.WarmRestarts | None = None,
        **shape: Any,
    ) -> None:
        from timm.scheduler import CosineLRScheduler

        self.optimizer = optimizer
        c = cycles or registry.WarmRestarts(**shape)
        self.T_max, self.max_lr, self.min_lr = int(c.T_max), float(c.max_lr), float(c.min_lr)
        self.warmup_epochs, self.gamma = int(c.warmup_epochs), float(c.gamma)
        self.steps_per_epoch = max(1, int(c.steps_per_epoch))
        if self.min_lr > self.max_lr:
            raise ValueError(f"min_lr {self.min_lr:g} is above max_lr {self.max_lr:g}")
        for group in optimizer.param_groups:
            group["lr"] = self.max_lr
            group.pop("initial_lr", None)
        self.timm = CosineLRScheduler(
            optimizer,
            t_initial=self.T_max * self.steps_per_epoch,
            lr_min=self.min_lr,
            cycle_mul=1.0,
            cycle_decay=self.gamma,
            cycle_limit=10**6,
            warmup_t=self.warmup_epochs * self.steps_per_epoch,
            warmup_lr_init=self.min_lr,
            warmup_prefix=True,  # the warm-up comes before the first cycle, reaching max_lr
            t_in_epochs=False,
        )
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        self.timm.step_update(self.steps)

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "timm": self.timm.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.timm.load_state_dict(state["timm"])
        self.timm.step_update(self.steps)


def warmup_epochs(cfg: dict[str, Any]) -> int:
    """Warm-up epochs: scheduler_params.warmup_epochs (where the runner's scheduler category
    puts them) when set, else the top-level warmup_epochs."""
    nested = (cfg.get("scheduler_params") or {}).get("warmup_epochs")
    return int(nested if nested is not None else cfg.get("warmup_epochs") or 0)


def _with_warmup(
    optimizer: torch.optim.Optimizer, main: Any, warmup: int, interval: str | None
) -> Schedule:
    """The Schedule of `main` (a named or `_target_` scheduler), preceded by a linear warm-up."""
    info = _info_of(main)
    interval = interval or (info.interval if info is not None else "epoch")
    stepper = main
    if warmup > 0:
        if interval != "epoch":
            raise ConfigError(
                f"warmup_epochs: not supported with {type(main).__name__} (OneCycleLR has its own "
                "warm-up, pct_start); expected 0"
            )
        ramp = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
        try:
            stepper = (
                ramp
                if main is None
                else lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"warmup_epochs: cannot put a warm-up before {type(main).__name__} ({exc}); "
                "expected 0, or a torch.optim.lr_scheduler scheduler"
            ) from None
    return Schedule(main, stepper, interval, warmup, effective_scheduler_params(main))


def _info_of(scheduler: Any) -> registry.SchedulerInfo | None:
    """The registry record whose class built `scheduler` (a `_target_` one too), if any."""
    for info in registry.SCHEDULERS:
        if scheduler is not None and isinstance(scheduler, import_target(info.target, "")):
            return info
    return None


def effective_scheduler_params(scheduler: Any) -> dict[str, Any]:
    """The constructor parameters a scheduler object keeps, read from its attributes."""
    if scheduler is None:
        return {}
    out: dict[str, Any] = {}
    info = _info_of(scheduler)
    for name in accepted_params(type(scheduler), info):
        if name in ("self", "optimizer", "last_epoch", "verbose"):
            continue
        value = getattr(scheduler, name, None)
        if value is None and name == "min_lr":
            value = getattr(scheduler, "min_lrs", None)
        if isinstance(value, bool | int | float | str):
            out[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
            out[name] = list(value)
    if info is not None and info.read_back is not None:
        out.update(info.read_back(scheduler))
    return out

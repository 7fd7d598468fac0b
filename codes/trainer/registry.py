"""What the engine can build, as torch-free records: the schema publishes their names, the
builders build from them, so a name is accepted exactly when it is built.

Adding a scheduler or a loss is adding one record here (timm's OptimInfo registry is the model).
Classes are named by import path and resolved only when built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.errors import ConfigError, unknown_name
from trainer.schema_names import TIMM_OPTIMIZERS

# ---------------------------------------------------------------- optimizers

# The config's documented spellings -> timm's factory names; any of timm's names works as well.
OPTIMIZER_ALIASES = {
    "AdamW": "adamw",
    "Adam": "adam",
    "SGD": "momentum",  # classical momentum; optimizer_params.nesterov: true switches it
    "RMSprop": "rmsprop",
    "RAdam": "radam",
    "NAdam": "nadam",
    "Adafactor": "adafactor",
    "Momentum": "momentum",  # the original V2 names: SGD with momentum (0.9 unless set) ...
    "NAG": "nesterov",  # ... and SGD with Nesterov momentum
}


def optimizer_names() -> tuple[str, ...]:
    """Every accepted optimizer name (compared ignoring case): ours first, then timm's."""
    ours = {name.lower() for name in OPTIMIZER_ALIASES}
    return (*OPTIMIZER_ALIASES, *(name for name in TIMM_OPTIMIZERS if name not in ours))


def timm_optimizer(name: str) -> str:
    """timm's factory name for a configured optimizer name, or a ConfigError with close matches."""
    key = name.lower()
    opt = {k.lower(): v for k, v in OPTIMIZER_ALIASES.items()}.get(key, key)
    if opt not in TIMM_OPTIMIZERS:
        raise ConfigError(unknown_name("optimizer_name", "optimizer", name, optimizer_names()))
    return opt


# ---------------------------------------------------------------- schedulers


@dataclass(frozen=True)
class ScheduleContext:
    """What a scheduler's defaults may depend on."""

    lr: float
    epochs: int
    warmup: int
    steps_per_epoch: int
    monitor: str


def _as_given(ctx: ScheduleContext, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs


def _defaults(**values: Any) -> Callable[[ScheduleContext, dict[str, Any]], dict[str, Any]]:
    """A `prepare` that fills constant defaults."""
    return lambda ctx, kwargs: {**values, **kwargs}


def _cosine(ctx: ScheduleContext, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"T_max": max(1, ctx.epochs - ctx.warmup), **kwargs}


def _one_cycle(ctx: ScheduleContext, kwargs: dict[str, Any]) -> dict[str, Any]:
    # cycle_momentum off: cycling it would silently override the configured `momentum`.
    out = {"max_lr": ctx.lr, "cycle_momentum": False, **kwargs}
    needed = ctx.epochs * ctx.steps_per_epoch
    out.setdefault("total_steps", needed)
    if out["total_steps"] < needed:
        raise ConfigError(
            f"scheduler_params.total_steps: expected at least epochs x steps per epoch "
            f"= {needed}, got {out['total_steps']}"
        )
    return out


@dataclass(frozen=True)
class WarmRestarts:
    """The shape of CosineAnnealingWarmupRestarts' schedule, its fields named as the config's
    scheduler_params name them (the original V2 keys): a linear warm-up of `warmup_epochs`
    from `min_lr` to `max_lr`, then cosine cycles of `T_max` epochs down to `min_lr`, each
    cycle's peak `gamma` times the last one's; the run's batches per epoch, `steps_per_epoch`,
    turn epochs into the steps it counts."""

    T_max: int = 10
    max_lr: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: int = 0
    gamma: float = 1.0
    steps_per_epoch: int = 1


def _warm_restarts(ctx: ScheduleContext, kwargs: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        "T_max": max(1, ctx.epochs),
        "max_lr": ctx.lr,
        "warmup_epochs": ctx.warmup,
        "steps_per_epoch": ctx.steps_per_epoch,
    }
    return {"cycles": WarmRestarts(**{**defaults, **kwargs})}


def _plateau(ctx: ScheduleContext, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "min" if "loss" in ctx.monitor else "max", **kwargs}


def _one_cycle_read_back(scheduler: Any) -> dict[str, Any]:
    """OneCycleLR keeps max_lr and pct_start only inside its parameter groups and phases."""
    total = scheduler.total_steps
    return {
        "max_lr": float(scheduler.optimizer.param_groups[0]["max_lr"]),
        "pct_start": float(scheduler._schedule_phases[0]["end_step"] + 1) / total,
    }


@dataclass(frozen=True)
class SchedulerInfo:
    """One scheduler the config can name.

    interval: when it steps: after each 'epoch', after each batch ('step'), or after each
    epoch on the monitored metric ('plateau'); a warm-up can precede only an 'epoch' one.
    prepare: the constructor keyword arguments from those the config gave (defaults that
    depend on the run, checks of what they must be). read_back: values the object keeps
    outside its constructor-named attributes. record: the dataclass its constructor takes
    the config's parameters in (built by `prepare`); its fields, not the constructor's
    parameters, are then the scheduler_params keys it accepts and reports.
    """

    name: str
    target: str
    interval: str = "epoch"
    prepare: Callable[[ScheduleContext, dict[str, Any]], dict[str, Any]] = _as_given
    read_back: Callable[[Any], dict[str, Any]] | None = None
    aliases: tuple[tuple[str, str], ...] = ()  # (config name, constructor name), e.g. min_lr
    own_warmup: bool = False  # takes warmup_epochs itself (no linear warm-up put before it)
    record: type | None = None


_TORCH = "torch.optim.lr_scheduler."
SCHEDULERS: tuple[SchedulerInfo, ...] = (
    SchedulerInfo(
        "CosineAnnealingLR",
        _TORCH + "CosineAnnealingLR",
        prepare=_cosine,
        aliases=(("min_lr", "eta_min"),),
    ),
    SchedulerInfo(
        "OneCycleLR", _TORCH + "OneCycleLR", "step", _one_cycle, _one_cycle_read_back
    ),
    SchedulerInfo("StepLR", _TORCH + "StepLR", prepare=_defaults(step_size=1)),
    SchedulerInfo("ExponentialLR", _TORCH + "ExponentialLR", prepare=_defaults(gamma=0.9)),
    SchedulerInfo("ReduceLROnPlateau", _TORCH + "ReduceLROnPlateau", "plateau", _plateau),
    SchedulerInfo("MultiStepLR", _TORCH + "MultiStepLR"),
    SchedulerInfo("CosineAnnealingWarmRestarts", _TORCH + "CosineAnnealingWarmRestarts"),
    SchedulerInfo("PolynomialLR", _TORCH + "PolynomialLR"),
    SchedulerInfo("CyclicLR", _TORCH + "CyclicLR", "step"),
    SchedulerInfo("LinearLR", _TORCH + "LinearLR"),
    SchedulerInfo("ConstantLR", _TORCH + "ConstantLR"),
    # The original V2 scheduler: cosine cycles of T_max epochs from max_lr to min_lr, each
    # `gamma` times the last one's peak (timm's CosineLRScheduler, stepped per batch).
    SchedulerInfo(
        "CosineAnnealingWarmupRestarts",
        "trainer.parts.scheduler.CosineAnnealingWarmupRestarts",
        "step",
        _warm_restarts,
        own_warmup=True,
        record=WarmRestarts,
    ),
)
NO_SCHEDULER = "none"  # or YAML null


def scheduler_names() -> tuple[str, ...]:
    """Every accepted scheduler name (compared ignoring case), 'none' included."""
    return (*(info.name for info in SCHEDULERS), NO_SCHEDULER)


def scheduler_info(name: str | None) -> SchedulerInfo | None:
    """The record of a configured scheduler name, None for no scheduler."""
    if name is None or name.lower() == NO_SCHEDULER:
        return None
    for info in SCHEDULERS:
        if info.name.lower() == name.lower():
            return info
    raise ConfigError(unknown_name("scheduler_name", "scheduler", name, scheduler_names()))


# ---------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossInfo:
    """One loss the config can name: its class, other names, and its config-read arguments.

    smoothing: which of those arguments is its label smoothing, so mixup can fold the same
    smoothing into its soft targets without building the loss.
    """

    name: str
    target: str
    aliases: tuple[str, ...] = ()
    kwargs: Callable[[dict[str, Any]], dict[str, Any]] = lambda cfg: {}
    smoothing: str | None = None


LOSSES: tuple[LossInfo, ...] = (
    LossInfo(
        "CrossEntropyLoss",
        "torch.nn.CrossEntropyLoss",
        ("CrossEntropy", "CE", "cross_entropy", "cross_entropy_loss"),
        lambda cfg: {"label_smoothing": float(cfg.get("label_smooth") or 0.0)},  # as the original
        "label_smoothing",
    ),
    LossInfo(
        "FocalLoss",
        "trainer.parts.losses.FocalLoss",
        ("Focal", "focal_loss"),
        lambda cfg: {"alpha": cfg.get("focal_alpha", 1.0), "gamma": cfg.get("focal_gamma", 2.0)},
    ),
    LossInfo(
        "LabelSmoothingLoss",
        "trainer.parts.losses.LabelSmoothingLoss",
        ("LabelSmoothing", "label_smoothing", "label_smoothing_loss"),
        lambda cfg: {"smoothing": cfg.get("label_smooth", 0.1)},
        "smoothing",
    ),
)


def loss_names() -> tuple[str, ...]:
    """Every accepted loss name (compared ignoring case): the class names, then the aliases."""
    return (*(info.name for info in LOSSES), *(a for info in LOSSES for a in info.aliases))


def loss_info(name: str) -> LossInfo:
    """The record of a configured loss name."""
    for info in LOSSES:
        if name.lower() in (n.lower() for n in (info.name, *info.aliases)):
            return info
    raise ConfigError(unknown_name("criterion", "loss", name, loss_names()))


def label_smoothing(cfg: dict[str, Any]) -> float:
    """The label smoothing of the configured (hard-target) loss, read from its record: 0 for a
    loss without one, or for a `_target_` loss (its arguments are its own)."""
    spec = cfg.get("criterion", "CrossEntropyLoss")
    if isinstance(spec, dict):
        return 0.0
    info = loss_info(str(spec))
    if info.smoothing is None:
        return 0.0
    value = info.kwargs(cfg).get(info.smoothing, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0

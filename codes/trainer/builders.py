"""Build model, optimizer, scheduler and loss from the config, and read back what was built.

Names are matched case-insensitively; a `_target_` mapping builds any importable class with the
mapping's other keys, so a user's own component needs no change here. `effective_*` read values
from the built objects, never from the config, so tests and the runner see what really ran.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from trainer.build import registry
from trainer.errors import ConfigError, close_matches


def import_target(path: str, key: str) -> Any:
    """The object named by a dotted `_target_` path such as `torch.optim.SGD`."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ConfigError(
            f"{key}._target_: expected a dotted path like pkg.module.Class, got {path!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a user's module next to the repository root
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{key}._target_: cannot import {path!r} ({exc})") from None


def _call_target(spec: dict[str, Any], key: str, *args: Any, **defaults: Any) -> Any:
    """Build `spec['_target_']` with the spec's other keys; defaults fill accepted gaps only."""
    cls = import_target(str(spec["_target_"]), key)
    kwargs = {k: v for k, v in spec.items() if k != "_target_"}
    try:
        params = inspect.signature(cls).parameters
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, open_kwargs = {}, False
    for name, value in defaults.items():
        if name not in kwargs and (name in params or open_kwargs):
            kwargs[name] = value
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key}: cannot build {spec['_target_']} ({exc})") from None


# ---------------------------------------------------------------- model


def check_model_name(name: str) -> None:
    """Fail early, with close matches, on a name timm does not know: the architecture, and the
    pretrained tag after the dot (timm.is_model checks only the architecture)."""
    import timm
    from timm.models import get_arch_pretrained_cfgs, split_model_name_tag

    if not timm.is_model(name):
        hint = close_matches(name, timm.list_models(), n=5)
        raise ConfigError(f"model_name: unknown timm model {name!r}{hint}")
    arch, tag = split_model_name_tag(name)
    tagged = list(get_arch_pretrained_cfgs(arch))  # 'arch.tag' names
    if tag and name not in tagged:
        hint = close_matches(name, tagged, n=5) or (
            f" (known: {', '.join(tagged)})" if tagged else f" ({arch} has none; use {arch!r})"
        )
        raise ConfigError(f"model_name: unknown pretrained tag {tag!r} of {arch!r}{hint}")


def build_model(cfg: dict[str, Any], num_classes: int) -> nn.Module:
    """A timm model (or `_target_` class) with a `num_classes` head, frozen as fine_tuning asks."""
    spec = cfg["model_name"]
    mode = cfg.get("fine_tuning", "full")
    pretrained = bool(cfg.get("pretrained", False)) and mode != "scratch"
    if cfg.get("pretrained") and mode == "scratch":
        print("note: fine_tuning: scratch trains from random weights; pretrained is ignored")
    if isinstance(spec, dict):
        model = _call_target(spec, "model_name", num_classes=num_classes)
    else:
        check_model_name(spec)
        kwargs = dict(cfg.get("model_kwargs") or {})
        if _fixed_input_size(spec) and "image_size" in cfg:
            kwargs.setdefault("img_size", int(cfg["image_size"]))
        model = _create_timm(spec, pretrained, num_classes, kwargs)
    model.loaded_pretrained = pretrained and not isinstance(spec, dict)
    if mode == "head":
        if not hasattr(model, "get_classifier"):
            raise ConfigError("fine_tuning: 'head' needs a model with get_classifier() (timm)")
        model.requires_grad_(False)
        model.get_classifier().requires_grad_(True)
    return model


def _fixed_input_size(name: str) -> bool:
    """Whether a timm model is built for one input size (ViT, Swin...): it then needs
    `img_size`, and timm resamples pretrained position embeddings to it."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return bool(cfg and cfg.fixed_input_size)


def _create_timm(name: str, pretrained: bool, num_classes: int, kwargs: dict) -> nn.Module:
    import timm

    if pretrained:
        from trainer.pretrained import quiet_hub

        quiet_hub()
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        if "img_size" in str(exc):
            raise ConfigError(
                f"image_size: {name} has a fixed input size and cannot be built for another "
                f"({exc}); expected its own size, or a model without a fixed one"
            ) from None
        raise ConfigError(f"model_kwargs: {name} rejected them ({exc})") from None
    except Exception as exc:  # hub/network errors come in many types
        if not pretrained:
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"pretrained: the weights of {name!r} could not be downloaded or found in the cache "
            f"({type(exc).__name__}: {first}); set pretrained: false, or pre-download them "
            "with network access (HF_HUB_OFFLINE=0) before training offline"
        ) from None


# ---------------------------------------------------------------- optimizer


def build_optimizer(cfg: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """Optimizer through timm's factory: lr, weight_decay and momentum all applied."""
    spec = cfg["optimizer_name"]
    lr, wd, momentum = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0)), cfg.get("momentum")
    extra = dict(cfg.get("optimizer_params") or {})
    if isinstance(spec, dict):
        params = [p for p in model.parameters() if p.requires_grad]
        return _call_target(
            spec, "optimizer_name", params, lr=lr, weight_decay=wd, momentum=momentum
        )
    from timm.optim import create_optimizer_v2

    opt = optimizer_key(spec)
    if str(spec).lower() == "sgd":
        extra.setdefault("nesterov", False)
    kwargs: dict[str, Any] = {"weight_decay": wd, **extra}
    if momentum is not None:
        kwargs["momentum"] = float(momentum)
    try:
        return create_optimizer_v2(model, opt=opt, lr=lr, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer_name: cannot build {spec} ({exc})") from None


def effective_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Class, lr, momentum and weight decay read from the optimizer's parameter groups."""
    groups = optimizer.param_groups
    first = groups[0]
    lr = first.get("initial_lr", first.get("lr"))
    momentum = first.get("momentum")
    if momentum is None and first.get("beta1") is not None:
        momentum = first["beta1"]
    betas = first.get("betas")
    return {
        "optimizer": type(optimizer).__name__,
        "lr": float(lr) if lr is not None else None,
        "momentum": float(momentum) if momentum is not None else None,
        "nesterov": first.get("nesterov"),
        "betas": list(betas) if isinstance(betas, tuple | list) else None,
        "weight_decay": max(float(g.get("weight_decay", 0.0)) for g in groups),
    }


# ---------------------------------------------------------------- scheduler


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
    params = dict(cfg.get("scheduler_params") or {})
    if isinstance(spec, dict):
        spec = dict(spec)
        interval = spec.pop("interval", None)
        main = _call_target(spec, "scheduler_name", optimizer)
        return _with_warmup(optimizer, main, warmup, interval)
    info = registry.scheduler_info(None if spec is None else str(spec))
    main = None
    if info is not None:
        cls = import_target(info.target, "scheduler_name")
        accepted = inspect.signature(cls.__init__).parameters
        given = {k: v for k, v in params.items() if k in accepted and v is not None}
        ctx = registry.ScheduleContext(
            float(cfg["lr"]), epochs, warmup, steps_per_epoch, cfg.get("monitor", "val_f1")
        )
        try:
            main = cls(optimizer, **info.prepare(ctx, given))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"scheduler_params: {cls.__name__} rejected them ({exc})") from None
    return _with_warmup(optimizer, main, warmup, None)


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
    for name in inspect.signature(type(scheduler).__init__).parameters:
        if name in ("self", "optimizer", "last_epoch", "verbose"):
            continue
        value = getattr(scheduler, name, None)
        if value is None and name == "min_lr":
            value = getattr(scheduler, "min_lrs", None)
        if isinstance(value, bool | int | float | str):
            out[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
            out[name] = list(value)
    info = _info_of(scheduler)
    if info is not None and info.read_back is not None:
        out.update(info.read_back(scheduler))
    return out


# ---------------------------------------------------------------- loss


def class_weights(
    cfg: dict[str, Any], labels: torch.Tensor, num_classes: int
) -> torch.Tensor | None:
    """None, sklearn's 'balanced' weights, or an explicit list, per `class_weighting`."""
    spec = cfg.get("class_weighting")
    if spec is None or spec is False or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, list):
        if len(spec) != num_classes:
            raise ConfigError(f"class_weighting: expected {num_classes} weights, got {len(spec)}")
        return torch.tensor(spec, dtype=torch.float32)
    if spec is True or (isinstance(spec, str) and spec.lower() == "balanced"):
        import numpy as np
        from sklearn.utils.class_weight import compute_class_weight

        y = labels.numpy()
        weights = np.ones(num_classes, dtype="float32")
        present = np.unique(y)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
        return torch.from_numpy(weights)
    raise ConfigError(f"class_weighting: expected none, balanced or a list, got {spec!r}")


def build_criterion(cfg: dict[str, Any], weight: torch.Tensor | None) -> nn.Module:
    """CrossEntropyLoss, FocalLoss(focal_alpha, focal_gamma) or LabelSmoothingLoss(label_smooth)."""
    spec = cfg.get("criterion", "CrossEntropyLoss")
    if isinstance(spec, dict):
        return _call_target(spec, "criterion", weight=weight)
    info = registry.loss_info(str(spec))
    return import_target(info.target, "criterion")(**info.kwargs(cfg), weight=weight)


def effective_criterion(criterion: nn.Module) -> dict[str, Any]:
    """Loss class and its parameters, read from the loss object."""

    def num(name: str) -> float | None:
        value = getattr(criterion, name, None)
        return float(value) if isinstance(value, int | float) else None

    weight = getattr(criterion, "weight", None)
    return {
        "criterion": type(criterion).__name__,
        "focal_alpha": num("alpha"),
        "focal_gamma": num("gamma"),
        "label_smoothing": num("label_smoothing"),
        "class_weights": weight.tolist() if isinstance(weight, torch.Tensor) else None,
    }


def optimizer_key(name: Any) -> str:
    """timm's name for a configured optimizer (ours or any of timm's, as the schema lists them),
    refused with close matches otherwise."""
    return registry.timm_optimizer(str(name))


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
    warmup = warmup_epochs(cfg)
    if warmup and warmup >= cfg["epochs"]:
        where = "scheduler_params.warmup_epochs" if warmup != cfg.get("warmup_epochs") else ""
        raise ConfigError(
            f"{where or 'warmup_epochs'}: expected fewer than epochs ({cfg['epochs']}), "
            f"got {warmup}"
        )

"""The optimizer through timm's factory (lr, weight_decay and momentum all applied), and the
values read back from the optimizer object for result.json."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer import registry
from trainer.errors import ConfigError
from trainer.parts.targets import call_target


def build_optimizer(cfg: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """Optimizer through timm's factory: lr, weight_decay and momentum all applied."""
    spec = cfg["optimizer_name"]
    lr, wd, momentum = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0)), cfg.get("momentum")
    extra = dict((cfg.get("optimizer_params") or {}).items())  # .items(): each one read
    if isinstance(spec, dict):
        params = [p for p in model.parameters() if p.requires_grad]
        return call_target(
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


def optimizer_key(name: Any) -> str:
    """timm's name for a configured optimizer (ours or any of timm's, as the schema lists them),
    refused with close matches otherwise."""
    return registry.timm_optimizer(str(name))

"""The loss named by `criterion` (a registry record or a `_target_` class) with its class
weights, and the values read back from the loss object for result.json."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer.build import registry
from trainer.build.targets import call_target, import_target
from trainer.errors import ConfigError


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
        return call_target(spec, "criterion", weight=weight)
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

"""The losses: the two torch lacks under the names the categories use, the loss named by
`criterion` (a registry record or a `_target_` class) with its class weights, its soft-target
form under mixup/cutmix, and the values read back from the loss object for result.json."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer import registry
from trainer.config import mixup_active
from trainer.errors import ConfigError
from trainer.parts.targets import call_target, import_target


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): alpha * (1 - p_t)^gamma * CE, down-weighting easy examples."""

    def __init__(
        self, alpha: float | None = 1.0, gamma: float = 2.0, weight: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.alpha = 1.0 if alpha is None else float(alpha)
        self.gamma = float(gamma)
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1)
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)
        ce = -log_pt if self.weight is None else -log_pt * self.weight[target]
        return (self.alpha * (1.0 - log_pt.exp()).pow(self.gamma) * ce).mean()


class LabelSmoothingLoss(nn.CrossEntropyLoss):
    """Cross-entropy against smoothed targets; `smoothing` is torch's `label_smoothing`."""

    def __init__(self, smoothing: float = 0.1, weight: torch.Tensor | None = None) -> None:
        super().__init__(weight=weight, label_smoothing=float(smoothing))
        self.smoothing = float(smoothing)


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
    """CrossEntropyLoss(label_smooth), FocalLoss(focal_alpha, focal_gamma) or
    LabelSmoothingLoss(label_smooth);
    with mixup/cutmix their soft-target forms (targets come as (N, classes) probabilities)."""
    spec = cfg.get("criterion", "CrossEntropyLoss")
    if isinstance(spec, dict):
        return call_target(spec, "criterion", weight=weight)
    info = registry.loss_info(str(spec))
    loss = import_target(info.target, "criterion")(**info.kwargs(cfg), weight=weight)
    return soft_target_criterion(loss, weight) if mixup_active(cfg) else loss


class SoftTargetFocalLoss(FocalLoss):
    """Focal loss over soft targets: -alpha * sum_c y_c (1 - p_c)^gamma log p_c (class
    weights multiply each class's term); hard integer targets still work."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype in (torch.long, torch.int):
            return super().forward(logits, target)
        log_p = F.log_softmax(logits.float(), dim=-1)
        term = -target.float() * (1.0 - log_p.exp()).pow(self.gamma) * log_p
        if self.weight is not None:
            term = term * self.weight
        return (self.alpha * term.sum(1)).mean()


def soft_target_criterion(loss: nn.Module, weight: torch.Tensor | None) -> nn.Module:
    """The soft-target loss that replaces `loss` under mixup/cutmix: timm's
    SoftTargetCrossEntropy (label smoothing moves into the mixed targets), or focal over soft
    targets."""
    if isinstance(loss, FocalLoss):
        return SoftTargetFocalLoss(loss.alpha, loss.gamma, weight)
    if weight is not None:
        raise ConfigError(
            "class_weighting: not supported with mixup/cutmix and a cross-entropy loss "
            "(SoftTargetCrossEntropy has no class weights); use weighted_random_sampler"
        )
    from timm.loss import SoftTargetCrossEntropy

    return SoftTargetCrossEntropy()


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

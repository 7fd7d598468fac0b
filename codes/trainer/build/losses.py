"""The two losses torch lacks under the names the categories use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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

"""Mixup / CutMix on training batches with timm's `Mixup` (soft targets, label smoothing folded
in as timm's train.py does); the loss becomes a soft-target one (trainer/parts/losses.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from trainer.config import mix_flags
from trainer.registry import label_smoothing


def build_mixup(cfg: dict[str, Any], num_classes: int) -> Any:
    """timm's Mixup as configured, or None when neither mixup nor cutmix is on."""
    mixup, cutmix = mix_flags(cfg)
    if not (mixup or cutmix):
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=float(cfg.get("mixup_alpha", 0.8)) if mixup else 0.0,
        cutmix_alpha=float(cfg.get("cutmix_alpha", 1.0)) if cutmix else 0.0,
        prob=float(cfg.get("mix_prob", 1.0)),
        switch_prob=float(cfg.get("switch_prob", 0.5)),
        mode="batch",
        label_smoothing=label_smoothing(cfg),  # the hard-target loss's, folded in
        num_classes=num_classes,
    )


def describe_mixup(mixup: Any) -> dict[str, Any] | None:
    """result.json's `mixup`, read from the Mixup object."""
    if mixup is None:
        return None
    return {
        "mixup_alpha": float(mixup.mixup_alpha),
        "cutmix_alpha": float(mixup.cutmix_alpha),
        "prob": float(mixup.mix_prob),
        "switch_prob": float(mixup.switch_prob),
        "label_smoothing": float(mixup.label_smoothing),
    }


class MixingLoader:
    """A training loader whose batches come mixed, with soft (N, classes) targets. An odd
    batch (timm mixes pairs) gets the smoothed one-hot targets unmixed."""

    def __init__(self, loader: Any, mixup: Any) -> None:
        self.loader = loader
        self.mixup = mixup

    def __getattr__(self, name: str) -> Any:  # batch_size, device, sampler, set_epoch ...
        return getattr(self.__dict__["loader"], name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from timm.data.mixup import mixup_target

        for x, y in self.loader:
            if len(y) % 2 == 0:
                yield self.mixup(x, y)
            else:
                m = self.mixup
                yield x, mixup_target(y, m.num_classes, 1.0, m.label_smoothing)

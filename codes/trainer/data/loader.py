"""Serve batches from the decoded images: index slices of one in-memory tensor, converted,
augmented and normalised on the training device. No DataLoader workers sit between the data
and the model, which keeps the loop within a few percent of the bare forward+backward speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.dataset import ImageSet


class Augmenter:
    """Flips and small rotations/shifts on whole batches (suits scanned documents)."""

    def __init__(self, spec: dict[str, Any] | bool | None, generator: torch.Generator) -> None:
        spec = {} if spec in (None, False) else ({} if spec is True else dict(spec))
        self.enabled = bool(spec.pop("enabled", True)) and bool(spec)
        self.hflip = float(spec.get("hflip", 0.0))
        self.vflip = float(spec.get("vflip", 0.0))
        self.degrees = float(spec.get("rotate_degrees", 0.0))
        self.translate = float(spec.get("translate", 0.0))
        self.generator = generator

    def _rand(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.rand(n, generator=self.generator).to(device, non_blocking=True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        n = x.shape[0]
        if self.hflip > 0:
            flip = (self._rand(n, x.device) < self.hflip).view(n, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        if self.vflip > 0:
            flip = (self._rand(n, x.device) < self.vflip).view(n, 1, 1, 1)
            x = torch.where(flip, x.flip(-2), x)
        if self.degrees > 0 or self.translate > 0:
            angle = (self._rand(n, x.device) * 2 - 1) * math.radians(self.degrees)
            shift = torch.rand(n, 2, generator=self.generator).to(x.device) * 2 - 1
            shift = shift * self.translate * 2  # affine_grid spans [-1, 1]
            cos, sin = torch.cos(angle), torch.sin(angle)
            theta = torch.stack(
                [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)],
                1,
            ).to(x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return x


class TensorLoader:
    """Shuffled batches of in-memory images, normalised (and augmented) on the device."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        device: torch.device,
        mean: list[float],
        std: list[float],
        shuffle: bool = False,
        augment: Augmenter | None = None,
        seed: int = 0,
    ) -> None:
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0
        # A last batch of one breaks BatchNorm in training; fold it into the previous epoch.
        n = len(self.labels)
        self.drop_last = shuffle and n % batch_size == 1 and n > 1

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def dataset_size(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = None
        for b in range(len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[sl] if order is not None else None
            raw = self.images[idx] if idx is not None else self.images[sl]
            y = self.labels[idx] if idx is not None else self.labels[sl]
            x = raw.float()
            if self.augment is not None:
                x = self.augment(x)
            x = (x - self.mean) / self.std
            yield x, y


def make_loaders(
    data: ImageSet,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: dict[str, Any],
    device: torch.device,
) -> tuple[TensorLoader, TensorLoader]:
    """The shuffled, augmented training loader and the plain validation loader of one split."""
    seed = cfg.get("random_seed", 42)
    mean, std = cfg.get("norm_mean", [0.5] * 3), cfg.get("norm_std", [0.5] * 3)
    tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    augment = Augmenter(cfg.get("augment"), torch.Generator().manual_seed(seed + 1))
    train = TensorLoader(
        data.images[tr],
        data.labels[tr],
        cfg["batch_size"],
        device,
        mean,
        std,
        shuffle=True,
        augment=augment if augment.enabled else None,
        seed=seed,
    )
    val = TensorLoader(
        data.images[va], data.labels[va], max(cfg["batch_size"], 256), device, mean, std
    )
    return train, val

"""Serve batches from the decoded images: index slices of one in-memory tensor, converted,
augmented and normalised on the training device. No DataLoader workers sit between the data
and the model, which keeps the loop within a few percent of the bare forward+backward speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

from trainer.data.augment import OnlineAugment, light_names, stages_of
from trainer.data.dataset import ImageSet
from trainer.data.mixing import MixingLoader, build_mixup, describe_mixup
from trainer.data.sampling import imbalance_spec, oversample, weighted_sampler
from trainer.device import loader_workers
from trainer.tta import tta_plans


class Augmenter:
    """Flips and small rotations/shifts on whole batches (suits scanned documents)."""

    def __init__(self, spec: dict[str, Any] | bool | None, generator: torch.Generator) -> None:
        # read through `spec` itself (a TrackedDict): a copy would hide the reads, and
        # unused_keys would call augment.hflip "not honoured" while it flips every batch
        spec = spec if isinstance(spec, dict) else {}
        self.enabled = bool(spec.get("enabled", True)) and any(k != "enabled" for k in spec)
        on = self.enabled  # switched off, its values are not read: unused_keys says so
        self.hflip = float(spec.get("hflip", 0.0)) if on else 0.0
        self.vflip = float(spec.get("vflip", 0.0)) if on else 0.0
        self.degrees = float(spec.get("rotate_degrees", 0.0)) if on else 0.0
        self.translate = float(spec.get("translate", 0.0)) if on else 0.0
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


@dataclass(frozen=True, eq=False)
class Batches:
    """What every loader starts from: the images (uint8, N x C x H x W) and labels to batch,
    the batch size, the device the batches go to, and the per-channel mean and std (0..1)
    that normalise them there."""

    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    device: torch.device
    mean: list[float]
    std: list[float]

    def norm(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as (1, C, 1, 1) tensors on the device, in the images' 0..255 units."""
        mean = torch.tensor(self.mean, device=self.device).view(1, -1, 1, 1) * 255.0
        std = torch.tensor(self.std, device=self.device).view(1, -1, 1, 1) * 255.0
        return mean, std


class TensorLoader:
    """Shuffled batches of in-memory images, normalised (and augmented) on the device."""

    def __init__(
        self,
        batches: Batches,
        shuffle: bool = False,
        augment: Augmenter | None = None,
        seed: int = 0,
        sampler: Any = None,
    ) -> None:
        device, batch_size = batches.device, batches.batch_size
        self.images = batches.images.to(device)
        self.labels = batches.labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)
        # The epoch's order: a RandomSampler on this generator draws exactly randperm(n).
        if sampler is None and shuffle:
            sampler = RandomSampler(range(len(self.labels)), generator=self.generator)
        elif getattr(sampler, "generator", None) is not None:
            self.generator = sampler.generator  # the order's state, for a resumed run
        self.sampler = sampler
        self.mean, self.std = batches.norm()
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
        if self.sampler is not None:
            order = torch.as_tensor(list(self.sampler), dtype=torch.long).to(self.device)
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


class _AugmentedImages(Dataset):
    """Cached uint8 images (N, H, W, 3) through the policy pipeline of the epoch's stage."""

    def __init__(self, images: np.ndarray, labels: torch.Tensor, augment: OnlineAugment) -> None:
        self.images = images
        self.labels = labels
        self.augment = augment
        self.epoch = torch.zeros((), dtype=torch.long).share_memory_()  # seen by the workers

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.augment(self.images[i], int(self.epoch))
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1), self.labels[i]


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.augment.reseed(int(info.seed % 2**31))


class AugmentedLoader:
    """Batches of the albumentations policies, augmented per image on the CPU (in
    `num_workers` worker processes, or in this one with 0), normalised on the device."""

    def __init__(
        self, batches: Batches, augment: OnlineAugment, sampler: Any, workers: int, seed: int
    ) -> None:
        device, batch_size = batches.device, batches.batch_size
        self.batch_size = batch_size
        self.device = device
        self.online = augment
        hwc = batches.images.permute(0, 2, 3, 1).contiguous().numpy()
        self.dataset = _AugmentedImages(hwc, batches.labels, augment)
        n = len(batches.labels)
        self.sampler = sampler or RandomSampler(
            range(n), generator=torch.Generator().manual_seed(seed)
        )
        self.generator = self.sampler.generator  # the order's state, for a resumed run
        self.loader = DataLoader(
            self.dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
            drop_last=n % batch_size == 1 and n > 1,  # a batch of one breaks BatchNorm
            worker_init_fn=_worker_init if workers > 0 else None,
        )
        self.mean, self.std = batches.norm()
        self.epoch = 1
        augment.reseed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset_size(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> str:
        """Pick the stage of `epoch` (before the epoch's iterator starts); its name."""
        self.epoch = epoch
        self.dataset.epoch.fill_(epoch)
        return self.online.stage_name(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for raw, y in self.loader:
            x = raw.to(self.device, non_blocking=True).float()
            yield (x - self.mean) / self.std, y.to(self.device, non_blocking=True)


def _train_data(
    data: ImageSet, train_idx: np.ndarray, cfg: dict[str, Any], seed: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, int] | None]:
    """The split's training images and labels, grown by `class_imbalance` when configured."""
    tr = torch.as_tensor(train_idx)
    images, labels = data.images[tr], data.labels[tr]
    spec = imbalance_spec(cfg)
    if spec is None:
        return images, labels, None
    images, labels, counts = oversample(images, labels, *spec, data.num_classes, seed)
    return images, labels, counts


def make_loaders(
    data: ImageSet,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: dict[str, Any],
    device: torch.device,
) -> tuple[Any, TensorLoader]:
    """The shuffled, augmented training loader and the plain validation loader of one split.

    Light augmentation (`augment`, on the device) unless `online_augmentation` or
    `dynamic_augmentation` picks the albumentations policies (data/augment.py); mixup/cutmix
    wrap the training loader; the validation loader carries the TTA plans (tta.py)."""
    mean, std = cfg.get("norm_mean", [0.5] * 3), cfg.get("norm_std", [0.5] * 3)
    train = _train_loader(data, train_idx, cfg, device, (mean, std))
    mixup = build_mixup(cfg, data.num_classes)
    if mixup is not None:
        train = MixingLoader(train, mixup)
    va = torch.as_tensor(val_idx)
    val = TensorLoader(
        Batches(data.images[va], data.labels[va], max(cfg["batch_size"], 256), device, mean, std)
    )
    val.tta, val.test_tta = tta_plans(cfg)
    return train, val


def _train_loader(
    data: ImageSet,
    train_idx: np.ndarray,
    cfg: dict[str, Any],
    device: torch.device,
    norm: tuple[list[float], list[float]],
) -> Any:
    """The split's training loader before mixing: light augmentation on the device, or the
    albumentations policies' stages per image; it says which (`augmentation`, `oversampled`)."""
    seed = cfg.get("random_seed", 42)
    images, labels, oversampled = _train_data(data, train_idx, cfg, seed)
    sampler = weighted_sampler(labels, seed) if cfg.get("weighted_random_sampler") else None
    stages = stages_of(cfg)
    batches = Batches(images, labels, cfg["batch_size"], device, *norm)
    train: Any
    if stages is None:
        augment = Augmenter(cfg.get("augment"), torch.Generator().manual_seed(seed + 1))
        train = TensorLoader(
            batches,
            shuffle=True,
            augment=augment if augment.enabled else None,
            seed=seed,
            sampler=sampler,
        )
        train.augmentation = light_names(train.augment)
    else:
        online = OnlineAugment(stages, int(cfg["image_size"]), seed + 1)
        workers = loader_workers(cfg.get("num_workers"))
        train = AugmentedLoader(batches, online, sampler, workers, seed)
        train.augmentation = online.describe()
    train.oversampled = oversampled
    return train


def effective_data(train: Any, val: Any) -> dict[str, Any]:
    """result.json's data keys, read back from the built loaders."""
    tta, test_tta = getattr(val, "tta", None), getattr(val, "test_tta", None)
    either = tta or test_tta
    return {
        "augmentation": train.augmentation,
        "mixup": describe_mixup(getattr(train, "mixup", None)),
        "tta": None
        if either is None
        else {
            "val": list(tta.views) if tta else [],
            "test": list(test_tta.views) if test_tta else [],
            "dropout": bool(either.dropout),
        },
        "sampler": type(train.sampler).__name__ if train.sampler is not None else None,
        "oversampled": train.oversampled,
    }

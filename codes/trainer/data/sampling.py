"""Class imbalance on the training split: a WeightedRandomSampler (inverse class frequency,
seeded) and in-memory oversampling of listed classes with augmented copies (nothing is written
into data/)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from trainer.errors import ConfigError


def weighted_sampler(labels: torch.Tensor, seed: int) -> torch.utils.data.WeightedRandomSampler:
    """Draws len(labels) indices per epoch with replacement, each class equally likely."""
    counts = torch.bincount(labels)
    weights = 1.0 / counts.double()[labels]
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.WeightedRandomSampler(
        weights, num_samples=len(labels), replacement=True, generator=generator
    )


def imbalance_spec(cfg: dict[str, Any]) -> tuple[list[int], int] | None:
    """(classes, max_samples) of `class_imbalance`, or None when it is off."""
    spec = cfg.get("class_imbalance")
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(
            "class_imbalance: expected a mapping {aug_class: [...], max_samples: N}, "
            f"got {spec!r}"
        )
    classes, limit = spec.get("aug_class") or [], spec.get("max_samples")
    if not classes:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(
            f"class_imbalance.max_samples: expected a positive integer, got {limit!r}"
        )
    return [int(c) for c in classes], limit


def copy_transform(size: int, seed: int) -> Any:
    """The augmentation of an oversampled copy: cutout holes and a small affine, as a scan."""
    import albumentations as A

    from trainer.data.augment import _affine, single_threaded_cv2

    single_threaded_cv2()
    return A.Compose(
        [
            A.CoarseDropout(
                num_holes_range=(1, 2),
                hole_height_range=(0.05, 0.1),
                hole_width_range=(0.1, 0.2),
                fill=0,
                p=1.0,
            ),
            _affine(0.1, 0.05, (-10, 10), 5, 0.7),
        ],
        seed=seed,
    )


def oversample(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: list[int],
    limit: int,
    num_classes: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """Append augmented copies of each listed class until it has `limit` images; returns the
    grown images (N, 3, H, W uint8), labels and each listed class's count afterwards."""
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:  # a config written for another dataset (the original's 17 classes): say, go on
        print(
            f"warning: class_imbalance.aug_class: class(es) {', '.join(map(str, bad))} not in "
            f"this data (classes 0..{num_classes - 1}): nothing to oversample for them",
            file=sys.stderr,
        )
        classes = [c for c in classes if c not in bad]
    rng = np.random.default_rng(seed)
    transform = copy_transform(images.shape[-1], seed)
    new_images, new_labels, counts = [], [], {}
    for cls in classes:
        where = (labels == cls).nonzero().flatten().numpy()
        missing = limit - len(where)
        if missing > 0 and len(where):
            picks = rng.choice(where, size=missing, replace=missing > len(where))
            for i in picks:
                hwc = images[int(i)].permute(1, 2, 0).numpy()
                out = transform(image=np.ascontiguousarray(hwc))["image"]
                new_images.append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1))
                new_labels.append(cls)
        counts[str(cls)] = max(limit, len(where)) if len(where) else 0
    if new_images:
        images = torch.cat([images, torch.stack(new_images)])
        labels = torch.cat([labels, torch.tensor(new_labels, dtype=labels.dtype)])
    return images, labels, counts

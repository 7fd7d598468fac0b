"""Named augmentation policies for document images (scanned, rotated, noisy), with albumentations.

`augmentation: {eda: true, ...}` with `online_augmentation: true` picks the active policies;
each training image gets `OneOf(active policies, p=0.85)` and then the resize (longest side to
image_size, white padding to a square), on the cached uint8 arrays (H, W, 3), in the loader
workers. `dynamic_augmentation: {enabled: true, policies: {STAGE: {end_epoch, augs}}}` changes
the active policies by epoch: epoch e (1-based) uses the first stage with e <= end_epoch, and
the last stage after all of them; the `augmentation` policies switched on join every stage.
`online_augmentation: false` keeps the light (torch) augmentation instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.errors import ConfigError

WHITE = 255  # paper: padding and the area a rotation uncovers
ONE_OF_P = 0.85  # the original's: 15 % of the images are seen as they are


def _flips(p: float) -> list[Any]:
    import albumentations as A

    return [A.HorizontalFlip(p=p), A.VerticalFlip(p=p), A.Transpose(p=p)]


def _affine(scale: float, translate: float, rotate: tuple[float, float], shear: float, p: float):
    import albumentations as A
    import cv2

    return A.Affine(
        scale=(1 - scale, 1 + scale),
        translate_percent=(-translate, translate),
        rotate=rotate,
        shear=(-shear, shear),
        border_mode=cv2.BORDER_CONSTANT,
        fill=WHITE,
        p=p,
    )


def _easiest() -> list[Any]:
    import albumentations as A
    import cv2

    rotate = A.Rotate(limit=(-20, 30), border_mode=cv2.BORDER_CONSTANT, fill=WHITE, p=0.8)
    return [rotate, *_flips(0.5)]


def _stilleasy() -> list[Any]:
    return [_affine(0.2, 0.1, (-15, 20), 10, 0.8), *_flips(0.5)]


def _basic() -> list[Any]:
    import albumentations as A

    return [
        A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        _affine(0.2, 0.1, (-15, 20), 10, 0.5),
        *_flips(0.5),
    ]


def _eda() -> list[Any]:
    import albumentations as A

    return [
        A.ColorJitter(brightness=0.1, contrast=0.07, saturation=0.07, hue=0.07, p=1.0),
        _affine(0.15, 0.05, (-20, 30), 5, 1.0),
        *_flips(0.6),
        A.OneOf(
            [A.GaussianBlur(sigma_limit=(0.5, 2.5), p=1.0), A.Blur(blur_limit=(3, 7), p=1.0)],
            p=1.0,
        ),
        A.GaussNoise(std_range=(0.02, 0.1), p=1.0),
    ]


def _morphology(operation: str) -> Callable[[], list[Any]]:
    """Dilation grows the white paper (thins the ink), erosion grows the ink (a heavy scan)."""

    def build() -> list[Any]:
        import albumentations as A

        return [
            A.Morphological(scale=(2, 3), operation=operation, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=1.0),
            _affine(0.15, 0.05, (-20, 30), 5, 0.9),
            *_flips(0.5),
        ]

    return build


def _middle() -> list[Any]:
    import albumentations as A
    import cv2

    return [
        A.OneOf(
            [
                A.GaussNoise(std_range=(0.02, 0.12), p=1.0),
                A.ISONoise(color_shift=(0.01, 0.05), intensity=(0.1, 0.5), p=1.0),
            ],
            p=0.3,
        ),
        A.OneOf(
            [
                A.Perspective(scale=(0.05, 0.1), fill=WHITE, p=1.0),
                A.GridDistortion(
                    num_steps=5, distort_limit=0.2, border_mode=cv2.BORDER_CONSTANT, fill=WHITE
                ),
            ],
            p=0.3,
        ),
        _affine(0.2, 0.0625, (-90, 90), 5, 1.0),
        A.ImageCompression(quality_range=(60, 95), p=0.3),
        *_flips(0.5),
    ]


def _aggressive() -> list[Any]:
    import albumentations as A

    return [
        A.CoarseDropout(
            num_holes_range=(1, 5),
            hole_height_range=(0.05, 0.15),
            hole_width_range=(0.05, 0.2),
            fill=0,
            p=0.9,
        ),
        A.OneOf(
            [
                _affine(0.3, 0.15, (-45, 45), 10, 1.0),
                A.Perspective(scale=(0.05, 0.1), fill=WHITE, p=1.0),
            ],
            p=0.9,
        ),
        *_flips(0.5),
        A.OneOf(
            [
                A.GaussNoise(std_range=(0.02, 0.15), p=1.0),
                A.ISONoise(color_shift=(0.01, 0.2), intensity=(0.1, 0.5), p=1.0),
            ],
            p=0.3,
        ),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 7), p=1.0),
                A.MotionBlur(blur_limit=(3, 7), p=1.0),
                A.Downscale(scale_range=(0.5, 0.75), p=1.0),
                A.ImageCompression(quality_range=(30, 70), p=1.0),
            ],
            p=0.5,
        ),
        A.OneOf(
            [
                A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=1.0),
                A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1, p=1.0),
                A.CLAHE(clip_limit=4.0, tile_grid_size=(8, 8), p=1.0),
            ],
            p=0.8,
        ),
    ]


# The original's names, in its order; each builds a fresh list of transforms.
POLICIES: dict[str, Callable[[], list[Any]]] = {
    "eda": _eda,
    "dilation": _morphology("dilation"),
    "erosion": _morphology("erosion"),
    "easiest": _easiest,
    "stilleasy": _stilleasy,
    "basic": _basic,
    "middle": _middle,
    "aggressive": _aggressive,
}
MIX_KEYS = ("mixup", "cutmix")  # under `augmentation:` too, but batch-level: data/mixing.py


def resize_transforms(size: int) -> list[Any]:
    """Longest side to `size`, then white padding to a square (the original's resize)."""
    import albumentations as A
    import cv2

    return [
        A.LongestMaxSize(max_size=size),
        A.PadIfNeeded(min_height=size, min_width=size, border_mode=cv2.BORDER_CONSTANT, fill=WHITE),
    ]


def single_threaded_cv2() -> None:
    """OpenCV without its thread pool: a pool used before the loader forks its workers
    deadlocks them, and each worker is one core anyway."""
    import cv2

    cv2.setNumThreads(0)


def policy_pipeline(names: list[str], size: int, seed: int) -> Any:
    """Compose([OneOf(policies, p=0.85), LongestMaxSize, PadIfNeeded]), seeded."""
    import albumentations as A

    single_threaded_cv2()

    chosen = []
    for name in names:
        policy = A.Compose(POLICIES[name]())
        policy.policy_name = name  # what result.json reads back
        chosen.append(policy)
    head = [A.OneOf(chosen, p=ONE_OF_P)] if chosen else []
    return A.Compose([*head, *resize_transforms(size)], seed=seed)


@dataclass
class Stage:
    name: str
    until_epoch: int | None  # None: every epoch (no dynamic schedule)
    augs: list[str]


def _check_names(names: Any, where: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: expected a list of policy names, got {names!r}")
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ConfigError(
            f"{where}: unknown augmentation policy {unknown[0]!r} "
            f"(expected one of {', '.join(POLICIES)})"
        )
    return list(names)


def dynamic_enabled(cfg: dict[str, Any]) -> bool:
    spec = cfg.get("dynamic_augmentation")
    return isinstance(spec, dict) and bool(spec.get("enabled", False))


def default_stages(epochs: int) -> dict[str, dict[str, Any]]:
    """The original config's weak, middle and strong stages over thirds of the run, for a
    dynamic augmentation enabled without stages of its own."""
    third = max(1, round(epochs / 3))
    return {"weak": {"end_epoch": third, "augs": ["easiest", "basic"]},
            "middle": {"end_epoch": max(third, 2 * third), "augs": ["stilleasy", "middle"]},
            "strong": {"end_epoch": max(epochs, 2 * third + 1), "augs": ["aggressive"]}}


def static_policies(cfg: dict[str, Any]) -> list[str]:
    """The policies `augmentation: {NAME: true, ...}` turns on, in config order (every entry
    read: a false one is honoured by leaving its policy out; mixup/cutmix are batch-level)."""
    spec = cfg.get("augmentation") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"augmentation: expected a mapping of policy: true/false, got {spec!r}")
    pairs = list(spec.items())
    unknown = [k for k, _ in pairs if k not in POLICIES and k not in MIX_KEYS]
    if unknown:
        raise ConfigError(
            f"augmentation.{unknown[0]}: unknown augmentation policy "
            f"(expected one of {', '.join((*POLICIES, *MIX_KEYS))})"
        )
    return [k for k, on in pairs if on and k in POLICIES]


def online_switch(cfg: dict[str, Any], dynamic: bool) -> bool:
    """`online_augmentation`: the policies' master switch (the original's on/off run-name
    part). Unset, it follows the dynamic schedule; false with a dynamic schedule on is a
    contradiction, refused rather than one of them silently dropped."""
    online = cfg.get("online_augmentation")
    if online is None:
        return dynamic
    if dynamic and not online:
        raise ConfigError(
            "online_augmentation: false, but dynamic_augmentation.enabled is true (its stages "
            "are applied online); expected online_augmentation: true, or dynamic off"
        )
    return bool(online)


def stages_of(cfg: dict[str, Any]) -> list[Stage] | None:
    """The policy stages the config asks for, or None for the light (torch) augmentation.

    With a dynamic schedule, the `augmentation` policies switched on join every stage's
    OneOf (the original trained with them whatever the schedule, and the runner's
    `aug_dynamic_eda` asks for both)."""
    dynamic = dynamic_enabled(cfg)
    if not online_switch(cfg, dynamic):
        return None  # the policies stay unread: unused_keys shows they changed nothing
    static = static_policies(cfg)
    if not dynamic:
        return [Stage("online", None, static)]
    policies = cfg["dynamic_augmentation"].get("policies")
    if policies is None:  # enabled alone (the original's category option): its stages
        policies = default_stages(int(cfg.get("epochs") or 3))
    if not isinstance(policies, dict) or not policies:
        raise ConfigError(
            "dynamic_augmentation.policies: expected a mapping of stages "
            "{NAME: {end_epoch, augs}} when enabled"
        )
    stages = []
    for name, stage in policies.items():
        where = f"dynamic_augmentation.policies.{name}"
        if not isinstance(stage, dict):
            raise ConfigError(f"{where}: expected a mapping with end_epoch and augs")
        end = stage.get("end_epoch")
        if isinstance(end, bool) or not isinstance(end, int) or end < 1:
            raise ConfigError(f"{where}.end_epoch: expected a positive integer, got {end!r}")
        augs = _check_names(stage.get("augs"), f"{where}.augs")
        stages.append(Stage(str(name), end, augs + [a for a in static if a not in augs]))
    return sorted(stages, key=lambda s: s.until_epoch or 0)


class OnlineAugment:
    """The per-image pipeline of each stage; `stage_index(epoch)` picks the one in use."""

    def __init__(self, stages: list[Stage], size: int, seed: int) -> None:
        self.stages = stages
        self.size = size
        self.seed = seed
        self.pipelines = [policy_pipeline(s.augs, size, seed + i) for i, s in enumerate(stages)]

    def stage_index(self, epoch: int) -> int:
        for i, stage in enumerate(self.stages):
            if stage.until_epoch is None or epoch <= stage.until_epoch:
                return i
        return len(self.stages) - 1

    def stage_name(self, epoch: int) -> str:
        return self.stages[self.stage_index(epoch)].name

    def reseed(self, seed: int) -> None:
        """A worker's own random stream (forked workers would repeat each other's)."""
        for i, pipeline in enumerate(self.pipelines):
            pipeline.set_random_seed(seed + i)

    def __call__(self, image: np.ndarray, epoch: int) -> np.ndarray:
        return self.pipelines[self.stage_index(epoch)](image=image)["image"]

    def policies_at(self, epoch: int) -> list[str]:
        """The policies of the pipeline `epoch` runs, read from its built OneOf."""
        return self._names(self.pipelines[self.stage_index(epoch)])

    def describe(self) -> list[str] | list[dict[str, Any]]:
        """result.json's `augmentation`: the active policies in order (read back from the
        built OneOf), or the schedule [{until_epoch, augs}] of a dynamic one."""
        built = [self._names(p) for p in self.pipelines]
        if len(self.stages) == 1 and self.stages[0].until_epoch is None:
            return built[0]
        pairs = zip(self.stages, built, strict=True)
        return [{"until_epoch": s.until_epoch, "augs": b} for s, b in pairs]

    def _names(self, pipeline: Any) -> list[str]:
        import albumentations as A

        one_of = next((t for t in pipeline.transforms if isinstance(t, A.OneOf)), None)
        if one_of is None:
            return []
        return [str(getattr(c, "policy_name", type(c).__name__)) for c in one_of.transforms]


def light_names(augmenter: Any) -> list[str]:
    """The light (torch, on-device) augmentation's active transforms, in the order applied."""
    if augmenter is None or not augmenter.enabled:
        return []
    parts = [("hflip", augmenter.hflip), ("vflip", augmenter.vflip)]
    parts += [("rotate", augmenter.degrees), ("translate", augmenter.translate)]
    return [name for name, value in parts if value > 0]

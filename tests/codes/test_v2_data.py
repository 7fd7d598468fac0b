"""The V2 data side: albumentations policies, dynamic stages, mixup/cutmix, TTA, samplers and
oversampling; each reported in result.json's `effective` and each changing what is computed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from trainer import schema
from trainer.data import ImageSet
from trainer.data.augment import POLICIES, OnlineAugment, Stage, stages_of
from trainer.data.loader import AugmentedLoader, effective_data, make_loaders
from trainer.data.sampling import oversample, weighted_sampler
from trainer.errors import ConfigError
from trainer.tta import VIEWS, TTAPlan, evaluate_tta, tta_plans

CPU = torch.device("cpu")


def image_set(counts: list[int], size: int = 16, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])
    images = torch.randint(0, 256, (len(labels), 3, size, size), generator=g, dtype=torch.uint8)
    return ImageSet(
        [str(i) for i in range(len(labels))], images, labels, [str(c) for c in range(len(counts))]
    )


def base_cfg(**extra: Any) -> dict[str, Any]:
    return {"image_size": 16, "batch_size": 8, "random_seed": 3, "augment": None, **extra}


def test_schema_names_match_the_built_ones():
    assert tuple(POLICIES) == schema.AUG_POLICIES
    assert tuple(VIEWS) == schema.TTA_VIEWS


@pytest.mark.parametrize("name", list(POLICIES))
def test_each_policy_builds_and_changes_a_document(name):
    rng = np.random.default_rng(0)
    page = np.full((40, 30, 3), 255, np.uint8)
    page[5:35:4, 3:27] = rng.integers(0, 80, (8, 24, 3))  # lines of ink
    aug = OnlineAugment([Stage("s", None, [name])], 32, seed=1)
    outs = [aug(page, 1) for _ in range(8)]
    assert all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in outs)
    plain = OnlineAugment([Stage("s", None, [])], 32, seed=1)(page, 1)
    assert plain[0, 0].tolist() == [255, 255, 255]  # white padding of the resize
    assert any(not np.array_equal(o, plain) for o in outs)


def test_active_policies_in_config_order_and_light_fallback():
    cfg = base_cfg(
        online_augmentation=True,
        augmentation={"basic": True, "eda": True, "erosion": False, "mixup": False},
    )
    assert stages_of(cfg)[0].augs == ["basic", "eda"]
    train, val = make_loaders(image_set([6, 6]), np.arange(10), np.arange(10, 12), cfg, CPU)
    assert isinstance(train, AugmentedLoader)
    assert effective_data(train, val)["augmentation"] == ["basic", "eda"]
    light = base_cfg(
        online_augmentation=False,
        augment={"rotate_degrees": 5, "translate": 0.1},
        augmentation={"eda": True},
    )
    train, val = make_loaders(image_set([6, 6]), np.arange(10), np.arange(10, 12), light, CPU)
    assert not isinstance(train, AugmentedLoader)
    assert effective_data(train, val)["augmentation"] == ["rotate", "translate"]
    with pytest.raises(ConfigError, match="augmentation.edaa"):
        stages_of(base_cfg(online_augmentation=True, augmentation={"edaa": True}))


def test_dynamic_stage_changes_at_end_epoch():
    cfg = base_cfg(
        dynamic_augmentation={
            "enabled": True,
            "policies": {
                "strong": {"end_epoch": 4, "augs": ["aggressive"]},
                "weak": {"end_epoch": 2, "augs": ["easiest", "basic"]},
            },
        }
    )
    train, val = make_loaders(image_set([6, 6]), np.arange(10), np.arange(10, 12), cfg, CPU)
    assert [train.set_epoch(e) for e in (1, 2, 3, 4, 5)] == [
        "weak",
        "weak",
        "strong",
        "strong",
        "strong",
    ]
    assert effective_data(train, val)["augmentation"] == [
        {"until_epoch": 2, "augs": ["easiest", "basic"]},
        {"until_epoch": 4, "augs": ["aggressive"]},
    ]
    # the pipeline each epoch runs (read from its built OneOf) switches after end_epoch 2
    assert [train.online.policies_at(e) for e in (1, 2, 3, 5)] == [
        ["easiest", "basic"], ["easiest", "basic"], ["aggressive"], ["aggressive"]]
    train.set_epoch(3)
    assert int(train.dataset.epoch) == 3  # the workers' shared copy
    x, y = next(iter(train))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 16, 16)
    with pytest.raises(ConfigError, match="end_epoch"):
        stages_of({"dynamic_augmentation": {"enabled": True, "policies": {"w": {"augs": ["eda"]}}}})


def _matches(batch: torch.Tensor, originals: torch.Tensor) -> list[bool]:
    """Per image of a normalised batch (mean = std = 0.5): whether it is one of `originals`."""
    raw = (batch * 127.5 + 127.5).round().to(torch.uint8)
    return [any(torch.equal(img, o) for o in originals) for img in raw]


def test_augmented_loader_workers_use_the_stage():
    """Two persistent worker processes make the batches; the stage set after they started
    reaches them: epoch 1 (no policy) serves the cached images as they are, epoch 2 (easiest:
    rotations and flips) serves transformed ones."""
    data = image_set([8, 8])
    cfg = base_cfg(num_workers=2, dynamic_augmentation={"enabled": True, "policies": {
        "plain": {"end_epoch": 1, "augs": []},
        "flips": {"end_epoch": 2, "augs": ["easiest"]}}})
    train, _ = make_loaders(data, np.arange(16), np.arange(0), cfg, CPU)
    assert train.loader.num_workers == 2
    seen = {}
    for epoch in (1, 2):
        assert train.set_epoch(epoch) == ("plain", "flips")[epoch - 1]
        batches = list(train)
        assert type(train.loader._iterator).__name__ == "_MultiProcessingDataLoaderIter"
        ys = torch.cat([y for _, y in batches])
        assert sorted(ys.tolist()) == sorted(data.labels.tolist())
        seen[epoch] = [m for x, _ in batches for m in _matches(x, data.images)]
    assert all(seen[1])  # the identity stage: every image is a cached one
    assert sum(seen[2]) < 8  # the flips stage: most are not (15 % pass through unchanged)


def test_weighted_sampler_near_uniform_on_imbalanced_split():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    sampler = weighted_sampler(labels, seed=5)
    counts = np.bincount(labels[torch.tensor(list(sampler))].numpy(), minlength=3)
    assert counts.sum() == 1000 and (abs(counts - 1000 / 3) < 60).all(), counts
    assert list(weighted_sampler(labels, 5)) == list(weighted_sampler(labels, 5))
    data = image_set([20, 4])
    cfg = base_cfg(weighted_random_sampler=True)
    train, val = make_loaders(data, np.arange(24), np.arange(0), cfg, CPU)
    assert effective_data(train, val)["sampler"] == "WeightedRandomSampler"
    plain, val = make_loaders(data, np.arange(24), np.arange(0), base_cfg(), CPU)
    assert effective_data(plain, val)["sampler"] == "RandomSampler"
    seen = np.bincount(torch.cat([y for _, y in train]).numpy(), minlength=2)
    assert seen[1] > 4  # the rare class drawn more often than it exists


def test_oversampling_counts_in_memory(tmp_path):
    data = image_set([10, 3, 2])
    images, labels, counts = oversample(data.images, data.labels, [1, 2], 7, 3, seed=0)
    assert counts == {"1": 7, "2": 7}
    assert np.bincount(labels.numpy()).tolist() == [10, 7, 7]
    assert images.shape == (24, 3, 16, 16) and images.dtype == torch.uint8
    copies = images[15:]
    assert not any(torch.equal(c, o) for c in copies for o in data.images)  # augmented copies
    cfg = base_cfg(class_imbalance={"aug_class": [1], "max_samples": 6})
    train, val = make_loaders(data, np.arange(15), np.arange(0), cfg, CPU)
    assert effective_data(train, val)["oversampled"] == {"1": 6}
    assert train.dataset_size == 18
    assert (
        effective_data(*make_loaders(data, np.arange(15), np.arange(0), base_cfg(), CPU))[
            "oversampled"
        ]
        is None
    )


@pytest.mark.parametrize(("mixup", "cutmix"), [(True, False), (False, True), (True, True)])
def test_mixup_soft_targets_in_first_batch(mixup, cutmix):
    cfg = base_cfg(
        augmentation={"mixup": mixup, "cutmix": cutmix},
        mixup_alpha=0.4,
        cutmix_alpha=1.0,
        mix_prob=1.0,
        switch_prob=0.3,
        criterion="LabelSmoothingLoss",
        label_smooth=0.1,
    )
    train, val = make_loaders(image_set([8, 8]), np.arange(16), np.arange(0), cfg, CPU)
    x, y = next(iter(train))
    assert y.shape == (8, 2) and y.dtype == torch.float32
    assert torch.allclose(y.sum(1), torch.ones(8))
    assert (y.max(1).values < 0.96).all()  # mixed and smoothed, never one-hot
    assert effective_data(train, val)["mixup"] == {
        "mixup_alpha": 0.4 if mixup else 0.0,
        "cutmix_alpha": 1.0 if cutmix else 0.0,
        "prob": 1.0,
        "switch_prob": 0.3,
        "label_smoothing": pytest.approx(0.1),
    }
    assert (
        effective_data(
            *make_loaders(image_set([8, 8]), np.arange(16), np.arange(0), base_cfg(), CPU)
        )["mixup"]
        is None
    )


def test_soft_target_losses():
    from timm.loss import SoftTargetCrossEntropy
    from trainer.parts.losses import FocalLoss, SoftTargetFocalLoss, build_criterion

    mix = {"augmentation": {"mixup": True}}
    assert isinstance(
        build_criterion({**mix, "criterion": "CrossEntropyLoss"}, None), SoftTargetCrossEntropy
    )
    focal = build_criterion({**mix, "criterion": "FocalLoss", "focal_gamma": 2.0}, None)
    assert isinstance(focal, SoftTargetFocalLoss)
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    hard = FocalLoss(1.0, 2.0)(logits, y)
    assert torch.allclose(focal(logits, torch.eye(4)[y]), hard, atol=1e-6)
    with pytest.raises(ConfigError, match="class_weighting"):
        build_criterion({**mix, "criterion": "CrossEntropyLoss"}, torch.ones(4))


class Counting(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, classes)
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x):
        self.calls.append((len(x), self.drop.training, self.bn.training))
        return self.fc(self.drop(self.bn(x).mean((2, 3))))


def test_tta_calls_model_once_per_view_with_whole_batch():
    from trainer.data import Batches, TensorLoader

    data = image_set([5, 5, 5])
    loader = TensorLoader(Batches(data.images, data.labels, 8, CPU, [0.5] * 3, [0.5] * 3))
    model = Counting()
    plan = TTAPlan(("identity", "hflip", "transpose"))
    ev = evaluate_tta(model, loader, None, 3, plan)
    assert [n for n, _, _ in model.calls] == [8, 8, 8, 7, 7, 7]
    assert not any(d or b for _, d, b in model.calls)
    assert len(ev.y_pred) == 15 and 0 <= ev.f1 <= 1
    model.calls.clear()
    evaluate_tta(model, loader, None, 3, TTAPlan(("identity", "vflip"), dropout=True))
    assert all(d and not b for _, d, b in model.calls)  # MC dropout, BatchNorm in eval


def test_tta_plans_from_config():
    assert tta_plans({}) == (None, None)
    val, test = tta_plans({"TTA": True})
    assert val == test and val.views == ("identity", "hflip", "vflip", "transpose")
    val, test = tta_plans(
        {"TTA": True, "val_TTA": False, "tta_views": ["identity", "rot5"], "tta_dropout": True}
    )
    assert val is None and test.views == ("identity", "rot5") and test.dropout
    with pytest.raises(ConfigError, match="tta_views"):
        tta_plans({"val_TTA": True, "tta_views": ["mirror"]})


def run(cfg: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    from trainer.artifacts import RunDir
    from trainer.run import train

    return train(cfg, RunDir(tmp_path / "run"), "test", time.time())


@pytest.mark.slow
def test_v2_features_end_to_end(tiny_cfg, tmp_path):
    """One TINY run with every feature on: effective equals the config, and metrics show it."""
    tiny_cfg.update(
        epochs=2,
        dynamic_augmentation={
            "enabled": True,
            "policies": {
                "weak": {"end_epoch": 1, "augs": ["easiest"]},
                "strong": {"end_epoch": 9, "augs": ["eda", "dilation"]},
            },
        },
        augmentation={"cutmix": True},
        cutmix_alpha=1.0,
        mix_prob=0.5,
        switch_prob=0.5,
        val_TTA=True,
        test_TTA=True,
        tta_views=["identity", "rot5"],
        weighted_random_sampler=True,
        class_imbalance={"aug_class": [1], "max_samples": 40},
    )
    result = run(tiny_cfg, tmp_path)
    eff = result["effective"]
    assert eff["augmentation"] == [
        {"until_epoch": 1, "augs": ["easiest"]},
        {"until_epoch": 9, "augs": ["eda", "dilation"]},
    ]
    assert eff["mixup"] == {
        "mixup_alpha": 0.0,
        "cutmix_alpha": 1.0,
        "prob": 0.5,
        "switch_prob": 0.5,
        "label_smoothing": 0.0,
    }
    assert eff["criterion"] == "SoftTargetCrossEntropy"
    assert eff["tta"] == {
        "val": ["identity", "rot5"],
        "test": ["identity", "rot5"],
        "dropout": False,
    }
    assert eff["sampler"] == "WeightedRandomSampler"
    assert eff["oversampled"] == {"1": 40}
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["aug_stage"] for x in lines] == ["weak", "strong"]
    assert all(0 <= x["val_f1_tta"] <= 1 and "val_f1" in x for x in lines)


def test_class_weighting_single_split(tiny_cfg, tmp_path):
    tiny_cfg.update(class_weighting="balanced", n_folds=1)
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["class_weights"] is not None and len(eff["class_weights"]) == 10
    assert eff["augmentation"] == ["rotate", "translate"] and eff["tta"] is None


def test_class_weighting_changes_the_single_split_loss(tiny_cfg):
    """On an imbalanced single split, `balanced` puts sklearn's weights (from the training
    split's labels) into the loss object, and the loss of the same batch changes."""
    from sklearn.utils.class_weight import compute_class_weight
    from trainer.device import AmpPlan
    from trainer.parts.assemble import build_parts

    data = image_set([30, 10, 4])
    split = (np.arange(0, 44, 2), np.arange(1, 44, 2))  # every other image: 15, 5, 2 to train
    amp = AmpPlan(False, None, None, "")
    parts = {w: build_parts(dict(tiny_cfg, class_weighting=w), data, split, CPU, amp)
             for w in ("none", "balanced")}
    assert parts["none"].criterion.weight is None
    train_labels = [0] * 15 + [1] * 5 + [2] * 2
    expected = compute_class_weight("balanced", classes=np.arange(3), y=train_labels)
    assert parts["balanced"].criterion.weight.tolist() == pytest.approx(expected.tolist())
    logits, y = torch.randn(12, 3, generator=torch.Generator().manual_seed(1)), torch.arange(12) % 3
    plain, weighted = (float(parts[w].criterion(logits, y)) for w in ("none", "balanced"))
    assert abs(plain - weighted) > 1e-3

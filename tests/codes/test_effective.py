"""`effective` in result.json must equal what the config asked for, read from built objects."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from trainer.artifacts import RunDir
from trainer.run import train


def run(cfg: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Train in-process (fast) into a fresh run folder and return result.json's payload."""
    return train(cfg, RunDir(tmp_path / "run"), "test", time.time())


OPTIMIZERS = [
    ("AdamW", {}, "AdamW"),
    ("Adam", {}, "Adam"),
    ("SGD", {}, "SGD"),
    ("SGD", {"nesterov": True}, "SGD"),
    ("RMSprop", {}, "RMSprop"),
    ("RAdam", {}, "RAdam"),
    ("NAdam", {}, "NAdam"),
    ("Adafactor", {}, "Adafactor"),
]


@pytest.mark.parametrize(("name", "params", "cls"), OPTIMIZERS)
def test_optimizer_effective(tiny_cfg, tmp_path, name, params, cls):
    tiny_cfg.update(
        optimizer_name=name,
        optimizer_params=params,
        lr=0.0123,
        weight_decay=0.0321,
        momentum=0.77,
        scheduler_name="none",
    )
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["optimizer"] == cls
    assert eff["lr"] == pytest.approx(0.0123)
    assert eff["weight_decay"] == pytest.approx(0.0321)
    if name in ("SGD", "RMSprop"):
        assert eff["momentum"] == pytest.approx(0.77)
    if name == "SGD":
        assert eff["nesterov"] is bool(params.get("nesterov", False))


SCHEDULERS = [
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.0005}, {"T_max": 7, "eta_min": 0.0005}),
    ("OneCycleLR", {"max_lr": 0.05, "total_steps": 40}, {"max_lr": 0.05, "total_steps": 40}),
    ("OneCycleLR", {"max_lr": 0.02, "total_steps": None}, {"max_lr": 0.02, "total_steps": 4}),
    ("StepLR", {"step_size": 3, "gamma": 0.3}, {"step_size": 3, "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.8}, {"gamma": 0.8}),
    ("ReduceLROnPlateau", {"factor": 0.25, "patience": 4}, {"factor": 0.25, "patience": 4}),
]


@pytest.mark.parametrize(("name", "params", "expected"), SCHEDULERS)
def test_scheduler_effective(tiny_cfg, tmp_path, name, params, expected):
    tiny_cfg["scheduler_name"] = name
    tiny_cfg["scheduler_params"].update(params)
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["scheduler"] == name
    for key, value in expected.items():
        assert eff["scheduler_params"][key] == pytest.approx(value), key


def test_warmup_reaches_a_target_scheduler_and_the_runner_key(tiny_cfg):
    """warmup_epochs (top level, or scheduler_params.warmup_epochs as the runner's scheduler
    category writes it) ramps lr up before a `_target_` scheduler too."""
    import torch
    from trainer import builders

    model = torch.nn.Linear(2, 2)
    tiny_cfg.update(
        epochs=5,
        scheduler_name={"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 10},
    )
    for where in ("top", "nested"):
        cfg = dict(tiny_cfg, scheduler_params=dict(tiny_cfg["scheduler_params"]))
        if where == "top":
            cfg["warmup_epochs"] = 2
        else:
            cfg["scheduler_params"]["warmup_epochs"] = 2
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        schedule = builders.build_scheduler(cfg, optimizer, steps_per_epoch=4)
        lrs = []
        for _ in range(4):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_epoch(0.0)
        assert schedule.warmup_epochs == 2 and type(schedule.main).__name__ == "StepLR", where
        assert lrs == pytest.approx([0.1, 0.55, 1.0, 1.0]), where


def test_no_scheduler_and_warmup(tiny_cfg, tmp_path):
    tiny_cfg.update(scheduler_name="none")
    assert run(tiny_cfg, tmp_path)["effective"]["scheduler"] is None
    tiny_cfg.update(scheduler_name="CosineAnnealingLR", warmup_epochs=1, epochs=2)
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["warmup_epochs"] == 1
    assert eff["scheduler_params"]["T_max"] == 1  # epochs - warmup_epochs


LOSSES = [
    ("CrossEntropyLoss", {}, {"label_smoothing": 0.0}),
    ("CrossEntropyLoss", {"label_smooth": 0.1}, {"label_smoothing": 0.1}),  # the original's
    (
        "FocalLoss",
        {"focal_alpha": 2.0, "focal_gamma": 1.0},
        {"focal_alpha": 2.0, "focal_gamma": 1.0},
    ),
    ("LabelSmoothingLoss", {"label_smooth": 0.15}, {"label_smoothing": 0.15}),
]


@pytest.mark.parametrize(("name", "params", "expected"), LOSSES)
def test_criterion_effective(tiny_cfg, tmp_path, name, params, expected):
    tiny_cfg.update(criterion=name, **params)
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["criterion"] == name
    for key, value in expected.items():
        assert eff[key] == pytest.approx(value), key


def test_class_weighting_balanced(tiny_cfg, tmp_path):
    tiny_cfg.update(class_weighting="balanced", criterion="FocalLoss")
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["class_weights"] is not None and len(eff["class_weights"]) == 10


@pytest.mark.parametrize("criterion", ["CrossEntropyLoss", "FocalLoss", "LabelSmoothingLoss"])
def test_explicit_class_weights_reach_every_loss(criterion):
    import torch
    from trainer import builders

    cfg = {"class_weighting": [1.0, 2.0, 0.5], "criterion": criterion}
    weight = builders.class_weights(cfg, torch.tensor([0, 1, 2]), 3)
    eff = builders.effective_criterion(builders.build_criterion(cfg, weight))
    assert eff["criterion"] == criterion and eff["class_weights"] == [1.0, 2.0, 0.5]


@pytest.mark.parametrize(("image_size", "batch_size"), [(24, 16), (40, 48)])
def test_image_and_batch_size_effective(tiny_cfg, tmp_path, image_size, batch_size):
    tiny_cfg.update(image_size=image_size, batch_size=batch_size)
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["image_size"] == image_size
    assert eff["input_shape"] == [3, image_size, image_size]
    assert eff["batch_size"] == batch_size


def test_fixed_input_size_model_trains_at_the_configured_image_size(tiny_cfg, tmp_path):
    """A ViT is built for 224x224; image_size reaches it as img_size."""
    tiny_cfg.update(model_name="vit_tiny_patch16_224", image_size=32, limit_samples=64)
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["model_name"] == "vit_tiny_patch16_224" and eff["input_shape"] == [3, 32, 32]


@pytest.mark.parametrize("requested", [True, False])
def test_mixed_precision_effective_on_cpu(tiny_cfg, tmp_path, requested):
    tiny_cfg.update(mixed_precision=requested, device="cpu")
    eff = run(tiny_cfg, tmp_path)["effective"]
    # CPU trains in float32 whatever was asked; effective says so.
    assert eff["mixed_precision"] is False
    assert eff["amp_dtype"] == "float32"
    assert eff["grad_scaler"] is False
    assert ("not used on CPU" in eff["amp_note"]) is requested


def test_patience_stops_early_and_restores_best(tiny_cfg, tmp_path, monkeypatch):
    """Epoch 1 learns; StepLR then multiplies lr by 1000 each epoch and training blows up, so the
    best epoch is not the last and the weights left in the model must be epoch 1's."""
    import torch
    from trainer import run as run_module

    fitted, real_fit = {}, run_module.fit

    def recording_fit(parts, *args, **kwargs):
        fitted["model"] = parts.model
        return real_fit(parts, *args, **kwargs)

    monkeypatch.setattr(run_module, "fit", recording_fit)
    tiny_cfg.update(patience=2, epochs=6, lr=0.003, monitor="val_loss", scheduler_name="StepLR")
    tiny_cfg["scheduler_params"].update(step_size=1, gamma=1000.0)
    result = run(tiny_cfg, tmp_path)
    assert result["effective"]["patience"] == 2 and result["effective"]["epochs"] == 6
    m = result["metrics"]
    assert m["best_epoch"] == 1 and m["epochs_run"] == 3 and m["stopped_early"] is True
    assert not m["final_val_loss"] <= m["best_val_loss"]  # worse, or NaN

    checkpoints = tmp_path / "run" / "checkpoints"
    best = torch.load(checkpoints / "best_model.pt", weights_only=False)
    last = torch.load(checkpoints / "last.pt", weights_only=False)
    assert best["epoch"] == 1 and last["epoch"] == 3
    restored = fitted["model"].state_dict()
    assert restored.keys() == best["model_state"].keys()
    for key, value in best["model_state"].items():
        assert torch.equal(restored[key].cpu(), value), key
    assert any(not torch.equal(best["model_state"][k], v) for k, v in last["model_state"].items())


def test_kfold_reports_mean_and_folds(tiny_cfg, tmp_path):
    tiny_cfg.update(n_folds=2, limit_samples=120)
    result = run(tiny_cfg, tmp_path)
    folds = result["metrics"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    mean = sum(f["best_val_f1"] for f in folds) / 2
    assert result["metrics"]["best_val_f1"] == pytest.approx(mean)
    assert (tmp_path / "run" / "checkpoints" / "fold1_best.pt").is_file()


def test_same_seed_same_result(tiny_cfg, tmp_path):
    first = run(tiny_cfg, tmp_path / "a")["metrics"]
    second = run(tiny_cfg, tmp_path / "b")["metrics"]
    assert first["final_val_loss"] == pytest.approx(second["final_val_loss"], rel=1e-5)


def test_target_mappings_build_any_importable_class(tiny_cfg, tmp_path, monkeypatch):
    """`_target_` in place of a name builds a user's own class with the mapping's keys."""
    (tmp_path / "my_parts.py").write_text(
        "import torch\n"
        "class HalfCE(torch.nn.Module):\n"
        "    def __init__(self, scale=0.5, weight=None):\n"
        "        super().__init__()\n"
        "        self.scale = scale\n"
        "    def forward(self, logits, y):\n"
        "        return self.scale * torch.nn.functional.cross_entropy(logits, y)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tiny_cfg.update(
        model_name={"_target_": "timm.create_model", "model_name": "test_convnext"},
        optimizer_name={"_target_": "torch.optim.SGD", "momentum": 0.66, "nesterov": True},
        scheduler_name={
            "_target_": "torch.optim.lr_scheduler.StepLR",
            "step_size": 4,
            "gamma": 0.2,
        },
        criterion={"_target_": "my_parts.HalfCE", "scale": 0.25},
        lr=0.02,
    )
    eff = run(tiny_cfg, tmp_path)["effective"]
    assert eff["model_name"] == "test_convnext" and eff["num_classes"] == 10
    assert eff["optimizer"] == "SGD" and eff["momentum"] == pytest.approx(0.66)
    assert eff["lr"] == pytest.approx(0.02) and eff["nesterov"] is True
    assert eff["scheduler"] == "StepLR"
    assert eff["scheduler_params"] == {"step_size": 4, "gamma": 0.2}
    assert eff["criterion"] == "HalfCE"


@pytest.mark.parametrize("mode", ["head", "scratch", "full"])
def test_fine_tuning_modes(tiny_cfg, tmp_path, mode):
    tiny_cfg.update(fine_tuning=mode, pretrained=True)  # scratch/head never download here
    if mode != "scratch":
        tiny_cfg["pretrained"] = False
    eff = run(tiny_cfg, tmp_path)["effective"]
    if mode == "head":
        assert 0 < eff["trainable_params"] < eff["total_params"]
    else:
        assert eff["trainable_params"] == eff["total_params"]


def test_threads_follow_the_runner_slot(tiny_cfg, tmp_path, monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("HPSYS_CPU_THREADS", "1")
    tiny_cfg["cpu_threads"] = None
    try:
        assert run(tiny_cfg, tmp_path)["effective"]["cpu_threads"] == 1
    finally:
        torch.set_num_threads(before)

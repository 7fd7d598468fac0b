"""The original V2 trainer's model-side keys made real: timm options, custom heads,
fine_tuning custom, CosineAnnealingWarmupRestarts, Momentum/NAG, k-fold averaging in
predict.py, two-stage training and unused_keys."""

from __future__ import annotations

import copy
import csv
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from trainer.artifacts import RunDir
from trainer.key_reads import track, unused
from trainer.parts.model import build_model
from trainer.parts.optimizer import build_optimizer
from trainer.parts.scheduler import build_scheduler
from trainer.run import train

ORIGINAL = Path(__file__).resolve().parents[1] / "original" / "config_v2.yaml"


def run(cfg: dict[str, Any], folder: Path, cfg2: dict[str, Any] | None = None) -> dict[str, Any]:
    return train(track(cfg), RunDir(folder), "test", time.time(),
                 None if cfg2 is None else track(cfg2))


@pytest.mark.parametrize(
    ("head", "layers"),
    [
        ({"head_type": "simple_dropout", "drop": 0.3}, ["Dropout", "Linear"]),
        ({"head_type": "mlp", "drop": 0.2, "hidden": 16, "activation": "SiLU"},
         ["Linear", "SiLU", "Dropout", "Linear"]),
    ],
)
def test_timm_options_and_custom_head_are_built_and_reported(tiny_cfg, tmp_path, head, layers):
    tiny_cfg.update(timm={"activation": "GELU", "drop_rate": 0.25, "drop_path_rate": 0.1},
                    custom_layer=head)
    model = build_model(tiny_cfg, 10)
    assert model.drop_rate == 0.25
    assert any(type(m).__name__ == "DropPath" for m in model.modules())
    fc = model.get_classifier()
    assert [type(m).__name__ for m in fc] == layers
    assert fc[0 if layers[0] == "Linear" else 1].in_features == model.num_features
    assert fc[-1].out_features == 10
    if head["head_type"] == "simple_dropout":
        assert fc[0].p == 0.3
    eff = run(tiny_cfg, tmp_path / "run")["effective"]
    assert eff["head"] == layers
    assert eff["activation"] == "GELU"
    assert eff["folds"] == 1 and eff["stages"] == 1


def test_activation_none_string_keeps_the_models_own(tiny_cfg):
    tiny_cfg.update(timm={"activation": "None"}, custom_layer=None)
    model = build_model(tiny_cfg, 10)
    assert {type(m).__name__ for m in model.modules()} & {"ReLU"}
    assert not any(type(m).__name__ == "GELU" for m in model.modules())


def test_unknown_activation_is_a_config_error(tiny_cfg):
    from trainer.errors import ConfigError

    tiny_cfg.update(timm={"activation": "Wobbly"})
    with pytest.raises(ConfigError, match="timm.activation"):
        build_model(tiny_cfg, 10)


def test_fine_tuning_custom_trains_the_last_stages_and_the_head(tiny_cfg):
    tiny_cfg.update(model_name="resnet10t", fine_tuning="custom", unfreeze_stages=1)
    model = build_model(tiny_cfg, 10)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}
    tiny_cfg.update(unfreeze_stages=2, custom_layer={"head_type": "simple_dropout"})
    model = build_model(tiny_cfg, 10)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    tiny_cfg.update(fine_tuning="head")
    model = build_model(tiny_cfg, 10)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "fc.1.weight", "fc.1.bias"}


def _lrs(cfg: dict[str, Any], steps: int, per_epoch: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(cfg, model)
    schedule = build_scheduler(cfg, opt, per_epoch)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.after_batch()
    return out


def test_warm_restarts_as_a_target_take_flat_keys_or_the_record(tiny_cfg):
    """A `_target_` mapping builds the class with the record's fields as flat keywords, as it
    did before they were one record; a nested record is the same schedule."""
    shape = {"T_max": 2, "max_lr": 0.1, "min_lr": 0.001, "gamma": 0.5, "steps_per_epoch": 5}
    target = "trainer.parts.scheduler.CosineAnnealingWarmupRestarts"
    flat = _lrs({**tiny_cfg, "scheduler_name": {"_target_": target, **shape}}, 25, per_epoch=5)
    nested = _lrs({**tiny_cfg, "scheduler_name": {
        "_target_": target, "cycles": {"_target_": "trainer.registry.WarmRestarts", **shape}}},
        25, per_epoch=5)
    assert flat == nested
    assert flat[0] == pytest.approx(0.1) and flat[10] == pytest.approx(0.05)  # gamma x max_lr


def test_warm_restarts_go_back_up_at_the_cycle_boundary(tiny_cfg):
    tiny_cfg.update(
        scheduler_name="CosineAnnealingWarmupRestarts",
        scheduler_params={"T_max": 2, "max_lr": 0.1, "min_lr": 0.001, "gamma": 0.5,
                          "warmup_epochs": 1},
        epochs=6,
    )
    lrs = _lrs(tiny_cfg, 40, per_epoch=5)  # warm-up 5 batches, then cycles of 10
    assert lrs[0] == pytest.approx(0.001)  # warm-up starts at min_lr ...
    assert lrs[0] < lrs[2] < lrs[4] < lrs[5] == pytest.approx(0.1)  # ... and climbs to max_lr
    assert lrs[14] < lrs[13] < lrs[6] < 0.1  # cosine down through cycle 1
    assert lrs[15] > lrs[14] * 5  # back up at the boundary ...
    assert lrs[15] == pytest.approx(0.05)  # ... to gamma x max_lr
    assert lrs[24] < lrs[16] and lrs[25] == pytest.approx(0.025)
    assert min(lrs) >= 0.001 - 1e-12


def test_min_lr_is_eta_min_for_cosine_annealing(tiny_cfg):
    tiny_cfg.update(scheduler_name="CosineAnnealingLR",
                    scheduler_params={"T_max": 3, "max_lr": 0.1, "min_lr": 0.0007})
    schedule = build_scheduler(tiny_cfg, build_optimizer(tiny_cfg, torch.nn.Linear(2, 2)), 4)
    assert schedule.main.eta_min == 0.0007 and schedule.params["eta_min"] == 0.0007


def test_unused_keys_lists_what_the_scheduler_did_not_take(tiny_cfg, tmp_path):
    tiny_cfg.update(scheduler_name="CosineAnnealingLR",
                    scheduler_params={"T_max": 3, "max_lr": 0.1, "min_lr": 0.0007},
                    nobody_reads_this={"deep": 1})
    result = run(tiny_cfg, tmp_path / "run")
    assert "scheduler_params.max_lr" in result["unused_keys"]
    assert {"nobody_reads_this", "nobody_reads_this.deep"} <= set(result["unused_keys"])
    for used in ("scheduler_params.T_max", "scheduler_params.min_lr", "lr", "model_name"):
        assert used not in result["unused_keys"]


def test_tracked_config_serialises_as_plain_data(tiny_cfg):
    cfg = track(tiny_cfg)
    text = yaml.safe_dump(cfg)
    copy.deepcopy(cfg)
    torch.save(cfg, "/dev/null")
    assert yaml.safe_load(text) == tiny_cfg
    assert "lr" in unused(cfg)  # serialising is not reading


@pytest.mark.parametrize(("name", "nesterov"), [("Momentum", False), ("NAG", True)])
def test_momentum_and_nag_are_sgd(tiny_cfg, name, nesterov):
    tiny_cfg.update(optimizer_name=name)
    del tiny_cfg["momentum"]  # the original config has none: 0.9
    opt = build_optimizer(tiny_cfg, torch.nn.Linear(2, 2))
    assert type(opt) is torch.optim.SGD
    assert opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["nesterov"] is nesterov


def test_folds_keep_every_checkpoint_and_predict_averages_them(tiny_cfg, tmp_path, digits_dir):
    import predict
    from trainer.data import decode_images, read_id_csv
    from trainer.infer.checkpoint import load_checkpoint
    from trainer.infer.predict import predict_proba

    tiny_cfg.update(n_folds=3)
    result = run(tiny_cfg, tmp_path / "run")
    folder = tmp_path / "run" / "checkpoints"
    folds = sorted(folder.glob("fold*_best.pt"))
    assert len(folds) == 3 and result["effective"]["folds"] == 3
    assert len(result["metrics"]["folds"]) == 3 and "best_val_f1_std" in result["metrics"]
    assert predict.fold_checkpoints(folder / "best_model.pt") == folds
    assert predict.fold_checkpoints(tmp_path / "run") == folds
    assert predict.fold_checkpoints(folds[1]) == [folds[1]]
    out = tmp_path / "sub.csv"
    assert predict.main(["--checkpoint", str(folder / "best_model.pt"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    ids, _ = read_id_csv(digits_dir / "sample_submission.csv", need_target=False)
    images = decode_images(digits_dir / "test", ids, 32)
    cpu = torch.device("cpu")
    probs = []
    for path in folds:
        model, ckpt = load_checkpoint(path, cpu)
        probs.append(predict_proba(model, images, ckpt, cpu))
    mean_pred = [str(v) for v in (sum(probs) / 3).argmax(1).tolist()]
    assert [r["target"] for r in rows] == mean_pred
    assert len(rows) == len(ids)


def test_predict_follows_the_configs_test_tta(tiny_cfg, tmp_path, digits_dir, capsys):
    """predict.py uses the checkpoint config's test_TTA and tta_views unless --tta/--no-tta
    says otherwise (val_TTA is validation's alone)."""
    import predict
    from trainer.data import decode_images, read_id_csv
    from trainer.infer.checkpoint import load_checkpoint
    from trainer.infer.predict import predict_proba

    plan = predict.test_plan
    assert plan({"test_TTA": False, "val_TTA": True}, None) is None
    assert plan({"TTA": True}, None).views == ("identity", "hflip", "vflip", "transpose")
    assert plan({"test_TTA": True}, False) is None
    assert plan({"test_TTA": False, "tta_views": ["identity", "rot90"]}, True).views == (
        "identity", "rot90")
    tiny_cfg.update(test_TTA=True, val_TTA=False, tta_views=["identity", "hflip"])
    run(tiny_cfg, tmp_path / "run")
    ckpt_path = tmp_path / "run" / "checkpoints" / "best_model.pt"
    model, ckpt = load_checkpoint(ckpt_path, torch.device("cpu"))
    ids, _ = read_id_csv(digits_dir / "sample_submission.csv", need_target=False)
    images = decode_images(digits_dir / "test", ids, 32)
    cpu = torch.device("cpu")
    expected = {  # identity + hflip averaged, as predict_proba's flip TTA does
        "default": predict_proba(model, images, ckpt, cpu, flip_tta=True).argmax(1).tolist(),
        "--no-tta": predict_proba(model, images, ckpt, cpu).argmax(1).tolist(),
    }
    for flag, line in (("default", "TTA: identity, hflip"), ("--no-tta", "TTA: off")):
        out = tmp_path / f"{flag}.csv"
        extra = [] if flag == "default" else [flag]
        assert predict.main(["--checkpoint", str(ckpt_path), "--out", str(out), *extra]) == 0
        assert line in capsys.readouterr().out
        assert [int(r["target"]) for r in csv.DictReader(out.open())] == expected[flag], flag


def test_stage_two_starts_from_stage_ones_best_weights(tiny_cfg, tmp_path):
    first = dict(tiny_cfg, two_stage=True, epochs=2)
    second = dict(copy.deepcopy(tiny_cfg), two_stage=False, lr=1e-12, scheduler_name="none",
                  criterion="FocalLoss")
    result = run(first, tmp_path / "run", second)
    folder = tmp_path / "run"
    best1 = torch.load(folder / "stage1" / "checkpoints" / "best_model.pt", weights_only=False)
    last2 = torch.load(folder / "checkpoints" / "last.pt", weights_only=False)
    model = build_model(tiny_cfg, 10)
    params = [name for name, _ in model.named_parameters()]
    for name in params:  # lr 1e-12: stage 2's weights are stage 1's best, unchanged
        torch.testing.assert_close(last2["model_state"][name], best1["model_state"][name],
                                   atol=1e-6, rtol=0)
    assert result["effective"]["stages"] == 2
    assert result["effective"]["criterion"] == "FocalLoss"
    stages = result["stages"]
    assert [s["stage"] for s in stages] == [1, 2]
    assert stages[0]["metrics"]["epochs_run"] == 2 and stages[1]["metrics"]["epochs_run"] == 1
    assert stages[0]["effective"]["criterion"] == "CrossEntropyLoss"
    assert result["metrics"] == stages[1]["metrics"]
    assert (folder / "stage1" / "metrics.jsonl").read_text().count("\n") == 2
    assert (folder / "metrics.jsonl").read_text().count("\n") == 1


def test_two_stage_needs_config2(tiny_cfg, write_cfg, run_script):
    path = write_cfg(dict(tiny_cfg, two_stage=True))
    proc = run_script(["codes/train.py", "--config", str(path)])
    assert proc.returncode == 2 and "--config2" in proc.stderr

"""The original team's config_v2.yaml (tests/original/, verbatim) trains on the embedded data
with our engine. The test overrides only data_dir/train_data, pretrained, image size, epochs,
batch size and a tiny model on the command line, as the issue allows (and adds limit_samples,
output_dir and num_workers with ++), and the run reads every key it can use."""

from __future__ import annotations

import json

import pytest

# The one key of the original that no run of it can use: its scheduler_params hold the
# parameters of several schedulers (the original's own comment: "max_lr: 0.01 # for
# OneCycleLR"), and CosineAnnealingLR, the one it names, starts from `lr` and has no maximum.
# Reading max_lr as that start would silently override every `lr` the runner's optimizer
# category sets, so the engine leaves it unread and unused_keys says so. Switching the
# scheduler to one that takes it (the last test) reads it.
OTHER_SCHEDULERS_KEY = "scheduler_params.max_lr"

OVERRIDES = ["pretrained=false", "image_size=32", "epochs=1", "batch_size=16",
             "model_name=test_resnet.r160_in1k", "train_data=train.csv"]


@pytest.mark.slow
def test_the_original_config_trains_and_reports_its_features(run_script, digits_dir,
                                                               tmp_path):
    out = tmp_path / "out"
    proc = run_script(["codes/train.py", "--config", "tests/original/config_v2.yaml",
                       f"data_dir={digits_dir}", *OVERRIDES, "++limit_samples=160",
                       f"++output_dir={out}", "++num_workers=0"],
                      env={"WANDB_MODE": "disabled"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not used" not in proc.stderr
    result = json.loads(next(out.glob("*/result.json")).read_text())
    assert result["unused_keys"] == [OTHER_SCHEDULERS_KEY], result["unused_keys"]
    effective = result["effective"]
    # the static eda policy (augmentation.eda: True) joins every dynamic stage
    assert [stage["augs"] for stage in effective["augmentation"]] == [
        ["easiest", "basic", "eda"], ["stilleasy", "middle", "eda"], ["aggressive", "eda"]]
    assert [stage["until_epoch"] for stage in effective["augmentation"]] == [40, 80, 300]
    assert effective["tta"] == {"val": ["identity", "hflip", "vflip", "transpose"],
                                "test": ["identity", "hflip", "vflip", "transpose"],
                                "dropout": False}
    assert effective["scheduler"] == "CosineAnnealingLR"
    assert effective["scheduler_params"]["T_max"] == 25
    assert effective["scheduler_params"]["eta_min"] == pytest.approx(0.0001)  # its min_lr
    assert effective["criterion"] == "CrossEntropyLoss" and effective["label_smoothing"] == 0.0
    assert effective["class_weights"] is None and effective["sampler"] == "RandomSampler"
    assert effective["oversampled"] == {"1": 70}  # 13 and 14 are not digits: warned, skipped
    assert "13, 14 not in this data" in proc.stderr
    line = json.loads((next(out.glob("*/metrics.jsonl"))).read_text().splitlines()[0])
    assert line["aug_stage"] == "weak" and "val_f1_tta" in line


@pytest.mark.slow
def test_the_original_with_warm_restarts_reads_every_key(run_script, digits_dir, tmp_path):
    """Its other scheduler, CosineAnnealingWarmupRestarts, takes T_max, max_lr and min_lr:
    then nothing of the original goes unread."""
    out = tmp_path / "out"
    proc = run_script(["codes/train.py", "--config", "tests/original/config_v2.yaml",
                       f"data_dir={digits_dir}", *OVERRIDES,
                       "scheduler_name=CosineAnnealingWarmupRestarts", "++limit_samples=160",
                       f"++output_dir={out}", "++num_workers=0"],
                      env={"WANDB_MODE": "disabled"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(next(out.glob("*/result.json")).read_text())
    assert result["unused_keys"] == []
    params = result["effective"]["scheduler_params"]
    assert (params["T_max"], params["max_lr"], params["min_lr"]) == (25, 0.1, 0.0001)


def test_dynamic_augmentation_enabled_alone_gets_the_original_stages():
    """The original's `augmentation` category option sets dynamic_enabled only: the run gets
    weak, middle and strong stages over thirds of its epochs."""
    from trainer.data.augment import stages_of

    stages = stages_of({"epochs": 9, "dynamic_augmentation": {"enabled": True}})
    assert [(s.until_epoch, s.augs) for s in stages] == [
        (3, ["easiest", "basic"]), (6, ["stilleasy", "middle"]), (9, ["aggressive"])]


def test_online_augmentation_is_the_policies_switch():
    """online_augmentation: false keeps the light augmentation and leaves the policies
    unread; false with a dynamic schedule on is refused, not silently resolved."""
    from trainer.data.augment import stages_of
    from trainer.errors import ConfigError
    from trainer.key_reads import track, unused

    cfg = track({"online_augmentation": False, "augmentation": {"eda": True}})
    assert stages_of(cfg) is None and unused(cfg) == ["augmentation", "augmentation.eda"]
    with pytest.raises(ConfigError, match="online_augmentation"):
        stages_of({"online_augmentation": False, "dynamic_augmentation": {"enabled": True}})


def test_wandb_log_is_read_whatever_the_mode(tmp_path, monkeypatch):
    """wandb.log (the original's W&B switch) is read with W&B disabled too, so unused_keys
    does not depend on the environment; log: false keeps W&B off when a mode asks for it."""
    from trainer.key_reads import track
    from trainer.tracking import Tracker

    cfg = track({"wandb": {"project": "p", "log": True}})
    assert not Tracker(cfg, "r", tmp_path).enabled and "wandb.log" in cfg.reads
    monkeypatch.setenv("WANDB_MODE", "offline")
    off = track({"wandb": {"project": "p", "log": False}})
    assert not Tracker(off, "r", tmp_path).enabled

"""The original team's config_v2.yaml (tests/original/, verbatim) trains on the embedded data
with our engine: only data_dir, pretrained, image size, epochs and a tiny model overridden."""

from __future__ import annotations

import json

import pytest

# Keys the run reads no value from, each for a reason of the config itself: CrossEntropyLoss
# takes no smoothing (label_smooth 0.0 is for LabelSmoothingLoss), CosineAnnealingLR no
# max_lr, the static augmentation set is superseded by its dynamic_augmentation stages, and
# the original's wandb.log switch has no counterpart (the tracker always logs when W&B is on).
NOT_READ = {"label_smooth", "scheduler_params.max_lr", "online_augmentation",
            "augmentation.eda", "augmentation.dilation", "augmentation.erosion", "wandb.log"}


@pytest.mark.slow
def test_the_original_config_trains_and_reports_its_features(run_script, digits_dir,
                                                               tmp_path, repo_root):
    out = tmp_path / "out"
    proc = run_script(["codes/train.py", "--config", "tests/original/config_v2.yaml",
                       f"data_dir={digits_dir}", "train_data=train.csv", "pretrained=false",
                       "image_size=32", "epochs=1", "model_name=test_resnet.r160_in1k",
                       "batch_size=16", "++limit_samples=160", f"++output_dir={out}",
                       "++num_workers=0"], env={"WANDB_MODE": "disabled"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(next(out.glob("*/result.json")).read_text())
    assert set(result["unused_keys"]) <= NOT_READ, result["unused_keys"]
    effective = result["effective"]
    assert [stage["augs"] for stage in effective["augmentation"]] == [
        ["easiest", "basic"], ["stilleasy", "middle"], ["aggressive"]]
    assert effective["tta"]["val"] and effective["scheduler"] == "CosineAnnealingLR"
    assert effective["oversampled"] == {"1": 70}  # 13 and 14 are not digits: warned, skipped
    assert "13, 14 not in this data" in proc.stderr


def test_dynamic_augmentation_enabled_alone_gets_the_original_stages():
    """The original's `augmentation` category option sets dynamic_enabled only: the run gets
    weak, middle and strong stages over thirds of its epochs."""
    from trainer.data.augment import stages_of

    stages = stages_of({"epochs": 9, "dynamic_augmentation": {"enabled": True}})
    assert [(s.until_epoch, s.augs) for s in stages] == [
        (3, ["easiest", "basic"]), (6, ["stilleasy", "middle"]), (9, ["aggressive"])]

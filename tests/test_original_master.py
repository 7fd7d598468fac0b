"""The original team's master config (tests/original/experiment_config.yaml, verbatim) with its
`augmentation` and `regularization` categories enabled and its scripts pointed at ours: the
matrix builds and --dry-run passes, each option's experiment config carries the keys it sets,
and one epoch of each of those options trains on the embedded data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hyperparameter_system.app import api

ROOT = Path(__file__).resolve().parents[1]
OURS = {"python codes/gemini_main_v2.py": "python codes/train.py",
        "./run_code_v2.sh": "./run_absolute.sh", "./run_convnext.sh": "./run_b3.sh"}


def original(tmp: Path, overrides: list[str] | None = None, models: int | None = None) -> Path:
    """The original master as written, but for its scripts (ours), its two 'for later'
    categories enabled, and everything written under `tmp`."""
    doc = yaml.safe_load((ROOT / "tests" / "original" / "experiment_config.yaml").read_text())
    for model in doc["models"]:
        model["script"] = OURS.get(model["script"], model["script"])
    for name in ("augmentation", "regularization"):
        doc["experiment_categories"][name]["enabled"] = True
    doc["system"].update(project_root=str(ROOT), temp_config_dir=str(tmp / "tc"),
                         ledger=str(tmp / "l.db"), runs_dir=str(tmp / "runs"),
                         reports_dir=str(tmp / "reports"), wandb_mode="disabled",
                         overrides=overrides or [])
    if models is not None:  # a short run: the first model, preloaded, on both cores
        doc["models"] = doc["models"][:models]
        doc["execution"].update(preload=True, max_parallel=2)
    path = tmp / "original.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_the_original_master_with_both_later_categories_passes_dry_run(tmp_path, cli) -> None:
    path = original(tmp_path)
    res = cli("--config", str(path), "--dry-run", "--all")
    assert res.returncode == 0, res.stderr
    settings = api.load(path)
    by_name = {(e.category, e.run_name): e for e in api.select(settings, ["resnet50.tv2_in1k"])}
    minimal = by_name[("augmentation", "aug_minimal_eda")].config
    dynamic = by_name[("augmentation", "aug_dynamic_eda")].config
    assert minimal["online_augmentation"] is True and minimal["augmentation"]["eda"] is True
    assert dynamic["dynamic_augmentation"]["enabled"] is True
    light = by_name[("regularization", "reg_drop0.1_wd0.001")].config
    assert light["timm"]["drop_rate"] == 0.1 and light["weight_decay"] == 0.001


@pytest.mark.slow
def test_one_epoch_of_each_later_option_trains(tmp_path, cli) -> None:
    """Each option trains, none is marked "not honoured" (the trainer read every key it
    sets), and `effective`, read back from what was built, carries what it asked for."""
    data = tmp_path / "data"
    prep = subprocess.run([sys.executable, "codes/prepare_data.py", "--out", str(data)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0, prep.stderr
    path = original(tmp_path, models=1, overrides=[
        "epochs=1", "image_size=32", "batch_size=16", "pretrained=false",
        f"data_dir={data}", "++limit_samples=160",
        "++num_workers=0", f"++output_dir={tmp_path / 'out'}"])
    # a tiny timm model in the first entry's place: model names come from models:, never
    # from an override (issue 20)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["models"][0]["name"] = "test_resnet.r160_in1k"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    res = cli("--config", str(path), "--categories", "augmentation", "regularization",
              timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "5 done, 0 failed" in res.stdout  # the baseline and the four options
    assert "not honoured" not in res.stdout
    results = {p.parent.name.rsplit("_", 1)[0]: json.loads(p.read_text())
               for p in (tmp_path / "runs").glob("*/*/result.json")}
    effective = {name: r["effective"] for name, r in results.items()}
    assert effective["aug_minimal_eda"]["augmentation"] == ["eda"]
    stages = effective["aug_dynamic_eda"]["augmentation"]  # eda joins each default stage
    assert [s["augs"] for s in stages] == [["easiest", "basic", "eda"],
                                           ["stilleasy", "middle", "eda"], ["aggressive", "eda"]]
    for name, drop, wd in (("reg_drop0.1_wd0.001", 0.1, 0.001), ("reg_drop0.3_wd0.01", 0.3, 0.01)):
        assert (effective[name]["drop_rate"], effective[name]["weight_decay"]) == (drop, wd)
    for name in ("aug_minimal_eda", "aug_dynamic_eda", "reg_drop0.1_wd0.001"):
        changed = {k.split(".")[0] for k in results[name].get("unused_keys", [])}
        assert not changed & {"online_augmentation", "augmentation", "dynamic_augmentation",
                              "timm", "weight_decay"}, (name, results[name]["unused_keys"])

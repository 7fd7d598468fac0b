"""End to end through the real codes/train.py: a small matrix (two tiny timm models, one through
a .sh launch script, x the optimizer category) on the embedded digits data, then the winners
in --summary."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

OPTIONS = [{"name": "AdamW", "lr": 0.003, "weight_decay": 0.0001, "description": "adamw_fast"},
           {"name": "SGD", "lr": 1e-7, "momentum": 0.0, "description": "sgd_frozen"}]
MODELS = [{"name": "test_resnet.r160_in1k", "script": "python codes/train.py"},
          {"name": "test_efficientnet.r160_in1k", "script": "./run_b3.sh"}]


def tiny_system(data_dir: Path, tmp_path: Path) -> dict:
    """The system block of a real but tiny CPU matrix on the embedded digits (2 epochs, 400
    samples, 32 px), shared by every executor's end-to-end training test."""
    return {"base_config": "codes/config_v2.yaml", "metric": "metrics.best_val_f1",
            "overrides": ["epochs=2", "limit_samples=400", "image_size=32", "batch_size=32",
                          f"data_dir={data_dir}", f"output_dir={tmp_path / 'outputs'}",
                          "pretrained=false", "num_workers=0"]}


def test_small_matrix_through_train_py_finds_the_winners(master_config, cli, tmp_path,
                                                          data_dir) -> None:
    path = master_config(
        system=tiny_system(data_dir, tmp_path),
        models=MODELS, experiment_categories={"optimizer": {"options": OPTIONS}},
        execution={"max_parallel": 2, "experiment_timeout": 400, "preload": True})
    res = cli("--config", str(path), "--all", timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "6 done, 0 failed" in res.stdout

    for project in ("test_resnet_r160_in1k", "test_efficientnet_r160_in1k"):
        for run in (tmp_path / "runs" / project).iterdir():
            assert (run / "result.json").is_file() and (run / "metrics.jsonl").is_file()

    res = cli("--config", str(path), "--summary")
    assert res.returncode == 0, res.stderr
    winners = [line for line in res.stdout.splitlines()
               if " adamw_fast " in line and line.rstrip().endswith("winner")]
    losers = [line for line in res.stdout.splitlines()
              if " sgd_frozen " in line and line.rstrip().endswith("winner")]
    assert len(winners) == 2 and not losers, res.stdout


def test_a_real_search_trains_its_trials_with_train_py(master_config, cli, tmp_path,
                                                       data_dir) -> None:
    """An Optuna search over lr with the built-in trainer: each trial a real timm run whose
    effective optimizer lr is the sampled value; the study holds the trials it was asked for."""
    import json

    import optuna

    path = master_config(
        system={"base_config": "codes/config_v2.yaml",
                "overrides": ["epochs=2", "limit_samples=160", "image_size=32",
                              "batch_size=32", f"data_dir={data_dir}",
                              f"output_dir={tmp_path / 'outputs'}", "pretrained=false",
                              "num_workers=0"]},
        models=[MODELS[0]], experiment_categories={"optimizer": {"options": OPTIONS[:1]}},
        execution={"max_parallel": 2, "experiment_timeout": 400, "preload": True},
        search={"lr": {"n_trials": 2, "sampler": "random", "seed": 3, "pruner": "none",
                       "space": {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}}})
    res = cli("--config", str(path), "--search", "lr", timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    study = optuna.load_study(study_name=f"lr/{MODELS[0]['name']}",
                              storage=f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2
    sampled = sorted(t.params["lr"] for t in complete)
    built = sorted(json.loads(p.read_text())["effective"]["lr"]
                   for p in (tmp_path / "runs" / "test_resnet_r160_in1k").glob("*/result.json"))
    assert built == pytest.approx(sampled, rel=1e-9)  # each trial's lr reached its optimizer

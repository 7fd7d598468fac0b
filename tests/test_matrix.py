"""The matrix: enabled models x enabled categories x options plus a baseline per model, in a
stable order, with ids that change exactly when the experiment does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.matrix.experiments import build_matrix


@pytest.fixture
def shipped(repo_root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(repo_root)
    return load_settings("experiment_config.yaml")


def test_shipped_config_gives_4_x_17_plus_4(shipped) -> None:
    experiments = build_matrix(shipped)
    assert len(experiments) == 4 * 17 + 4 == 72
    per_model = Counter(e.model for e in experiments)
    assert len(per_model) == 4 and set(per_model.values()) == {18}
    assert Counter(e.category for e in experiments) == {
        "baseline": 4, "optimizer": 8, "scheduler": 8, "loss_function": 12, "image_size": 16,
        "batch_size": 12, "early_stopping": 12}
    assert [e.index for e in experiments] == list(range(1, 73))
    assert len({e.id for e in experiments}) == 72


def test_configs_are_one_factor_around_the_base(shipped) -> None:
    experiments = build_matrix(shipped, models=["efficientnet_b3.ra2_in1k"])
    base = dict(shipped.model("efficientnet_b3.ra2_in1k").base)
    baseline = experiments[0]
    assert baseline.category == "baseline" and baseline.run_name == "baseline"
    assert baseline.config == {**base, "model_name": "efficientnet_b3.ra2_in1k"}
    for e in experiments:
        assert e.config["model_name"] == "efficientnet_b3.ra2_in1k"
        assert e.project == "efficientnet_b3_ra2_in1k"
        assert e.script == ("./run_b3.sh",)


def test_selection_and_unknown_names(shipped) -> None:
    chosen = build_matrix(shipped, models=["resnet50.tv2_in1k"], categories=["optimizer",
                                                                           "scheduler"])
    assert [e.run_name for e in chosen] == [
        "baseline", "opt_AdamW_lr0.001_wd0.001", "opt_SGD_lr0.01_mom0.9",
        "sch_CosineAnnealingLR_T25", "sch_OneCycleLR_maxlr0.01"]
    # a disabled model or category named explicitly runs: naming it is the choice
    named = build_matrix(shipped, models=["convnext_base.fb_in1k"], categories=["regularization"])
    assert [e.run_name for e in named][1:] == [  # the built-in category names them reg_*
        "reg_wd0.001_ls0.05", "reg_wd0.01_ls0.1"]
    with pytest.raises(HpsysError, match=r"expected one of .*resnet50.tv2_in1k.*"
                                         r"did you mean 'resnet50.tv2_in1k'"):
        build_matrix(shipped, models=["resnet50.tv2_in1"])
    with pytest.raises(HpsysError, match="did you mean 'optimizer'"):
        build_matrix(shipped, categories=["optimiser"])


def test_ids_are_stable_and_follow_the_config(master_config) -> None:
    path = master_config()
    first = {e.run_name + e.model: e.id for e in build_matrix(load_settings(path))}
    again = {e.run_name + e.model: e.id for e in build_matrix(load_settings(path))}
    assert first == again and len(set(first.values())) == len(first)

    changed = master_config(experiment_categories={
        "optimizer": {"options": [{"name": "SGD", "lr": 0.02, "momentum": 0.9,
                                   "weight_decay": 0.0001}]},
        "early_stopping": {"options": [{"patience": 5}, {"patience": 7}]}})
    after = {e.run_name + e.model: e.id for e in build_matrix(load_settings(changed))}
    moved = {k for k in first if after.get(k) != first[k]}
    assert moved == {k for k in first if k.startswith("opt_SGD")}

    overridden = {e.run_name + e.model: e.id
                  for e in build_matrix(load_settings(path, ["epochs=9"]))}
    assert not set(overridden.values()) & set(first.values())  # a new base: all new experiments


def test_repeats_give_one_seed_each(master_config) -> None:
    settings = load_settings(master_config(execution={"repeats": 2}))
    runs = [e for e in build_matrix(settings) if e.category == "early_stopping"
            and e.model == "fake-net.v1"]
    assert [e.run_name for e in runs] == ["es_patience5_seed42", "es_patience5_seed43",
                                          "es_patience7_seed42", "es_patience7_seed43"]
    assert [e.config["random_seed"] for e in runs] == [42, 43, 42, 43]


def test_module_runs_as_a_script_and_prints(repo_root: Path) -> None:
    res = subprocess.run([sys.executable, "hyperparameter_system/hyperparameter_configs.py",
                          "experiment_config.yaml"], cwd=repo_root, capture_output=True,
                         text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    for project in ("resnet50_tv2_in1k", "efficientnet_b4_ra2_in1k", "efficientnet_b3_ra2_in1k",
                    "swin_base_patch4_window12_384_ms_in1k"):
        assert f"Project: {project} (18 runs)" in res.stdout
    assert "Total: 72 experiments" in res.stdout
    assert "img320_batch64" in res.stdout and "loss_FocalLoss_alpha2_gamma1" in res.stdout


PACKAGE = "hyperparameter_system"


def test_quickstart_example_gives_2_x_12_plus_2(repo_root: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/quickstart.yaml (what `make demo` runs), pinned: its project_root `..` is
    taken relative to the file, wherever the runner starts; built-in categories only."""
    monkeypatch.setenv("HPSYS_DISABLE_PLUGINS", "1")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(repo_root / "examples" / "quickstart.yaml")
    assert settings.root == repo_root
    builtin = ("optimizer", "scheduler", "loss_function", "image_size", "batch_size",
               "early_stopping")
    assert [c.name for c in settings.categories] == list(builtin)
    assert all(c.enabled and type(c.plugin).__module__ == f"{PACKAGE}.categories.{c.name}"
               for c in settings.categories)

    # the quickstart races seeds: the matrix holds every seed up to max, paired
    race = settings.execution.race
    assert race is not None and (race.min_seeds, race.max_seeds) == (2, 3)
    seeds = race.max_seeds
    experiments = build_matrix(settings)
    assert len(experiments) == (2 * 12 + 2) * seeds
    assert Counter(e.model for e in experiments) == {"test_resnet.r160_in1k": 13 * seeds,
                                                     "test_efficientnet.r160_in1k": 13 * seeds}
    assert Counter(e.category for e in experiments) == {
        "baseline": 2 * seeds, **dict.fromkeys(builtin, 4 * seeds)}
    assert len({e.id for e in experiments}) == 26 * seeds
    assert [e.run_name for e in experiments if e.repeat == 0][:13] == [f"{n}_seed42" for n in (
        "baseline", "opt_AdamW_lr0.003_wd0.001", "opt_SGD_lr0.05_mom0.9_wd0.0001",
        "sch_CosineAnnealingLR_T2", "sch_OneCycleLR_maxlr0.01", "loss_FocalLoss_alpha2_gamma1",
        "loss_LabelSmoothingLoss_smooth0.1", "img16_batch64", "img32_batch64", "batch32_MP",
        "batch128", "es_patience1", "es_patience3")]
    assert {e.config["random_seed"] for e in experiments} == {42, 43, 44}

    for model in settings.models:  # every model's script is there (and a .sh is executable)
        files = [repo_root / arg for arg in model.script if arg.endswith((".py", ".sh"))]
        assert files and all(f.is_file() for f in files), model.script
        assert all(os.access(f, os.X_OK) for f in files if f.suffix == ".sh"), model.script

"""Category plugins: the six built-ins (run names as the original's, the exact V2 keys they set,
validation), YAML-only categories, and a third-party category from a real entry point."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hyperparameter_system import hookspecs, plugins
from hyperparameter_system.categories.base import YamlCategory
from hyperparameter_system.config.schema import load_schema
from hyperparameter_system.core.errors import HpsysError

BUILTINS: dict[str, list[tuple[dict[str, Any], str, dict[str, Any]]]] = {
    # category: [(option, run name, config changes)]
    "optimizer": [
        ({"name": "AdamW", "lr": 0.001, "weight_decay": 0.001, "description": "x"},
         "opt_AdamW_lr0.001_wd0.001",
         {"optimizer_name": "AdamW", "lr": 0.001, "weight_decay": 0.001}),
        ({"name": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0001},
         "opt_SGD_lr0.01_mom0.9_wd0.0001",
         {"optimizer_name": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0001}),
    ],
    "scheduler": [
        ({"name": "CosineAnnealingLR", "T_max": 25, "eta_min": 0.0001},
         "sch_CosineAnnealingLR_T25",
         {"scheduler_name": "CosineAnnealingLR", "scheduler_params.T_max": 25,
          "scheduler_params.eta_min": 0.0001}),
        ({"name": "OneCycleLR", "max_lr": 0.01, "total_steps": 1000},
         "sch_OneCycleLR_maxlr0.01",
         {"scheduler_name": "OneCycleLR", "scheduler_params.max_lr": 0.01,
          "scheduler_params.total_steps": 1000}),
    ],
    "loss_function": [
        ({"name": "FocalLoss", "alpha": 2, "gamma": 1}, "loss_FocalLoss_alpha2_gamma1",
         {"criterion": "FocalLoss", "focal_alpha": 2, "focal_gamma": 1}),
        ({"name": "LabelSmoothingLoss", "smoothing": 0.1}, "loss_LabelSmoothingLoss_smooth0.1",
         {"criterion": "LabelSmoothingLoss", "label_smooth": 0.1}),
    ],
    "image_size": [({"size": 320, "batch_size": 64}, "img320_batch64",
                    {"image_size": 320, "batch_size": 64})],
    "batch_size": [
        ({"batch_size": 32, "mixed_precision": True}, "batch32_MP",
         {"batch_size": 32, "mixed_precision": True}),
        ({"batch_size": 64, "mixed_precision": False}, "batch64",
         {"batch_size": 64, "mixed_precision": False}),
    ],
    "early_stopping": [({"patience": 10, "description": "stable"}, "es_patience10",
                        {"patience": 10})],
    "augmentation": [({"type": "dynamic", "eda": True, "dynamic_enabled": True},
                      "aug_dynamic_eda",
                      {"online_augmentation": True, "dynamic_augmentation.enabled": True,
                       "augmentation.eda": True})],
    "regularization": [({"dropout": 0.1, "weight_decay": 0.001}, "reg_drop0.1_wd0.001",
                        {"timm.drop_rate": 0.1, "weight_decay": 0.001})],
}
# The built-in engine's published schema: ranges and names are its facts, not the runner's.
ENGINE = load_schema(Path(__file__).resolve().parents[1] / "codes" / "train.schema.json")
CASES = [(cat, *case) for cat, cases in BUILTINS.items() for case in cases]


def _locate(key: str | None) -> str:
    return f"cfg.yaml:1: {key}"


def test_the_six_builtins_are_registered() -> None:
    assert set(BUILTINS) <= set(plugins.categories())


@pytest.mark.parametrize(("category", "option", "run_name", "changes"), CASES)
def test_builtin_run_name_and_changes(category, option, run_name, changes) -> None:
    plugin = plugins.categories()[category]
    plugin.validate(option, _locate, [ENGINE])
    assert plugin.run_name(option) == run_name
    assert plugin.changes(option) == changes  # description is a label, never a config key


@pytest.mark.parametrize(("category", "option", "message"), [
    ("optimizer", {"name": "SGD", "momentom": 0.9}, "did you mean 'momentum'"),
    ("optimizer", {"lr": 0.1}, "missing required key 'name'"),
    ("optimizer", {"name": "SGD", "lr": "fast"}, "expected float"),
    ("optimizer", {"name": "SGD", "momentum": 1.5}, r"in \[0, 1\]"),
    ("loss_function", {"name": "FocalLoss", "gamma": -1}, ">= 0"),
    ("image_size", {"size": 320.5}, "expected int"),
    ("batch_size", {"batch_size": 0}, ">= 1"),
    ("batch_size", {"batch_size": 32, "mixed_precision": "yes"}, "expected bool"),
    ("early_stopping", {"patience": True}, "expected int"),
])
def test_builtin_validation(category, option, message) -> None:
    with pytest.raises(HpsysError, match=message):
        plugins.categories()[category].validate(option, _locate, [ENGINE])


def test_scheduler_passes_its_own_extra_parameters() -> None:
    plugin = plugins.categories()["scheduler"]
    option = {"name": "StepLR", "step_size": 5, "gamma": 0.5, "last_epoch": -1}
    plugin.validate(option, _locate, [ENGINE])
    assert plugin.changes(option)["scheduler_params.last_epoch"] == -1
    assert plugin.run_name(option) == "sch_StepLR_step5_gamma0.5"


@pytest.mark.parametrize(("category", "option", "hint"), [
    ("optimizer", {"name": "SDG"}, "SGD"),
    ("optimizer", {"name": "adamw", "lr": 0}, None),
    ("scheduler", {"name": "CosineAnealingLR"}, "CosineAnnealingLR"),
    ("loss_function", {"name": "FocalLos"}, "FocalLoss"),
])
def test_unknown_names_are_refused_before_launch(category, option, hint) -> None:
    """A typo would otherwise fail every run of that option, one launch at a time."""
    with pytest.raises(HpsysError) as caught:
        plugins.categories()[category].validate(option, _locate, [ENGINE])
    assert (f"did you mean '{hint}'" if hint else "expected a number > 0") in str(caught.value)


@pytest.mark.parametrize(("category", "name"), [
    ("optimizer", "lamb"), ("optimizer", "ADAMW"), ("scheduler", "none"),
    ("loss_function", "ce"), ("loss_function", "focalloss")])
def test_other_names_the_trainer_knows_pass(category, name) -> None:
    plugins.categories()[category].validate({"name": name}, _locate, [ENGINE])


def test_scheduler_refuses_a_parameter_no_scheduler_has() -> None:
    """A typo would otherwise land in scheduler_params, where nothing reads it."""
    with pytest.raises(HpsysError, match=r"gama: unknown.*did you mean 'gamma'"):
        plugins.categories()["scheduler"].validate({"name": "StepLR", "gama": 0.5}, _locate,
                                                   [ENGINE])


def test_yaml_only_category() -> None:
    cat = YamlCategory("regularization")
    option = {"weight_decay": 0.01, "scheduler_params.T_max": 5, "+extra": 1,
              "description": "strong"}
    assert cat.changes(option) == {"weight_decay": 0.01, "scheduler_params.T_max": 5,
                                   "extra": 1}
    assert cat.run_name(option) == "regularization_weight_decay0.01_scheduler_params.T_max5_extra1"


def test_hook_register_categories(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each default plugin's hook registers its category; a second claim on a name is refused."""
    pm = plugins.plugin_manager()
    seen: list[str] = []
    pm.hook.register_categories(register=lambda c: seen.append(c.name))
    assert sorted(seen) == sorted(BUILTINS)

    class Twin(YamlCategory):
        pass

    class Dup:
        @hookspecs.hookimpl
        def register_categories(self, register):
            register(Twin("optimizer"))

    pm.register(Dup())
    monkeypatch.setattr(plugins, "plugin_manager", lambda: pm)
    with pytest.raises(HpsysError, match="'optimizer' is already registered"):
        plugins.categories()


def test_every_hookspec_is_tested() -> None:
    """datasette-style: each hook in hookspecs.py has a test_hook_<name> in this module."""
    specs = {name for name, obj in vars(hookspecs).items()
             if hasattr(obj, "hyperparameter_system_spec")}
    assert specs
    missing = {s for s in specs if f"test_hook_{s}" not in globals()}
    assert not missing, f"hooks without a test: {missing}"


PLUGIN = '''
from hyperparameter_system.categories.base import Category, Param
from hyperparameter_system.hookspecs import hookimpl


class Warmup(Category):
    name = "warmup"
    params = (Param("epochs", "scheduler_params.warmup_epochs", int, required=True, minimum=0),)

    def run_name(self, option):
        return f"warmup{option['epochs']}"


@hookimpl
def register_categories(register):
    register(Warmup())
'''


def _install_plugin(site: Path) -> None:
    """A package with a real entry point: importlib.metadata finds it on PYTHONPATH."""
    (site / "mypkg").mkdir(parents=True)
    (site / "mypkg" / "__init__.py").write_text(PLUGIN)
    info = site / "mypkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[hyperparameter_system.categories]\nmypkg = mypkg\n")


def test_third_party_and_yaml_only_categories_run(tmp_path, master_config, cli,
                                                  fake_records) -> None:
    site = tmp_path / "site"
    _install_plugin(site)
    path = master_config(experiment_categories={
        "warmup": {"options": [{"epochs": 3}]},
        "reg_yaml": {"options": [{"weight_decay": 0.05, "label_smooth": 0.1}]},
    }, system={"baseline": False, "overrides": ["epochs=5"]})  # warm-up 3 < epochs (a rule)
    res = cli("--config", str(path), "--models", "fake-net.v1", env={"PYTHONPATH": str(site)})
    assert res.returncode == 0, res.stderr
    recs = fake_records(tmp_path / "runs")
    assert set(recs) == {"fake_net_v1/warmup3",
                         "fake_net_v1/reg_yaml_weight_decay0.05_label_smooth0.1"}
    assert recs["fake_net_v1/warmup3"]["config"]["scheduler_params"]["warmup_epochs"] == 3
    assert recs["fake_net_v1/warmup3"]["env"]["WANDB_RUN_GROUP"] == "warmup"
    reg = recs["fake_net_v1/reg_yaml_weight_decay0.05_label_smooth0.1"]["config"]
    assert (reg["weight_decay"], reg["label_smooth"]) == (0.05, 0.1)
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert {r[0] for r in db.execute("SELECT status FROM experiments")} == {"done"}

    # entry points disabled: `warmup` is a YAML-only category, its keys must be base keys
    res = cli("--config", str(path), "--dry-run", "--categories", "warmup",
              env={"PYTHONPATH": str(site), "HPSYS_DISABLE_PLUGINS": "1"})
    assert res.returncode == 0 and "warmup_epochs3" in res.stdout
    bad = master_config("bad.yaml", experiment_categories={"warmup": {"options": [{"epoch": 3}]}})
    res = cli("--config", str(bad), "--dry-run",
              env={"PYTHONPATH": str(site), "HPSYS_DISABLE_PLUGINS": "1"})
    assert res.returncode == 2 and "'epoch' is not a key of the base config" in res.stderr
    assert res.stderr.count("\n") == 1


# ---------------------------------------------------------------- augmentation, regularization

@pytest.mark.parametrize(("option", "run_name", "changes"), [
    ({"type": "minimal", "eda": True, "dynamic_enabled": False, "description": "x"},
     "aug_minimal_eda",
     {"online_augmentation": True, "augmentation.eda": True,
      "dynamic_augmentation.enabled": False}),
    ({"type": "dynamic", "eda": True, "dynamic_enabled": True}, "aug_dynamic_eda",
     {"online_augmentation": True, "dynamic_augmentation.enabled": True,
      "augmentation.eda": True}),
    ({"type": "mixup", "cutmix": True}, "aug_mixup_cutmix",
     {"online_augmentation": True, "augmentation.mixup": True, "augmentation.cutmix": True}),
])
def test_augmentation_category(option, run_name, changes) -> None:
    plugin = plugins.categories()["augmentation"]
    assert plugin.run_name(option) == run_name
    assert plugin.changes(option) == changes


def test_augmentation_policies_are_checked_against_the_engine() -> None:
    plugin = plugins.categories()["augmentation"]
    for kind in ("minimal", "dynamic", "mixup", "cutmix", "eda"):
        plugin.validate({"type": kind}, _locate, [ENGINE])
    with pytest.raises(HpsysError, match="unknown augmentation policy 'mixupp'"):
        plugin.validate({"type": "mixupp"}, _locate, [ENGINE])
    with pytest.raises(HpsysError, match="expected bool"):
        plugin.validate({"type": "dynamic", "eda": "yes"}, _locate, [ENGINE])


@pytest.mark.parametrize(("option", "run_name", "changes"), [
    ({"dropout": 0.1, "weight_decay": 0.001, "description": "light"}, "reg_drop0.1_wd0.001",
     {"timm.drop_rate": 0.1, "weight_decay": 0.001}),
    ({"dropout": 0.3, "drop_path": 0.2, "label_smooth": 0.1}, "reg_drop0.3_dp0.2_ls0.1",
     {"timm.drop_rate": 0.3, "timm.drop_path_rate": 0.2, "label_smooth": 0.1}),
])
def test_regularization_category(option, run_name, changes) -> None:
    plugin = plugins.categories()["regularization"]
    plugin.validate(option, _locate, [ENGINE])
    assert plugin.run_name(option) == run_name
    assert plugin.changes(option) == changes


def test_regularization_values_are_the_engines_to_refuse() -> None:
    with pytest.raises(HpsysError, match=r"\[0, 1\)"):
        plugins.categories()["regularization"].validate({"dropout": 1.5}, _locate, [ENGINE])

"""load_settings: the shipped and the legacy master configs load, values are typed and resolved,
`--set` overrides reach every base config, and bad values are told at their file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core.errors import HpsysError

LEGACY = Path(__file__).parent / "fakes" / "legacy_config.yaml"


def test_shipped_master_config_loads(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_root)
    s = load_settings("experiment_config.yaml")
    assert [m.name for m in s.models if m.enabled] == [
        "resnet50.tv2_in1k", "efficientnet_b4.ra2_in1k", "efficientnet_b3.ra2_in1k",
        "swin_base_patch4_window12_384.ms_in1k"]
    assert not s.model("convnext_base.fb_in1k").enabled
    assert [c.name for c in s.categories if c.enabled] == [
        "optimizer", "scheduler", "loss_function", "image_size", "batch_size", "early_stopping"]
    assert not s.category("regularization").enabled
    assert s.system.metric == "metrics.best_val_f1" and s.system.metric_mode == "max"
    assert s.system.base_config == repo_root / "codes" / "config_v2.yaml"
    assert s.execution.max_parallel == 1 and s.execution.experiment_timeout == 7200
    assert s.execution.max_attempts == 2  # retry_failed: true is one retry
    assert s.model("resnet50.tv2_in1k").project == "resnet50_tv2_in1k"


def test_legacy_master_config_loads_unchanged(repo_root: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_root)
    s = load_settings(LEGACY)
    assert s.system.base_config == repo_root / "tests" / "fakes" / "base.yaml"
    assert s.system.temp_config_dir == repo_root / "temp_configs"
    assert [m.name for m in s.models] == ["resnet50.tv2_in1k", "convnext_base.fb_in1k"]
    assert s.model("resnet50.tv2_in1k").base["optimizer_name"] == "AdamW"
    assert s.execution.retry_failed == 1
    assert {c.name: c.enabled for c in s.categories} == {
        "optimizer": True, "image_size": False, "augmentation": False}


@pytest.mark.parametrize(("value", "attempts"), [(True, 2), (False, 1), (0, 1), (3, 4)])
def test_retry_failed_takes_true_false_or_a_count(master_config, value, attempts) -> None:
    s = load_settings(master_config(execution={"retry_failed": value}))
    assert s.execution.max_attempts == attempts


def test_set_overrides_every_base_config(master_config) -> None:
    s = load_settings(master_config(), ["epochs=7", "scheduler_params.T_max=25", "+extra.k=1"])
    for model in s.models:
        assert model.base["epochs"] == 7
        assert model.base["scheduler_params"]["T_max"] == 25
        assert model.base["extra"] == {"k": 1}


def test_set_unknown_key_names_the_close_match(master_config) -> None:
    with pytest.raises(HpsysError, match=r"unknown key 'epocs' \(did you mean 'epochs'\?\)"):
        load_settings(master_config(), ["epocs=3"])


def test_yaml_only_category_may_change_only_base_keys(master_config) -> None:
    path = master_config(experiment_categories={
        "reg": {"options": [{"weight_decay": 0.1, "label_smoth": 0.1}]}})
    with pytest.raises(HpsysError) as err:
        load_settings(path)
    text = str(err.value)
    assert f"{path}:" in text and "experiment_categories.reg.options[0].label_smoth" in text
    assert "did you mean 'label_smooth'" in text
    # '+key' adds a key the base config lacks
    ok = master_config(experiment_categories={"reg": {"options": [{"+new.key": 1}]}})
    assert load_settings(ok).category("reg").plugin.changes({"+new.key": 1}) == {"new.key": 1}


@pytest.mark.parametrize(("section", "value", "key_path", "expected"), [
    ("execution", {"max_parallel": 0}, "execution.max_parallel", ">= 1"),
    ("execution", {"max_parallel": "two"}, "execution.max_parallel", "an integer"),
    ("execution", {"experiment_timeout": -5}, "execution.experiment_timeout", "> 0"),
    ("execution", {"retry_failed": -1}, "execution.retry_failed", "true, false or a count"),
    ("execution", {"retry_failed": "often"}, "execution.retry_failed", "true or false"),
    ("system", {"keep_temp_configs": "yes"}, "system.keep_temp_configs", "true or false"),
    ("system", {"metric_mode": "maximum"}, "system.metric_mode", "did you mean 'max'"),
])
def test_bad_values_name_file_line_and_key(master_config, section, value, key_path,
                                           expected) -> None:
    path = master_config(**{section: value})
    with pytest.raises(HpsysError) as err:
        load_settings(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if t.strip().startswith(f"{key_path.rsplit('.', 1)[1]}:"))
    assert str(err.value).startswith(f"{path}:{line}: {key_path}: ")
    assert expected in str(err.value)


def _master(tmp_path: Path, base: Path, overrides: list[str] | None = None) -> Path:
    root = Path(__file__).resolve().parent.parent
    lines = ["system:", f"  project_root: {root}", f"  base_config: {base}",
             f"  ledger: {tmp_path / 'l.db'}"]
    if overrides is not None:
        lines += ["  overrides:", *(f"    - {o}" for o in overrides)]
    lines += ["models:", "  - name: m1", "    script: python tests/fakes/fake_train.py",
              "experiment_categories:", "  fake:", "    options:", "      - {lr: 0.1}"]
    path = tmp_path / "master.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_name_in_the_base_config_is_checked_at_its_line(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    text = (Path(__file__).parent / "fakes" / "base.yaml").read_text()
    base.write_text(text.replace("optimizer_name: AdamW", "optimizer_name: Adamm"))
    line = next(i for i, t in enumerate(base.read_text().splitlines(), 1)
                if t.startswith("optimizer_name"))
    with pytest.raises(HpsysError, match=f"{base}:{line}: optimizer_name.*'Adamm'.*'Adam'"):
        load_settings(_master(tmp_path, base))
    # an override that fixes it wins, and is no error
    load_settings(_master(tmp_path, base), ["optimizer_name=adamw"])


def test_overrides_of_names_and_numbers_that_fit_are_taken(tmp_path: Path) -> None:
    base = Path(__file__).parent / "fakes" / "base.yaml"
    s = load_settings(_master(tmp_path, base, ["scheduler_name=StepLR", "criterion=focal"]),
                      ["lr=1e-3", "batch_size=32", "epochs=3", "pretrained=true"])
    b = s.model("m1").base  # 1e-3 is a number, as YAML 1.2 reads it (issue 20)
    assert (b["lr"], b["batch_size"], b["epochs"], b["pretrained"]) == (0.001, 32, 3, True)
    assert b["scheduler_name"] == "StepLR" and b["criterion"] == "focal"


@pytest.mark.parametrize("given", ["batch_size=32.0", "epochs=null", "model_name=7",
                                   "epochs=-1", "lr=nan", "lr=.inf", "batch_size=-5",
                                   "image_size=0", "label_smooth=1.0"])
def test_overrides_the_engine_refuses_are_refused_before_launch(tmp_path: Path, given) -> None:
    """What the script's schema refuses would fail every run: told once, at the --set."""
    base = Path(__file__).parent / "fakes" / "base.yaml"
    with pytest.raises(HpsysError, match=f"--set {re.escape(given)}.*expected"):
        load_settings(_master(tmp_path, base), [given])


@pytest.mark.parametrize(("given", "file", "where", "message"), [
    (["lr=abc"], None, "--set lr=abc", "expected a number"),
    (["batch_size=[1]"], None, "--set batch_size=[1]", "expected a number"),
    (["pretrained=1"], None, "--set pretrained=1", "expected true or false"),
    ([], ["scheduler_name=Cosine", "criterion=focal"], "system.overrides", "'Cosine'"),
    (["criterion=focal"], ["criterion=Focall"], "--set criterion=focal", None),
    (["criterion=Focall"], ["criterion=focal"], "--set criterion=Focall", "unknown name"),
])
def test_bad_overrides_are_told_at_the_override(tmp_path: Path, given, file, where,
                                                 message) -> None:
    base = Path(__file__).parent / "fakes" / "base.yaml"
    master = _master(tmp_path, base, file)
    if message is None:  # --set wins over system.overrides: the last value is checked
        load_settings(master, given)
        return
    with pytest.raises(HpsysError) as err:
        load_settings(master, given)
    assert where in str(err.value) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)

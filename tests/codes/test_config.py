"""Config loading and Hydra-style overrides: fast, torch-free unit tests."""

from __future__ import annotations

import pytest
from trainer.config import apply_overrides, config_path_from, load_config, load_yaml, validate
from trainer.errors import ConfigError

BASE = {
    "lr": 0.001,
    "batch_size": 64,
    "scheduler_params": {"T_max": 10, "eta_min": 0.0},
    "wandb": {"mode": "disabled"},
}


def test_shipped_config_is_valid(codes_dir):
    cfg = load_config(codes_dir / "config_v2.yaml", [])
    for key in (
        "model_name",
        "pretrained",
        "fine_tuning",
        "num_classes",
        "criterion",
        "label_smooth",
        "focal_alpha",
        "focal_gamma",
        "class_weighting",
        "optimizer_name",
        "lr",
        "weight_decay",
        "momentum",
        "scheduler_name",
        "image_size",
        "batch_size",
        "mixed_precision",
        "epochs",
        "patience",
        "val_split_ratio",
        "n_folds",
        "stratify",
        "random_seed",
        "data_dir",
        "train_data",
        "num_workers",
        "norm_mean",
        "norm_std",
        "wandb",
        "output_dir",
    ):
        assert key in cfg, key
    for key in ("T_max", "eta_min", "max_lr", "total_steps", "step_size", "gamma"):
        assert key in cfg["scheduler_params"], key
    assert set(cfg["wandb"]) >= {"project", "entity", "mode", "log", "group", "tags", "id"}


def test_override_grammar():
    out = apply_overrides(
        BASE,
        [
            "lr=0.1",
            "scheduler_params.T_max=25",
            "+dropout=0.2",
            "++batch_size=32",
            "++new.nested=[1, 2]",
            "~wandb",
        ],
    )
    assert out["lr"] == 0.1 and out["scheduler_params"]["T_max"] == 25
    assert out["dropout"] == 0.2 and out["batch_size"] == 32
    assert out["new"] == {"nested": [1, 2]} and "wandb" not in out
    assert BASE["lr"] == 0.001  # the input is not changed


def test_values_are_yaml():
    out = apply_overrides(BASE, ["+a=true", "+b=null", "+c=abc", "+d={x: 1}", "+e=1e-3"])
    assert out["a"] is True and out["b"] is None and out["c"] == "abc" and out["d"] == {"x": 1}
    assert validate(apply_overrides(BASE, ["lr=1e-3"]))["lr"] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("btach_size=3", "did you mean: batch_size"),
        ("scheduler_params.T_mx=3", "scheduler_params.T_max"),
        ("+lr=0.1", "already exists"),
        ("batch_size=abc", "'batch_size' expected an integer, got 'abc'"),
        ("lr=fast", "'lr' expected"),
        ("batch_size=0", "positive integer"),
        ("lr", "expected key=value"),
    ],
)
def test_bad_overrides(override, needle):
    with pytest.raises(ConfigError) as err:
        validate(apply_overrides(BASE, [override]))
    assert needle in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: 0.1\nbatch_size: [1, 2\nepochs: 3\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert f"{path}:" in str(err.value) and "YAML syntax error" in str(err.value)


def test_choices_are_checked():
    with pytest.raises(ConfigError, match="fine_tuning"):
        validate({"fine_tuning": "hed"})


def test_config_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPERIMENT_CONFIG", str(tmp_path / "x.yaml"))
    assert config_path_from(None) == tmp_path / "x.yaml"
    assert config_path_from("a.yaml").name == "a.yaml"
    monkeypatch.delenv("EXPERIMENT_CONFIG")
    with pytest.raises(ConfigError, match="EXPERIMENT_CONFIG"):
        config_path_from(None)


def test_unused_keys_are_reported(codes_dir):
    from trainer.config import unused_keys

    cfg = load_config(codes_dir / "config_v2.yaml", ["+dropout=0.1"])
    assert unused_keys(cfg) == ["dropout"]


def test_ranges_and_channel_lists(codes_dir):
    path = codes_dir / "config_v2.yaml"
    cfg = load_config(path, ["norm_mean=[0.5]", "norm_std=[0.25]", "label_smooth=0", "patience=0"])
    assert cfg["norm_std"] == [0.25] and cfg["label_smooth"] == 0
    for bad in ("label_smooth=1", "momentum=1.5", "weight_decay=-1", "norm_std=[0.2,0.2,0]"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(path, [bad])

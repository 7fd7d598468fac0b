"""Composed base configs: a Hydra primary config (defaults list, config groups, interpolation)
composed by the runner into the one resolved temp config, by the engine the same way by hand,
and config-group choices as category options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CODES = ROOT / "codes"
if str(CODES) not in sys.path:
    sys.path.insert(0, str(CODES))

from trainer.config import load_config  # noqa: E402
from trainer.errors import ConfigError  # noqa: E402

from hyperparameter_system.config.settings import load_settings  # noqa: E402
from hyperparameter_system.core.errors import HpsysError  # noqa: E402

CONF = "codes/conf/config.yaml"
GROUPS = {"optimizer": {"options": [{"optimizer": "sgd"}, {"optimizer": "adamw", "lr": 3.0e-4}]}}


def test_the_composed_conf_is_config_v2() -> None:
    """codes/conf/ is codes/config_v2.yaml as a primary config: composed, the same config."""
    assert load_config(ROOT / CONF, []) == load_config(CODES / "config_v2.yaml", [])


def test_runner_and_engine_compose_a_group_choice_alike(master_config) -> None:
    sets = ["optimizer=sgd", "scheduler=step", "epochs=3"]
    path = master_config(system={"base_config": CONF},
                         models=[{"name": "resnet18", "script": "python codes/train.py"}],
                         experiment_categories={"early_stopping": {"options": [{"patience": 2}]}})
    base = load_settings(path, sets).models[0].base
    engine = load_config(ROOT / CONF, sets)
    assert base == {k: v for k, v in engine.items() if k != "model_name"} | {
        "model_name": base["model_name"]}
    assert (base["optimizer_name"], base["lr"], base["scheduler_name"]) == ("SGD", 0.01, "StepLR")
    assert "${" not in json.dumps(base)


def test_a_group_choice_not_in_the_group_is_refused_with_its_entries(master_config) -> None:
    path = master_config(system={"base_config": CONF},
                         models=[{"name": "resnet18", "script": "python codes/train.py"}])
    with pytest.raises(HpsysError, match=r"--set optimizer=sgdd .*unknown choice 'sgdd' "
                                         r"\(did you mean 'sgd'\?\); expected one of adamw, sgd"):
        load_settings(path, ["optimizer=sgdd"])
    with pytest.raises(ConfigError, match="unknown choice 'sgdd'"):
        load_config(ROOT / CONF, ["optimizer=sgdd"])
    bad = {"optimizer": {"options": [{"optimizer": "sgdd"}]}}
    path = master_config(system={"base_config": CONF},
                         models=[{"name": "resnet18", "script": "python codes/train.py"}],
                         experiment_categories=bad)
    with pytest.raises(HpsysError, match=r"options\[0\]\.optimizer: unknown optimizer choice "
                                         r"'sgdd' \(did you mean 'sgd'\?\)"):
        load_settings(path)


def test_group_choices_as_options_change_what_their_entry_sets(master_config) -> None:
    path = master_config(system={"base_config": CONF, "overrides": ["epochs=2"]},
                         models=[{"name": "resnet18", "script": "python codes/train.py"}],
                         experiment_categories=GROUPS)
    category = load_settings(path).categories[0]
    sgd, adamw = category.options
    assert category.plugin.run_name(sgd) == "opt_sgd"
    assert category.plugin.run_name(adamw) == "opt_adamw_lr0.0003"
    assert category.plugin.changes(sgd) == {"optimizer_name": "SGD", "lr": 0.01}
    assert category.plugin.changes(adamw) == {"lr": 3.0e-4}


@pytest.mark.slow
def test_a_composed_quickstart_trains_for_real(master_config, cli, tmp_path,
                                                data_dir) -> None:
    """The base composed from a defaults list, an ${oc.env:...} interpolation and a config-group
    category, trained on the embedded digits: temp configs resolved, `effective` as asked."""
    data = data_dir
    path = master_config(
        system={"base_config": CONF, "keep_temp_configs": True,
                "overrides": ["epochs=1", "limit_samples=120", "image_size=16", "batch_size=32",
                              f"output_dir={tmp_path / 'outputs'}", "num_workers=0"]},
        models=[{"name": "test_resnet.r160_in1k", "script": "python codes/train.py"}],
        experiment_categories=GROUPS, execution={"max_parallel": 2, "experiment_timeout": 300})
    res = cli("--config", str(path), "--all", env={"HPSYS_DATA_DIR": str(data)}, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "3 done, 0 failed" in res.stdout, res.stdout[-2000:]
    temps = list((tmp_path / "temp_configs").glob("*.yaml"))
    assert len(temps) == 3
    for temp in temps:
        text = temp.read_text()
        assert "${" not in text and "defaults" not in yaml.safe_load(text), temp
        assert yaml.safe_load(text)["data_dir"] == str(data)
    effective = {run.name: json.loads((run / "result.json").read_text())["effective"]
                 for run in (tmp_path / "runs" / "test_resnet_r160_in1k").iterdir()}
    sgd = next(e for name, e in effective.items() if name.startswith("opt_sgd_"))
    adamw = next(e for name, e in effective.items() if name.startswith("opt_adamw_lr0.0003_"))
    assert (sgd["optimizer"], sgd["lr"]) == ("SGD", pytest.approx(0.01))
    assert (adamw["optimizer"], adamw["lr"]) == ("AdamW", pytest.approx(3.0e-4))


def test_a_search_space_may_choose_group_entries(master_config, cli, tmp_path) -> None:
    """`optimizer: {choices: [sgd, adamw]}` on a composed base: each trial's config is the one
    its entry composes (the fake trainer records it)."""
    search = {"opt": {"n_trials": 2, "sampler": "grid", "pruner": "none",
                      "space": {"optimizer": {"choices": ["sgd", "adamw"]}}}}
    fake = [{"name": "fake-net.v1", "script": "python tests/fakes/fake_train.py"}]
    path = master_config(system={"base_config": CONF}, models=fake, search=search,
                         experiment_categories={"early_stopping": {"options": [{"patience": 2}]}})
    param = load_settings(path).searches[0].space[0]
    assert param.changes("sgd") == {"optimizer_name": "SGD", "lr": 0.01}
    assert param.changes("adamw") == {}
    res = cli("--config", str(path), "--search", "opt")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    seen = sorted(json.loads(p.read_text())["config"]["optimizer_name"]
                  for p in (tmp_path / "runs").rglob("record.json"))
    assert seen == ["AdamW", "SGD"]

    bad = {"opt": {"space": {"optimizer": {"choices": ["sgdd"]}}}}
    path = master_config(system={"base_config": CONF}, models=fake, search=bad)
    with pytest.raises(HpsysError, match=r"unknown optimizer choice 'sgdd' \(did you mean"):
        load_settings(path)


def test_a_broken_composition_is_one_line(master_config, cli, tmp_path) -> None:
    """A group entry with a YAML error, a default naming no entry: one line, exit 2."""
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "codes" / "conf", conf)
    (conf / "optimizer" / "broken.yaml").write_text("# @package _global_\noptimizer_name: [\n")
    path = master_config(system={"base_config": str(conf / "config.yaml")},
                         models=[{"name": "resnet18", "script": "python codes/train.py"}])
    res = cli("--config", str(path), "--matrix", "--set", "optimizer=broken")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "broken.yaml:3: YAML syntax error" in res.stderr
    text = (conf / "config.yaml").read_text()
    (conf / "config.yaml").write_text(text.replace("scheduler: cosine", "scheduler: nope"))
    res = cli("--config", str(path), "--matrix")
    assert res.returncode == 2 and "Could not find 'scheduler/nope'" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_the_shipped_composed_quickstart_loads() -> None:
    settings = load_settings(ROOT / "examples" / "quickstart_hydra.yaml")
    names = [c.plugin.run_name(o) for c in settings.categories for o in c.options]
    assert names == ["opt_sgd", "opt_adamw_lr0.0003", "sch_step"]
    assert "${" not in json.dumps(settings.models[0].base)

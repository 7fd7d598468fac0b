"""A Hydra app as a model's script (`script_args: hydra`): the launcher hands it the temp config
as its primary config (--config-path/--config-name), the run folder as hydra.run.dir and the base
config's folder on its search path (its defaults list's groups), instead of `--config PATH`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.matrix.experiments import build_matrix
from hyperparameter_system.run.launcher import hydra_args, plan

ROOT = Path(__file__).resolve().parents[1]
APP = "examples/hydra_app"


def test_a_hydra_model_gets_hydras_arguments_instead_of_config(master_config) -> None:
    fake = "python tests/fakes/fake_train.py"
    settings = load_settings(master_config(models=[
        {"name": "app", "script": fake, "script_args": "hydra"},
        {"name": "plain", "script": fake, "script_args": "config"}]))
    launches = {e.model: plan(e, settings, 1) for e in build_matrix(settings)
                if e.category == "baseline"}
    app, plain = launches["app"], launches["plain"]
    temp = Path(app.config_path)
    assert app.argv[2:] == hydra_args(temp, Path(app.run_dir), settings.model("app")
                                      .base_config.parent)
    assert app.argv[2] == f"--config-path={temp.parent.resolve()}" and "--config" not in app.argv
    assert f"hydra.run.dir='{Path(app.run_dir).resolve()}'" in app.argv
    assert plain.argv[2:] == ("--config", plain.config_path)


def test_hydra_args_quote_odd_paths(tmp_path: Path) -> None:
    pytest.importorskip("hydra")
    from hydra.core.override_parser.overrides_parser import OverridesParser

    odd = tmp_path / "runs, it's=odd"
    args = hydra_args(tmp_path / "tc" / "001_opt_lr0.1_x.yaml", odd, tmp_path / "conf")
    assert args[:2] == (f"--config-path={tmp_path / 'tc'}", "--config-name=001_opt_lr0.1_x")
    parsed = OverridesParser.create().parse_overrides(list(args[2:]))
    assert parsed[0].value() == str(odd)
    assert parsed[1].value() == [(tmp_path / "conf").as_uri()]


def test_script_args_is_checked_like_every_key(master_config, cli) -> None:
    path = master_config(models=[{"name": "m", "script": "python tests/fakes/fake_train.py",
                                  "script_args": "hydr"}])
    out = cli("--config", str(path), "--dry-run", "--all")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert f"{path}:" in out.stderr and "models[0].script_args: expected one of config, hydra" \
        in out.stderr and "did you mean 'hydra'" in out.stderr


@pytest.mark.slow
def test_a_hydra_app_gets_the_option_and_writes_into_the_run_folder(tmp_path: Path) -> None:
    pytest.importorskip("hydra")
    master = {
        "system": {"project_root": str(ROOT), "ledger": str(tmp_path / "l.db"),
                   "runs_dir": str(tmp_path / "runs"), "temp_config_dir": str(tmp_path / "tc"),
                   "wandb_mode": "disabled", "metric": "metrics.best_val_f1"},
        "models": [{"name": "hydra_app", "script": f"python {APP}/train.py",
                    "script_args": "hydra", "base_config": f"{APP}/conf/config.yaml"}],
        "experiment_categories": {"linear": {"options": [{"lr": 0.05, "+model.alpha": 0.01}]}},
        "execution": {"max_parallel": 2, "gpus": "none",  # forked from a preloaded server
                      "preload": ["hydra", "omegaconf", "sklearn.linear_model"]},
    }
    path = tmp_path / "master.yaml"
    path.write_text(yaml.safe_dump(master, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPSYS_", "WANDB_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    out = subprocess.run([sys.executable, "-m", "hyperparameter_system.experiment_runner",
                          "--config", str(path), "--all"], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    with sqlite3.connect(tmp_path / "l.db") as db:
        db.row_factory = sqlite3.Row
        rows = {r["category"]: dict(r) for r in db.execute("SELECT * FROM experiments")}
    assert {c: r["status"] for c, r in rows.items()} == {"baseline": "done", "linear": "done"}
    option = rows["linear"]
    run_dir = Path(option["run_dir"])
    seen = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())  # the app's cfg
    assert seen["lr"] == 0.05 and seen["model"] == {"name": "linear", "alpha": 0.01}
    assert "defaults" not in seen and seen["epochs"] == 3  # composed by Hydra, not copied
    base = yaml.safe_load((Path(rows["baseline"]["run_dir"]) / ".hydra" / "config.yaml")
                          .read_text())
    assert base["model"]["alpha"] == 0.0001 and base["lr"] == 0.01
    result = json.loads(option["result_json"])
    assert result["effective"] == {"model": "SGDClassifier", "alpha": 0.01, "lr": 0.05,
                                   "epochs": 3}
    assert result["experiment_id"] == option["id"] and result["run_dir"] == str(run_dir)
    assert (run_dir / "coef.npy").is_file() and (run_dir / "metrics.jsonl").is_file()
    assert not (ROOT / "outputs").exists() or not any((ROOT / "outputs").rglob("coef.npy"))
    hydra = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra["job"]["config_name"] == Path(option["config_path"]).stem  # the temp config
    sources = [s["path"] for s in hydra["runtime"]["config_sources"]]
    assert str(tmp_path / "tc") in sources and str(ROOT / APP / "conf") in sources

"""Optuna search: a study per (search, model) on the executor's slots, each trial an experiment
in the ledger launched through the same contract; pruned trials, several objectives, resume
after SIGKILL, and the bad search blocks refused before launch."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hyperparameter_system.app import api
from hyperparameter_system.app import search_api as searches
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.run.studies import experiment_of
from hyperparameter_system.store.ledger import open_ledger

LANDSCAPE = "python tests/fakes/landscape_train.py"
ROOT = Path(__file__).resolve().parents[1]
RUNNER = (sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"))


def search_block(**over: Any) -> dict[str, Any]:
    block = {"models": ["land"], "n_trials": 24, "sampler": "tpe", "seed": 7,
             "pruner": {"rule": "median", "min_epochs": 2},
             "objectives": {"metrics.best_val_f1": "max"}, "start_from": ["baseline"],
             "space": {"lr": {"low": 1.0e-5, "high": 1.0e-1, "log": True},
                       "weight_decay": {"low": 1.0e-6, "high": 1.0e-2, "log": True},
                       "optimizer_name": {"choices": ["AdamW", "SGD"]}}}
    block.update(over)
    return block


@pytest.fixture
def master(tmp_path: Path, master_writer):
    """`master(block, folder=tmp_path, **execution)`: a master config over the landscape."""

    def write(block: dict[str, Any] | None = None, folder: Path | None = None,
              **execution: Any) -> Path:
        return master_writer(folder or tmp_path, **_sections(block, execution))

    return write


def _sections(block: dict[str, Any] | None, execution: dict[str, Any]) -> dict[str, Any]:
    return {"models": [{"name": "land", "script": LANDSCAPE}],
            "experiment_categories": {"early_stopping": {"enabled": False,
                                                         "options": [{"patience": 1}]}},
            "system": {"overrides": ["epochs=4", "+fake.epoch_s=0.15"]},
            "execution": {"max_parallel": 2, "stop_grace_s": 5, **execution},
            "search": {"lr_wd": block or search_block()}}


def test_a_tpe_search_finds_the_optimum_and_prunes(tmp_path: Path, master) -> None:
    settings = api.load(master())
    result = searches.run_search(settings, "lr_wd")
    study = searches.study(settings, "lr_wd", "land")
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 24
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert states.count(TrialState.PRUNED) > 0, "the median pruner stopped nothing"
    values = [t.value for t in trials if t.state == TrialState.COMPLETE]
    assert study.best_value > statistics.median(values) + 0.1
    assert trials[0].params["lr"] == pytest.approx(0.001)  # start_from: baseline, enqueued
    # every trial's params reached the script's config exactly, through the ledger's row
    rows = {r.id: r for r in open_ledger(settings).rows()}
    for trial in trials:
        row = rows[experiment_of(trial)]
        record = json.loads((Path(row.run_dir) / "record.json").read_text())
        for key, value in trial.params.items():
            assert record["config"][key] == value, (key, trial.number)
        assert row.category == "lr_wd" and row.run_name.startswith(f"lr_wd_t{trial.number:03d}")
    assert {o.status for o in result.outcomes} <= {"done", "pruned"}
    status = searches.status(settings, "lr_wd")[0]
    assert status.counts["complete"] + status.counts["pruned"] == 24
    assert status.best[0].values == [pytest.approx(study.best_value)]


def test_two_objectives_give_a_pareto_front(tmp_path: Path, cli, master) -> None:
    block = search_block(n_trials=8, sampler="nsga2", pruner="none",
                         objectives={"metrics.best_val_f1": "max", "duration_s": "min"})
    path = master(block)
    res = cli("--config", str(path), "--search", "lr_wd")
    assert res.returncode == 0, res.stderr
    study = searches.study(api.load(path), "lr_wd")
    assert len(study.directions) == 2 and len(study.best_trials) >= 1
    assert "Pareto front" in res.stdout and "8 complete" in res.stdout
    # each front trial names its W&B run as its result.json recorded it (project/run id)
    rows = {r.id: r for r in open_ledger(api.load(path)).rows()}
    for trial in study.best_trials:
        row = rows[experiment_of(trial)]
        recorded = row.result["wandb"]
        assert f"{recorded['project']}/{recorded['run_id']}" in res.stdout


def test_sigkill_of_the_runner_then_the_same_command_finishes_n_trials(master) -> None:
    path = master(search_block(n_trials=8, pruner="none"))
    env = {**os.environ, "PYTHON": sys.executable, "COLUMNS": "200"}
    args = [*RUNNER, "--config", str(path), "--search", "lr_wd"]
    first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    settings = api.load(path)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it once a few trials have finished
        time.sleep(0.3)
        try:
            done = sum(t.state == TrialState.COMPLETE for t in
                       searches.study(settings, "lr_wd").get_trials(deepcopy=False))
        except Exception:  # noqa: BLE001 - the storage may not exist yet
            done = 0
        if done >= 2:
            break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    trials = searches.study(settings, "lr_wd").get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 8
    assert TrialState.RUNNING not in states
    launched = [experiment_of(t) for t in trials]
    assert len(launched) == len(set(launched)), "a trial was launched twice"


@pytest.mark.parametrize(("change", "message"), [
    ({"space": {"lr": {"low": 0.1, "high": 0.01}}}, "expected low < high"),
    ({"space": {"lr": {"low": 0.0, "high": 0.1, "log": True}}}, "log range must be above 0"),
    ({"space": {"lr": {"low": 0.0, "high": 0.1}}}, "expected a number > 0"),
    ({"space": {"lrr": {"low": 0.1, "high": 0.2}}}, "did you mean 'lr'"),
    ({"space": {"batch_size": {"low": 8.0, "high": 64.0}}}, "expected an integer"),
    ({"space": {"batch_size": {"low": 8, "high": 64, "step": 0.5}}}, "takes integers"),
    ({"space": {"optimizer_name": {"choices": ["AdamW", "Adamm"]}}}, "unknown name 'Adamm'"),
    ({"sampler": "tpee"}, "did you mean 'tpe'"),
    ({"sampler": {"_target_": "optuna.samplers.Nope"}}, "expected _target_"),
    ({"objectives": {"best_val_f1": "max"}}, "no result holds this one"),
    ({"objectives": {"metrics.best_val_f1": "max", "duration_s": None}}, "direction max or min"),
    ({"objectives": {"metrics.best_val_f1": "max", "duration_s": "min"}},
     "Optuna prunes single-objective studies only"),
    ({"pruner": {"rule": "sucessive_halving"}}, "did you mean 'successive_halving'"),
    ({"models": ["nope"]}, "unknown model 'nope'"),
    ({"n_trials": 0}, "n_trials: expected a value >= 1"),
])
def test_bad_search_blocks_are_one_line_before_launch(tmp_path, cli, master, change,
                                                      message) -> None:
    path = master(search_block(**change))
    res = cli("--config", str(path), "--search", "lr_wd")
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "search.lr_wd" in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("train.log"))


def test_unknown_search_name_and_listing(tmp_path: Path, cli, master) -> None:
    path = master()
    res = cli("--config", str(path), "--search", "lr_w")
    assert res.returncode == 2 and "did you mean 'lr_wd'" in res.stderr
    listing = cli("--config", str(path), "--search")
    assert listing.returncode == 0 and "Study lr_wd/land" in listing.stdout


def test_the_python_api_is_the_real_study_and_hand_trials_show(tmp_path: Path, master) -> None:
    settings = api.load(master())
    study = searches.study(settings, "lr_wd", "land")
    assert isinstance(study, optuna.Study)
    trial = study.ask()
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    study.tell(trial, 0.5)
    with pytest.raises(HpsysError, match="unknown search"):
        searches.study(settings, "nope")
    status = searches.status(settings, "lr_wd")[0]
    assert status.counts["complete"] == 1 and status.best[0].values == [0.5]


def test_two_runners_share_one_postgresql_study(tmp_path: Path, master) -> None:
    """Parallelism across workers: two runners (each its own ledger) on one storage
    split the trials: N finished between them, each trial launched once."""
    from postgres_server import postgres_url

    with postgres_url() as url:
        paths = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            paths.append(master(search_block(n_trials=10, pruner="none"), folder,
                                max_parallel=1))
            text = paths[-1].read_text().replace("system:\n", f"system:\n  optuna_storage: {url}\n",
                                                 1)
            paths[-1].write_text(text)
        env = {**os.environ, "PYTHON": sys.executable, "COLUMNS": "200"}
        runners = [subprocess.Popen([*RUNNER, "--config", str(p), "--search", "lr_wd"], cwd=ROOT,
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for p in paths]
        outs = [r.communicate(timeout=180) for r in runners]
        assert all(r.returncode == 0 for r in runners), outs
        study = optuna.load_study(study_name="lr_wd/land", storage=url)
        trials = study.get_trials()
        assert sum(t.state == TrialState.COMPLETE for t in trials) >= 10
        assert TrialState.RUNNING not in {t.state for t in trials}
        ids = [experiment_of(t) for t in trials]
        assert len(ids) == len(set(ids))
        per_runner = [len(open_ledger(api.load(p)).rows()) for p in paths]
        assert all(n > 0 for n in per_runner), per_runner  # both took trials
        assert sum(per_runner) == len(trials)  # each trial launched once, by one of them


def test_the_menu_search_entry_confirms_trials_and_slots(master, monkeypatch) -> None:
    from hyperparameter_system import run_experiments
    from hyperparameter_system.ui import prompts

    settings = api.load(master(search_block(n_trials=3, pruner="none")))
    asked: list[Any] = []
    answers = iter(["search", "lr_wd", True, "quit"])

    def ask(question: Any) -> Any:
        asked.append(question)
        return next(answers)

    monkeypatch.setattr(prompts, "ask", ask)
    run_experiments.menu(settings)
    assert asked[2].message.startswith("Run 3 trial(s) of lr_wd on 2 slot(s)"), asked[2]
    study = searches.study(settings, "lr_wd")
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 3


def test_the_html_report_draws_the_studies_and_the_cli_starts_without_optuna(master,
                                                                            tmp_path) -> None:
    from hyperparameter_system.ui import commands

    settings = api.load(master(search_block(n_trials=4, pruner="none")))
    searches.run_search(settings, "lr_wd")
    page = tmp_path / "report.html"
    commands.report(settings, summary=False, export=("html", str(page)))
    text = page.read_text()
    assert "<h2>Searches</h2>" in text and "lr_wd/land: optimisation history" in text
    assert "lr_wd/land: parameter importances" in text
    probe = ("import sys; import hyperparameter_system.experiment_runner, "
             "hyperparameter_system.run_experiments; print('optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"  # Optuna is imported only when a study is used


def test_start_from_combined_enqueues_the_matrix_winners_first(master, master_writer,
                                                               tmp_path) -> None:
    """From matrix to search: the combined winners are the study's first trial."""
    sections = _sections(search_block(n_trials=2, pruner="none", start_from=["combined"]), {})
    sections["experiment_categories"] = {"optimizer": {"options": [
        {"name": "AdamW", "lr": 0.003}, {"name": "AdamW", "lr": 0.00001}]}}
    settings = api.load(master_writer(tmp_path, **sections))
    assert api.run(settings, api.select(settings)).count("done") == 3
    searches.run_search(settings, "lr_wd")
    first = searches.study(settings, "lr_wd").trials[0]
    assert first.params["lr"] == pytest.approx(0.003)  # the optimizer category's winner


def test_a_trial_asked_by_a_runner_killed_before_owning_it_is_failed(tmp_path: Path,
                                                                      master) -> None:
    """SIGKILL between the ask and the owner's write leaves a RUNNING trial nobody owns: the
    next opening tells it FAIL (the runner marked the study first); a trial asked by hand,
    without that mark, is the user's and stays RUNNING."""
    import socket

    from hyperparameter_system.run.studies import ASKING

    settings = api.load(master())
    study = searches.study(settings, "lr_wd", "land")
    by_hand = study.ask()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    time.sleep(0.05)  # the hand's trial was asked before the runner's mark
    study.set_user_attr(f"{ASKING}{socket.gethostname()}.{dead.pid}", time.time())
    orphan = study.ask()
    again = searches.study(settings, "lr_wd", "land")
    states = {t.number: t.state for t in again.get_trials()}
    assert states[orphan.number] == TrialState.FAIL
    assert states[by_hand.number] == TrialState.RUNNING
    assert again.user_attrs[f"{ASKING}{socket.gethostname()}.{dead.pid}"] is None

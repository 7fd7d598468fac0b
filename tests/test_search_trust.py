"""Issue 19: search and pruning a team can trust. Each test here failed before the fix it
names: a seeded sampler repeating itself on resume and between workers, a study started over
stranding trials, a killed runner's ledger rows left running, pruning turned over by
metric_mode, a search taking a category's name, a mistyped objective, and the Optuna objects
that crashed with a traceback instead of one line."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from hyperparameter_system.app import api
from hyperparameter_system.app import search_api as searches
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import Job, make_experiment
from hyperparameter_system.run.studies import ATTR, distributions

LANDSCAPE = "python tests/fakes/landscape_train.py"
CONTINUOUS = {"lr": {"low": 1.0e-5, "high": 1.0e-1, "log": True},
              "weight_decay": {"low": 1.0e-6, "high": 1.0e-2, "log": True}}


def block(**over: Any) -> dict[str, Any]:
    out = {"models": ["land"], "n_trials": 3, "sampler": "random", "seed": 5, "pruner": "none",
           "objectives": {"metrics.best_val_f1": "max"}, "space": CONTINUOUS}
    out.update(over)
    return out


@pytest.fixture
def master(tmp_path: Path, master_writer):
    def write(search: dict[str, Any] | None = None, folder: Path | None = None,
              name: str = "lr_wd", **sections: Any) -> Path:
        doc = {"models": [{"name": "land", "script": LANDSCAPE}],
               "experiment_categories": {"early_stopping": {"enabled": False,
                                                            "options": [{"patience": 1}]}},
               "system": {"overrides": ["epochs=3", "+fake.epoch_s=0.05"]},
               "execution": {"max_parallel": 2, "stop_grace_s": 5},
               "search": {name: search or block()}}
        doc.update(sections)
        return master_writer(folder or tmp_path, **doc)

    return write


def ask_tell(study: Any, dists: dict[str, Any], count: int) -> None:
    for _ in range(count):
        trial = study.ask(dists)
        study.tell(trial, 0.5)


def params(study: Any) -> list[tuple[float, ...]]:
    return [tuple(sorted(t.params.items())) for t in study.get_trials()]


# -- 1. a seeded sampler never repeats itself --------------------------------------------------

@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_a_seeded_sampler_proposes_new_settings_on_resume_and_to_a_second_worker(
        tmp_path: Path, master, sampler: str) -> None:
    settings = api.load(master(block(sampler=sampler)))
    search = searches.get_search(settings, "lr_wd")
    dists = distributions(search)
    ask_tell(searches.study(settings, "lr_wd"), dists, 3)   # a run of 3 trials
    ask_tell(searches.study(settings, "lr_wd"), dists, 3)   # the same search, --trials 6
    one, two = searches.study(settings, "lr_wd"), searches.study(settings, "lr_wd")
    for _ in range(2):  # two runners on the study, both seeded 5
        ask_tell(one, dists, 1)
        ask_tell(two, dists, 1)
    seen = params(one)
    assert len(seen) == 10 and len(set(seen)) == 10, seen
    # one invocation with a given seed stays reproducible: a fresh study repeats it exactly
    other = api.load(master(block(sampler=sampler), folder=_folder(tmp_path, "again")))
    ask_tell(searches.study(other, "lr_wd"), dists, 3)
    assert params(searches.study(other, "lr_wd")) == seen[:3]


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


# -- 2. a study started over strands nothing ---------------------------------------------------

def test_a_study_started_over_runs_its_trials_instead_of_calling_them_done_elsewhere(
        tmp_path: Path, master) -> None:
    settings = api.load(master(block(n_trials=2)))
    first = searches.run_search(settings, "lr_wd")
    assert first.count(Status.DONE) == 2
    shutil.move(tmp_path / "runs" / "optuna.db", tmp_path / "old.db")
    again = searches.run_search(settings, "lr_wd")
    assert again.done_elsewhere == 0 and again.busy_elsewhere == 0
    assert again.count(Status.DONE) == 2
    states = [t.state for t in searches.study(settings, "lr_wd").get_trials()]
    assert states == [TrialState.COMPLETE] * 2


# -- 3. a killed runner's trials leave no ledger row running -----------------------------------

def test_a_dead_runners_trial_rows_are_failed_with_its_trials(tmp_path: Path, master) -> None:
    settings = api.load(master())
    study = searches.study(settings, "lr_wd")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask(distributions(searches.get_search(settings, "lr_wd")))
    exp = make_experiment(settings.model("land"),
                          Job("lr_wd", {"trial": trial.number}, {}, "lr_wd_t000"), 1)
    trial.set_user_attr(ATTR, {"host": socket.gethostname(), "pid": dead.pid,
                               "experiment_id": exp.id})
    ledger = api.open_ledger(settings)
    ledger.sync([exp])
    assert ledger.claim(exp.id, f"{socket.gethostname()}:{dead.pid}", 30) is not None
    assert ledger.statuses([exp.id]) == {exp.id: Status.RUNNING}
    again = searches.study(settings, "lr_wd")  # what a rerun opens first
    assert again.get_trials()[0].state == TrialState.FAIL
    row = ledger.rows([exp.id])[0]
    assert row.status == Status.FAILED and "died" in row.error


# -- 4. the pruning monitor's own direction ----------------------------------------------------

def test_pruning_follows_the_monitored_key_not_metric_mode(tmp_path: Path) -> None:
    from test_pruning import BASELINE, CURVES, feed, pruner_for

    system = {"metric": "metrics.best_val_loss", "metric_mode": "min"}
    pruner, exps = pruner_for(tmp_path, {"rule": "successive_halving", "min_epochs": 2},
                              system=system)
    by = {e.option.get("description") or e.category: e for e in exps}
    assert feed(pruner, by["baseline"], BASELINE) is None
    pruner.ended(by["baseline"], Status.DONE)
    assert feed(pruner, by["best"], CURVES["best"]) is None, "val_f1 is maximised"
    pruner.ended(by["best"], Status.DONE)
    decision = feed(pruner, by["weaker"], CURVES["weaker"])
    assert decision is not None and "below" in decision.detail


def test_a_monitor_outside_the_metrics_line_needs_its_mode(tmp_path: Path, master) -> None:
    with pytest.raises(HpsysError, match="pruner.monitor: expected a key of the metrics line"):
        api.load(master(block(pruner={"rule": "median", "monitor": "nonsense"})))
    settings = api.load(master(block(pruner={"rule": "median", "monitor": "val_auc",
                                             "mode": "max"})))
    assert searches.get_search(settings, "lr_wd").pruner.monitor == "val_auc"
    with pytest.raises(HpsysError, match="Optuna would prune the best trials"):
        api.load(master(block(pruner={"rule": "median", "monitor": "val_loss"})))


# -- 5. a search has a name of its own ---------------------------------------------------------

@pytest.mark.parametrize("name", ["optimizer", "baseline", "combined", "early_stopping"])
def test_a_search_may_not_take_a_categorys_name(master, cli, name: str) -> None:
    res = cli("--config", str(master(name=name)), "--search", name)
    assert res.returncode == 2 and f"search.{name}" in res.stderr, res.stderr
    assert "names a category" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_forget_categories_keeps_the_searchs_rows(tmp_path: Path, master) -> None:
    settings = api.load(master(block(n_trials=1)))
    searches.run_search(settings, "lr_wd")
    rows = api.open_ledger(settings).rows()
    assert [r.category for r in rows] == ["lr_wd"]
    done = api.forget(settings, categories=["early_stopping"])
    assert done.forgotten == 0 and len(api.open_ledger(settings).rows()) == 1


# -- 6. a mistyped objective ------------------------------------------------------------------

@pytest.mark.parametrize("key", ["duration_seconds", "metrics.", "metrics..f1", "effective"])
def test_a_mistyped_objective_is_refused_at_load(master, key: str) -> None:
    with pytest.raises(HpsysError, match="no result holds this one"):
        api.load(master(block(objectives={key: "min"})))


def test_an_objective_no_result_holds_stops_the_search_after_one_trial(master, cli) -> None:
    path = master(block(n_trials=1, objectives={"metrics.best_val_f1x": "max"}))
    res = cli("--config", str(path), "--search", "lr_wd")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "metrics.best_val_f1x" in res.stderr and "Traceback" not in res.stderr
    trials = searches.study(api.load(path), "lr_wd").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL]


# -- 7. every Optuna object built once before launch ------------------------------------------

@pytest.mark.parametrize(("change", "where", "what"), [
    ({"seed": -1}, "search.lr_wd.seed", "expected a seed from 0 to 2**32-1"),
    ({"seed": 2**32}, "search.lr_wd.seed", "expected a seed from 0 to 2**32-1"),
    ({"sampler": {"_target_": "optuna.samplers.TPESampler", "seed": -5}},
     "search.lr_wd.sampler.seed", "expected a seed"),
    ({"sampler": {"_target_": "optuna.samplers.TPESampler", "n_startup_trips": 3}},
     "search.lr_wd.sampler", "Optuna refused TPESampler: "),
    ({"start_from": ["README.md"]}, "search.lr_wd.start_from[0]", "cannot read 'README.md'"),
    ({"models": []}, "search.lr_wd.models", "expected at least one model"),
])
def test_bad_optuna_objects_are_one_line_exit_2(master, cli, change, where, what) -> None:
    res = cli("--config", str(master(block(**change))), "--search", "lr_wd")
    assert res.returncode == 2, res.stdout + res.stderr
    assert where in res.stderr and what in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_start_from_file_with_broken_yaml_or_a_list(tmp_path: Path, master) -> None:
    broken, listed = tmp_path / "broken.yaml", tmp_path / "list.yaml"
    broken.write_text("lr: [1\n")
    listed.write_text("- lr: 0.01\n")
    with pytest.raises(HpsysError, match=r"start_from\[0\].*YAML syntax error"):
        api.load(master(block(start_from=[str(broken)])))
    with pytest.raises(HpsysError, match=r"start_from\[0\].*got a list"):
        api.load(master(block(start_from=[str(listed)])))


def test_a_grid_stops_at_its_size_without_a_traceback(master, cli) -> None:
    space = {"optimizer_name": {"choices": ["AdamW", "SGD"]},
             "lr": {"low": 0.001, "high": 0.003, "step": 0.001}}
    path = master(block(sampler="grid", n_trials=20, space=space))
    res = cli("--config", str(path), "--search", "lr_wd", "--trials", "30")
    assert res.returncode == 0, res.stdout + res.stderr
    trials = searches.study(api.load(path), "lr_wd").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert len(set(params_of(trials))) == 6


def params_of(trials: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(sorted(t.params.items())) for t in trials]


# -- 8. flags and the menu ---------------------------------------------------------------------

@pytest.mark.parametrize(("args", "what"), [
    (["--search", "lr_wd", "--all"], "--all: runs the matrix, --search a study"),
    (["--search", "lr_wd", "--categories", "early_stopping"], "--categories: runs the matrix"),
    (["--trials", "4", "--all"], "--trials 4: counts a search's trials"),
    (["--search", "lr_wd", "--pruning", "median"], "a search prunes by its block's pruner"),
])
def test_flags_that_mean_nothing_with_a_search_are_refused(master, cli, args, what) -> None:
    res = cli("--config", str(master()), *args)
    assert res.returncode == 2 and what in res.stderr, res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_search_dry_run_shows_the_searchs_plan(master, cli) -> None:
    res = cli("--config", str(master()), "--search", "lr_wd", "--dry-run", "--trials", "5")
    assert res.returncode == 0, res.stderr
    assert "Would run 5 trial(s) of lr_wd on 2 slot(s)" in res.stdout
    assert "lr_wd/land: 5 trial(s) left" in res.stdout and "baseline" not in res.stdout


def test_the_menu_marks_disabled_searches_and_its_summary_shows_the_studies(
        master, monkeypatch, capsys) -> None:
    from hyperparameter_system import run_experiments
    from hyperparameter_system.ui import prompts

    settings = api.load(master(block(enabled=False)))
    titles = [c.title for c in prompts.choose_search(settings).choices]
    assert titles == ["lr_wd (land; 3 trials) [disabled]"]
    seen: list[str] = []
    monkeypatch.setattr("hyperparameter_system.ui.commands.show_studies",
                        lambda s, name=None: seen.append("studies"))
    monkeypatch.setattr("hyperparameter_system.ui.commands.report",
                        lambda s, summary=True: seen.append("summary"))
    run_experiments.summary(settings)
    assert seen == ["summary", "studies"]


def test_a_search_trials_done_line_has_its_objective(master, cli) -> None:
    res = cli("--config", str(master(block(n_trials=1))), "--search", "lr_wd")
    assert res.returncode == 0, res.stderr
    done = [line for line in res.stdout.splitlines() if line.startswith("done ")]
    assert done and "metrics.best_val_f1 0." in done[0], res.stdout


# -- 9. what the dashboard shows ---------------------------------------------------------------

def test_the_dashboard_names_the_objectives_and_sees_no_runner_marks(master) -> None:
    path = master(block(n_trials=2, sampler="nsga2",
                        objectives={"metrics.best_val_f1": "max", "duration_s": "min"}))
    settings = api.load(path)
    searches.run_search(settings, "lr_wd")
    study = searches.study(settings, "lr_wd")
    assert study.metric_names == ["metrics.best_val_f1", "duration_s"]
    assert not [k for k in study.user_attrs if k.startswith("hpsys")], study.user_attrs


def test_a_run_pruned_past_its_decisions_epoch_says_where_it_stopped() -> None:
    from types import SimpleNamespace

    from hyperparameter_system.run.executor import _pruned
    from hyperparameter_system.run.stoppers import StopDecision
    from hyperparameter_system.store.outcomes import Outcome

    outcome = Outcome("x", Status.DONE, 0.0, 9.0, exit_code=0,
                      result={"status": "pruned", "metrics": {"epochs_run": 3}})
    decision = StopDecision(Status.PRUNED, 1, "epoch 1: val_f1 0.1, pruned by median")
    _pruned(outcome, SimpleNamespace(decision=decision, last_epoch=3))
    assert outcome.extra["pruned_epoch"] == 3
    assert outcome.note == "epoch 1: val_f1 0.1, pruned by median; stopped after epoch 3"


def test_a_sampler_whose_package_is_missing_and_qmc_say_one_line_or_nothing(
        master, cli, monkeypatch) -> None:
    import importlib.util

    from hyperparameter_system.run import studies as study

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cmaes" else real(name, *a))
    settings = api.load(master(block(sampler="cmaes")))
    with pytest.raises(HpsysError, match="CmaEsSampler needs the package 'cmaes'"):
        study.check_sampler(searches.get_search(settings, "lr_wd"))
    res = cli("--config", str(master(block(sampler="qmc", n_trials=1))), "--search", "lr_wd")
    assert res.returncode == 0 and "Warning" not in res.stdout + res.stderr, res.stderr


# -- the whole story: resumed, killed, shared ---------------------------------------------------

@pytest.mark.slow  # four runner processes and a PostgreSQL server: ~1 min on a busy machine
def test_resumed_killed_and_shared_searches_never_repeat_a_setting(tmp_path: Path,
                                                                   master) -> None:
    """3 trials, then --trials 6, then a SIGKILL mid-search and a rerun to 9, then two runners
    to 12, all with seed 5 on one PostgreSQL study: no two trials share their params, none is
    left RUNNING, no ledger row is left running, each trial was launched once."""
    import os
    import signal

    from postgres_server import postgres_url

    from hyperparameter_system.run.studies import experiment_of

    root = Path(__file__).resolve().parents[1]
    runner = [sys.executable, str(root / "hyperparameter_system" / "experiment_runner.py")]
    env = {**os.environ, "PYTHON": sys.executable, "COLUMNS": "200"}
    with postgres_url() as url:
        paths = []
        for name in ("a", "b"):
            path = master(block(sampler="tpe", n_trials=3), _folder(tmp_path, name),
                          execution={"max_parallel": 1, "stop_grace_s": 5, "gpus": "none"})
            path.write_text(path.read_text().replace("system:\n",
                                                     f"system:\n  optuna_storage: {url}\n", 1))
            paths.append(path)

        def run(path: Path, *more: str) -> subprocess.Popen:
            return subprocess.Popen([*runner, "--config", str(path), "--search", "lr_wd",
                                     *more], cwd=root, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)

        for more in ((), ("--trials", "6")):
            assert run(paths[0], *more).wait(timeout=120) == 0
        settings = api.load(paths[0])
        killed = run(paths[0], "--trials", "9")
        deadline = time.time() + 60
        while time.time() < deadline:  # kill it mid-training, after one more trial finished
            time.sleep(0.2)
            trials = searches.study(settings, "lr_wd").get_trials()
            training = {r.id for r in api.open_ledger(settings).rows(status=Status.RUNNING)}
            if sum(t.state == TrialState.COMPLETE for t in trials) >= 7 and any(
                    t.state == TrialState.RUNNING and experiment_of(t) in training
                    for t in trials):
                break
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert run(paths[0], "--trials", "9").wait(timeout=120) == 0
        both = [run(p, "--trials", "12") for p in paths]
        assert [r.wait(timeout=180) for r in both] == [0, 0], [r.stderr.read() for r in both]
        trials = searches.study(settings, "lr_wd").get_trials()
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(finished) >= 12
        assert TrialState.RUNNING not in {t.state for t in trials}
        seen = [tuple(sorted(t.params.items())) for t in trials]
        assert len(set(seen)) == len(seen), "a setting was proposed twice"
        rows = [r for p in paths for r in api.open_ledger(api.load(p)).rows()]
        assert Status.RUNNING not in {r.status for r in rows}
        ids = [experiment_of(t) for t in trials]
        assert len(ids) == len(set(ids)) and sorted(ids) == sorted(r.id for r in rows)


# -- the Optuna code in one room ---------------------------------------------------------------

def test_the_median_explanation_is_the_cutoff_optuna_compared_with(tmp_path: Path) -> None:
    """The median pruner compares a trial's best so far with the median of the *finished*
    trials at that epoch; a running trial's value is no part of it (the home-written line
    counted it)."""
    from test_pruning import BASELINE, pruner_for

    pruner, exps = pruner_for(tmp_path, {"rule": "median", "min_epochs": 2})
    by = {e.option.get("description") or e.category: e for e in exps}
    for epoch, value in enumerate(BASELINE, 1):
        assert pruner.observe(by["baseline"], {"epoch": epoch, "val_f1": value}) is None
    pruner.ended(by["baseline"], Status.DONE)
    for epoch, value in enumerate([0.6, 0.9], 1):  # `best` runs on, not finished
        assert pruner.observe(by["best"], {"epoch": epoch, "val_f1": value}) is None
    assert pruner.observe(by["weak"], {"epoch": 1, "val_f1": 0.30}) is None
    decision = pruner.observe(by["weak"], {"epoch": 2, "val_f1": 0.33})
    assert decision is not None
    assert decision.detail == ("epoch 2: val_f1 best so far 0.33 below the median of the "
                               "finished runs at epoch 2 (0.55)")


def test_one_metrics_line_reader_for_every_stopper() -> None:
    from hyperparameter_system.run.stoppers import monitored

    assert monitored({"epoch": 2, "val_f1": 1}, "val_f1") == (2, 1.0)
    for bad in ({"epoch": 2, "val_f1": True}, {"epoch": 2, "val_f1": float("nan")},
                {"epoch": True, "val_f1": 0.5}, {"epoch": "2", "val_f1": 0.5}, {"epoch": 2}):
        assert monitored(bad, "val_f1") is None, bad


def test_optuna_is_used_through_its_public_names_in_one_subpackage() -> None:
    """No private Optuna attribute anywhere in the runner, and `import optuna` only in
    run/studies (and the report's plots of a study, which only draws it)."""
    import re

    root = Path(__file__).resolve().parents[1] / "hyperparameter_system"
    private = re.compile(r"\._(trial_id|cached_frozen_trial|storage|study_id)\b")
    importers = set()
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not private.search(text), path
        if re.search(r"^\s*(import optuna|from optuna)", text, re.M):
            importers.add(path.relative_to(root).as_posix())
    outside = {p for p in importers if not p.startswith("run/studies/")}
    assert outside <= {"report/studies.py"}, outside


def test_a_pool_study_made_the_other_way_round_is_told_before_launch(tmp_path: Path) -> None:
    """A pool study an earlier version made under metric_mode min compares val_f1 downwards:
    refused with one line rather than pruning the best options."""
    import optuna
    from test_pruning import load

    from hyperparameter_system.run.studies import PoolPruner, baselines_first

    settings = load(tmp_path, {"pruning": {"rule": "median"}})
    (tmp_path / "runs").mkdir()
    optuna.create_study(storage=settings.system.optuna_storage, study_name="pruning/m1/fake",
                        direction="minimize")
    with pytest.raises(HpsysError, match="compares val_f1 as minimize") as err:
        PoolPruner(settings, baselines_first(api.select(settings)))
    assert "execution.pruning.monitor" in str(err.value) and "\n" not in str(err.value)


def test_a_sampler_optuna_refuses_leaves_the_menu_open(master, monkeypatch, capsys) -> None:
    from hyperparameter_system import run_experiments
    from hyperparameter_system.ui import prompts

    bad = {"_target_": "optuna.samplers.TPESampler", "n_startup_trips": 3}
    settings = api.load(master(block(sampler=bad)))
    answers = iter(["search", "lr_wd", "quit"])
    monkeypatch.setattr(prompts, "ask", lambda question: next(answers))
    run_experiments.menu(settings)  # returns at "quit": the error did not end the menu
    assert "Optuna refused TPESampler" in capsys.readouterr().err


def test_a_trial_whose_ledger_row_is_taken_is_told_not_left_running(tmp_path: Path,
                                                                    master) -> None:
    """The net under item 2: were a new trial's experiment id ever a done row, its trial is
    told FAIL rather than left RUNNING for ever."""
    from hyperparameter_system.run.executor import Executor
    from hyperparameter_system.run.studies import StudySource, open_opened
    from hyperparameter_system.store.outcomes import Outcome

    settings = api.load(master(block(n_trials=1)))
    search = searches.get_search(settings, "lr_wd")
    source = StudySource(settings, search, settings.model("land"),
                         open_opened(settings, search, "land"), 1)
    exp = source.next()
    ledger = api.open_ledger(settings)
    ledger.sync([exp])
    ledger.finish(exp.id, Outcome(exp.id, Status.DONE, 0.0, 1.0, exit_code=0), 0.5)
    engine = Executor(settings, ledger, api.local_slots(settings)[:1],
                      lambda *a: pytest.fail("launched"), stopper=source)

    class Once:
        synced = False

        def __init__(self) -> None:
            self.given = False

        def next(self) -> Any:
            if self.given:
                return None
            self.given = True
            return exp

        def put_back(self, experiment: Any, front: bool = False) -> None: ...

        def told(self, experiment: Any, outcome: Any, final: bool = True) -> None:
            source.told(experiment, outcome, final)

    ran = engine.run_source(Once())
    assert ran.done_elsewhere == 1 and not ran.outcomes
    states = [t.state for t in searches.study(settings, "lr_wd").get_trials()]
    assert states == [TrialState.FAIL]


def test_a_half_asked_trial_is_failed_from_the_runners_system_mark(tmp_path: Path,
                                                                   master) -> None:
    """The runner's ask mark lives in the study's system attrs now (item 9): a trial asked by a
    runner killed before it owned it is still told FAIL on the next opening, mark cleared."""
    from hyperparameter_system.run.studies import ASKING, open_opened

    settings = api.load(master())
    search = searches.get_search(settings, "lr_wd")
    opened = open_opened(settings, search, "land")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = f"{ASKING}{socket.gethostname()}.{dead.pid}"
    opened.mark(key, time.time())
    orphan = opened.study.ask()
    again = open_opened(settings, search, "land")
    assert again.study.get_trials()[orphan.number].state == TrialState.FAIL
    assert again.marks()[key] is None and key not in again.study.user_attrs


def test_forget_search_takes_its_rows_and_only_them(tmp_path: Path, master, cli) -> None:
    path = master(block(n_trials=1))
    settings = api.load(path)
    searches.run_search(settings, "lr_wd")
    kept = cli("--config", str(path), "--forget", "--categories", "early_stopping")
    assert kept.returncode == 0 and "forgot 0 ledger row(s)" in kept.stdout, kept.stderr
    gone = cli("--config", str(path), "--forget", "--search", "lr_wd")
    assert gone.returncode == 0 and "forgot 1 ledger row(s)" in gone.stdout, gone.stderr
    assert api.open_ledger(settings).rows() == []
    assert len(searches.study(settings, "lr_wd").get_trials()) == 1  # the study keeps it
    bad = cli("--config", str(path), "--forget", "--search", "lr_w")
    assert bad.returncode == 2 and "unknown search" in bad.stderr

"""execution.pruning: a category's weak options stopped early (Optuna's pruners, one study per
(model, category) pool), over the stand-in trainer's learning curves (`fake.curve`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Status
from hyperparameter_system.run.stoppers import StopDecision
from hyperparameter_system.run.studies import PoolPruner, baselines_first

ROOT = Path(__file__).resolve().parents[1]
EPOCH_S = 0.5  # against the executor's 0.25 s metrics poll: each epoch seen before the next

BASELINE = [0.50, 0.55, 0.60, 0.62, 0.63, 0.64]
CURVES = {
    "best": [0.55, 0.62, 0.68, 0.70, 0.72, 0.73],
    "weak": [0.30, 0.33, 0.35, 0.36, 0.37, 0.38],
    "weaker": [0.20, 0.22, 0.25, 0.27, 0.28, 0.29],
}


def master(tmp: Path, execution: dict[str, Any], options: dict[str, list[float]] | None = None,
           extra: dict[str, Any] | None = None, system: dict[str, Any] | None = None) -> Path:
    """One fake model whose baseline follows BASELINE; a YAML-only category `fake` with one
    option per curve."""
    options = CURVES if options is None else options
    doc = {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "ledger": str(tmp / "l.db"), "runs_dir": str(tmp / "runs"),
                   "temp_config_dir": str(tmp / "tc"), "wandb_mode": "disabled",
                   "overrides": [f"+fake.curve={json.dumps(BASELINE)}",
                                 f"+fake.epoch_s={EPOCH_S}"], **(system or {})},
        "models": [{"name": "m1", "script": "python tests/fakes/fake_train.py"}],
        "experiment_categories": {"fake": {"options": [
            {"description": name, "fake.curve": curve, **(extra or {}).get(name, {})}
            for name, curve in options.items()]}},
        "execution": {"gpus": "none", "experiment_timeout": 60, **execution},
    }
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def load(tmp: Path, execution: dict[str, Any], **kw: Any) -> Settings:
    return api.load(master(tmp, execution, **kw))


SH = {"rule": "successive_halving", "min_epochs": 2, "reduction_factor": 3}


def rows_by_option(settings: Settings) -> dict[str, Any]:
    rows = api.open_ledger(settings).rows()
    return {(r.option.get("description") or r.category): r for r in rows}


def epochs_run(row: Any) -> int:
    path = Path(row.run_dir) / "metrics.jsonl"
    return len(path.read_text().splitlines())


@pytest.mark.parametrize("parallel", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_weak_options_stop_at_min_epochs_best_and_baseline_run_on(tmp_path, parallel):
    settings = load(tmp_path, {"max_parallel": parallel, "pruning": SH})
    result = api.run(settings, api.select(settings))
    rows = rows_by_option(settings)
    assert {k: r.status for k, r in rows.items()} == {
        "baseline": Status.DONE, "best": Status.DONE,
        "weak": Status.PRUNED, "weaker": Status.PRUNED}, [r.error for r in rows.values()]
    for name in ("weak", "weaker"):
        assert rows[name].pruned_epoch == 2
        assert epochs_run(rows[name]) == 2  # it honoured stop_request.json at epoch 2's end
        assert rows[name].note.startswith("epoch 2: val_f1 ")
        assert "below the pool's top 1/3" in rows[name].note
    assert epochs_run(rows["best"]) == epochs_run(rows["baseline"]) == len(BASELINE)
    assert rows["best"].pruned_epoch is None
    assert result.count(Status.PRUNED) == 2 and result.count(Status.DONE) == 2

    again = api.run(settings, api.select(settings))  # the same selection: nothing to launch
    assert again.outcomes == [] and again.skipped_done == 4


def test_a_script_ignoring_the_request_is_ended_after_the_grace_and_recorded_pruned(tmp_path):
    long = [0.2] * 30  # 15 s of training if it were not ended
    settings = load(tmp_path, {"pruning": SH, "stop_grace_s": 1},
                    options={"best": CURVES["best"], "deaf": long},
                    extra={"deaf": {"+fake.ignore_stop": True}})
    api.run(settings, api.select(settings))
    deaf = rows_by_option(settings)["deaf"]
    assert deaf.status == Status.PRUNED and deaf.error is None
    assert deaf.pruned_epoch == 2
    # the grace period (1 s) is about two epochs of it: ended long before its 30th
    assert 2 <= epochs_run(deaf) <= 6
    assert deaf.duration_s < 8


def test_rerun_trains_pruned_options_again(tmp_path):
    settings = load(tmp_path, {"pruning": SH}, options={"weak": CURVES["weak"]})
    api.run(settings, api.select(settings))
    assert rows_by_option(settings)["weak"].status == Status.PRUNED
    off = api.with_pruning(settings, "none")
    again = api.run(off, api.select(off), rerun=True)
    assert [o.status for o in again.outcomes] == [Status.DONE, Status.DONE]
    weak = rows_by_option(settings)["weak"]
    assert weak.pruned_epoch is None and epochs_run(weak) == len(CURVES["weak"])


def test_rerun_with_pruning_on_trains_pruned_options_to_the_end(tmp_path):
    """--rerun of a pruned option while pruning stays on: the pool's pruner lets it run to its
    last epoch (done), rather than pruning it again at min_epochs."""
    settings = load(tmp_path, {"pruning": SH}, options={"weak": CURVES["weak"]})
    first = api.run(settings, api.select(settings))
    assert rows_by_option(settings)["weak"].status == Status.PRUNED
    assert first.count(Status.PRUNED) == 1
    again = api.run(settings, api.select(settings), rerun=True)
    assert again.count(Status.DONE) == 2 and again.count(Status.PRUNED) == 0
    weak = rows_by_option(settings)["weak"]
    assert weak.status == Status.DONE and weak.pruned_epoch is None
    assert epochs_run(weak) == len(CURVES["weak"])


def test_a_rerun_exempt_trial_stays_exempt_when_resumed(tmp_path):
    """The exemption is a user attr of its trial: a runner resuming that trial (after an
    interruption, without --rerun) lets it run on too, and still prunes the others."""
    pruner, exps = pruner_for(tmp_path, SH)
    by = {e.option.get("description") or e.category: e for e in exps}
    for name, curve in (("baseline", BASELINE), ("best", CURVES["best"])):
        feed(pruner, by[name], curve)
        pruner.ended(by[name], Status.DONE)
    first = PoolPruner(pruner.settings, exps, to_the_end={by["weak"].id})
    assert first.observe(by["weak"], {"epoch": 1, "val_f1": 0.30}) is None  # then it dies
    resumed = PoolPruner(pruner.settings, exps)
    assert feed(resumed, by["weak"], CURVES["weak"]) is None
    assert feed(resumed, by["weaker"], CURVES["weaker"]) is not None


def test_without_pruning_nothing_is_stopped(tmp_path):
    settings = load(tmp_path, {"max_parallel": 2})
    assert settings.execution.pruning.rule == "none"
    result = api.run(settings, api.select(settings))
    assert result.count(Status.DONE) == 4


# -- the pruner alone: lines fed by hand, no process -----------------------------------------

def pruner_for(tmp: Path, rule: dict[str, Any], **kw: Any) -> tuple[PoolPruner, list]:
    settings = load(tmp, {"pruning": rule}, **kw)
    experiments = baselines_first(api.select(settings))
    return PoolPruner(settings, experiments), experiments


def feed(pruner: PoolPruner, exp: Any, curve: list[float]) -> StopDecision | None:
    for epoch, value in enumerate(curve, 1):
        decision = pruner.observe(exp, {"epoch": epoch, "val_f1": value})
        if decision is not None:
            return decision
    return None


def test_the_baseline_is_never_pruned_and_a_resumed_runner_decides_alike(tmp_path):
    pruner, exps = pruner_for(tmp_path, SH)
    by = {e.option.get("description") or e.category: e for e in exps}
    assert exps[0].category == "baseline"
    assert feed(pruner, by["best"], CURVES["best"]) is None
    # the baseline is below `best` at every epoch, yet runs to its end
    assert feed(pruner, by["baseline"], BASELINE) is None
    pruner.ended(by["best"], Status.DONE)
    pruner.ended(by["baseline"], Status.DONE)
    # `weak` gets to epoch 1, then its runner dies (no ended()); a new runner resumes it
    assert pruner.observe(by["weak"], {"epoch": 1, "val_f1": 0.30}) is None
    resumed = PoolPruner(pruner.settings, exps)
    decision = feed(resumed, by["weak"], [0.99, 0.33])  # epoch 1 keeps its first value
    assert decision is not None and decision.epoch == 2 and decision.reason == Status.PRUNED
    study = resumed.studies[("m1", "fake")]
    mine = [t for t in study.get_trials() if t.user_attrs["experiment_id"] == by["weak"].id]
    assert len(mine) == 1 and mine[0].intermediate_values[1] == pytest.approx(0.30)


@pytest.mark.parametrize("rule", ["median", "patient", "hyperband"])
def test_the_other_rules_prune_a_clearly_weak_option(tmp_path, rule):
    pruner, exps = pruner_for(tmp_path, {"rule": rule, "min_epochs": 2})
    by = {e.option.get("description") or e.category: e for e in exps}
    for name in ("baseline", "best"):
        assert feed(pruner, by[name], BASELINE if name == "baseline" else CURVES[name]) is None
        pruner.ended(by[name], Status.DONE)
    if rule == "hyperband":  # its brackets: one weak option may land alone in one
        decisions = [feed(pruner, by[n], CURVES[n]) for n in ("weak", "weaker")]
        assert any(d is not None for d in decisions)
    else:
        # patient: only once the option stops improving, as well as lagging the median
        curve = [0.30, 0.29, 0.28, 0.27, 0.26, 0.25] if rule == "patient" else CURVES["weak"]
        decision = feed(pruner, by["weak"], curve)
        assert decision is not None and decision.epoch >= 2


def test_a_missing_monitor_is_said_once(tmp_path):
    said: list[str] = []
    pruner, exps = pruner_for(tmp_path, {**SH, "monitor": "val_auc", "mode": "max"})
    pruner.say = said.append
    for e in exps:
        assert feed(pruner, e, [0.1, 0.2, 0.3]) is None
    assert len(said) == 1 and "val_auc" in said[0]


@pytest.mark.parametrize(("pruning", "where", "what"), [
    ({"rule": "halving"}, "execution.pruning.rule", "successive_halving"),
    ({"rule": "median", "min_epochs": 0}, "execution.pruning.min_epochs", ">= 1"),
    ({"rule": "median", "reduction_factor": 1}, "execution.pruning.reduction_factor", ">= 2"),
    ({"rule": "median", "patience": 3}, "execution.pruning.patience", "unknown key"),
])
def test_bad_pruning_settings_are_one_line_naming_the_key(tmp_path, pruning, where, what):
    with pytest.raises(HpsysError) as err:
        load(tmp_path, {"pruning": pruning})
    text = str(err.value)
    assert where in text and what in text and "\n" not in text
    assert "master.yaml:" in text  # file:line


def test_defaults_and_the_storage(tmp_path):
    settings = load(tmp_path, {})
    rules = settings.execution.pruning
    assert (rules.rule, rules.min_epochs, rules.reduction_factor, rules.monitor) == (
        "none", 2, 3, "val_f1")
    assert settings.system.optuna_storage == f"sqlite:///{(tmp_path / 'runs').resolve()}/optuna.db"
    bad = load(tmp_path, {"pruning": SH}, system={"optuna_storage": "nosuch://x"})
    with pytest.raises(HpsysError, match="system.optuna_storage"):
        api.run(bad, api.select(bad))


@pytest.mark.slow  # the CLI in a subprocess, over ~10 s on a busy machine
def test_the_pruning_flag_is_for_one_invocation(tmp_path, cli):
    path = master(tmp_path, {"pruning": {"min_epochs": 2}},
                  options={"weak": CURVES["weak"]})
    done = cli("--config", str(path), "--all", "--pruning", "successive_halving")
    assert done.returncode == 0, done.stdout + done.stderr
    settings = api.load(path)
    assert settings.execution.pruning.rule == "none"
    assert rows_by_option(settings)["weak"].status == Status.PRUNED
    bad = cli("--config", str(path), "--all", "--pruning", "sometimes")
    assert bad.returncode == 2 and "--pruning" in bad.stderr + bad.stdout


@pytest.mark.slow
def test_sigkill_during_a_pruned_matrix_then_resume_loses_and_repeats_nothing(tmp_path):
    """The runner killed mid-matrix, then the same command: every experiment ends done or
    pruned, none that was done or pruned is launched again, and the pools' studies hold one
    trial per experiment (the pruner's state carried over, not started afresh)."""
    import signal as signals
    import subprocess
    import sys
    import time

    import optuna

    path = master(tmp_path, {"max_parallel": 2, "pruning": SH, "stop_grace_s": 2})
    settings = api.load(path)
    env = {"PYTHON": sys.executable, "COLUMNS": "200", "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    args = [sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"),
            "--config", str(path), "--all"]
    first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(
            r.status in (Status.DONE, Status.PRUNED) for r in api.open_ledger(settings).rows()):
        time.sleep(0.2)
    os.killpg(first.pid, signals.SIGKILL)
    first.wait(timeout=30)
    finished_before = {r.id: r.launches for r in api.open_ledger(settings).rows()
                       if r.status in (Status.DONE, Status.PRUNED)}
    assert finished_before, "the kill came before anything finished: it proves little"
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    rows = api.open_ledger(settings).rows()
    assert {r.status for r in rows} <= {Status.DONE, Status.PRUNED}
    assert len(rows) == 1 + len(CURVES)
    for row in rows:
        if row.id in finished_before:
            assert row.launches == finished_before[row.id], f"{row.run_name} was relaunched"
    by = {r.option.get("description") or r.category: r for r in rows}
    assert by["best"].status == Status.DONE and by["baseline"].status == Status.DONE
    study = optuna.load_study(study_name="pruning/m1/fake",
                              storage=settings.system.optuna_storage)
    ids = [t.user_attrs.get("experiment_id") for t in study.trials]
    assert len(ids) == len(set(ids)) == len(rows)  # one trial per experiment, none twice


def test_the_menu_confirmation_chooses_pruning_for_one_run(tmp_path, monkeypatch):
    """With execution.pruning on, the menu's confirmation offers every rule or no pruning for
    this run, the configured rule under the pointer; the config stays as it is."""
    from hyperparameter_system import run_experiments
    from hyperparameter_system.run.tally import RunResult
    from hyperparameter_system.ui import prompts

    settings = load(tmp_path, {"pruning": SH})
    asked, ran = [], []
    answers = iter(["all", "none", "quit"])

    def ask(question):
        asked.append(question)
        return next(answers)

    monkeypatch.setattr(prompts, "ask", ask)
    monkeypatch.setattr(api, "run", lambda s, exps, **kw: ran.append(s) or RunResult())
    run_experiments.menu(settings)
    assert [c.value for c in asked[1].choices] == [
        "none", "successive_halving", "median", "hyperband", "patient", "no"]
    assert asked[1].default == "successive_halving"
    assert ran[0].execution.pruning.rule == "none"
    assert settings.execution.pruning.rule == "successive_halving"

"""Launching per the runner -> script contract, with the fake trainer recording what it got:
temp configs, argv, environment, cwd; then resume, failures, retries, --rerun and timeouts."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core.safe_names import safe_name
from hyperparameter_system.matrix.experiments import build_matrix
from hyperparameter_system.run import reaper
from hyperparameter_system.run.reaper import alive
from hyperparameter_system.store.claims import owner_gone, runner_identity
from hyperparameter_system.ui import console

ROOT = Path(__file__).resolve().parents[1]


def leaves(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested config by its dotted key."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, master_writer, fake_records):
    """The shipped six categories plus the YAML-only `regularization`, over a python-command
    model and a .sh model, run once for the module."""
    tmp = tmp_path_factory.mktemp("full")
    cats = yaml.safe_load((ROOT / "experiment_config.yaml").read_text())["experiment_categories"]
    cats["regularization"]["enabled"] = True
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHON", sys.executable)
        mp.setenv("WANDB_MODE", "online")  # the master config's wandb_mode must win
        settings = load_settings(master_writer(tmp, experiment_categories=cats))
        experiments = build_matrix(settings)
        before = time.strftime("%y%m%d%H%M")
        result = api.run(settings, experiments)
        after = time.strftime("%y%m%d%H%M")
    by_id = {r["env"]["HPSYS_EXPERIMENT_ID"]: r for r in fake_records(tmp / "runs").values()}
    return settings, experiments, result, by_id, (before, after)


def test_every_experiment_ran_and_is_done(full_run) -> None:
    settings, experiments, result, by_id, _ = full_run
    assert len(experiments) == 2 * (1 + 17 + 2)
    assert result.count("done") == len(experiments) and set(by_id) == {e.id for e in experiments}
    rows = api.open_ledger(settings).rows([e.id for e in experiments])
    assert {r.status for r in rows} == {"done"} and {r.metric for r in rows} == {0.5}


def test_temp_config_is_the_base_plus_exactly_the_option(full_run) -> None:
    settings, experiments, _, by_id, _ = full_run
    for e in experiments:
        base = leaves(settings.model(e.model).base)
        got = leaves(by_id[e.id]["config"])
        diff = {k: v for k, v in got.items() if base.get(k, object()) != v}
        assert set(got) == set(base) | set(e.changes), e.run_name
        assert set(diff) <= {"model_name", *e.changes}, e.run_name
        assert got["model_name"] == e.model
        assert {k: got[k] for k in e.changes} == e.changes
        values = [v for k, v in e.option.items() if k != "description"]
        assert sorted(map(repr, e.changes.values())) == sorted(map(repr, values))
        if e.category == "baseline":
            assert diff == {"model_name": e.model}


def test_names_argv_env_and_cwd_follow_the_contract(full_run) -> None:
    settings, experiments, _, by_id, (before, after) = full_run
    projects = {"fake-net.v1": "fake_net_v1", "org/fake_sh": "org_fake_sh"}
    rows = {r.id: r for r in api.open_ledger(settings).rows()}
    for e in experiments:
        rec, env = by_id[e.id], by_id[e.id]["env"]
        config = Path(env["EXPERIMENT_CONFIG"])
        assert config.is_absolute() and config.parent == settings.system.temp_config_dir
        assert config.name == f"{e.index:03d}_{env['WANDB_NAME']}_{e.id}.yaml"
        assert config.is_file()
        if e.model == "org/fake_sh":  # a .sh script gets the config in EXPERIMENT_CONFIG only
            assert "--config" not in rec["argv"]
        else:
            assert rec["argv"][-2:] == ["--config", str(config)]
        stamp = re.fullmatch(re.escape(e.run_name) + r"_(\d{10})", env["WANDB_NAME"])
        assert stamp and before <= stamp.group(1) <= after
        assert env["WANDB_PROJECT"] == projects[e.model]
        assert env["WANDB_RUN_GROUP"] == e.category
        assert {e.category, e.model} <= set(env["WANDB_TAGS"].split(","))
        assert env["WANDB_JOB_TYPE"] == ("baseline" if e.category == "baseline" else "experiment")
        assert env["WANDB_RUN_ID"] == e.id == env["HPSYS_EXPERIMENT_ID"]
        assert env["WANDB_MODE"] == "disabled"
        run_dir = settings.system.runs_dir / projects[e.model] / f"{safe_name(e.run_name)}_{e.id}"
        assert env["HPSYS_RUN_DIR"] == str(run_dir)
        assert rec["cwd"] == str(ROOT)
        row = rows[e.id]
        assert (row.wandb_project, row.wandb_name, row.wandb_run_id) == (
            env["WANDB_PROJECT"], env["WANDB_NAME"], env["WANDB_RUN_ID"])
        assert row.config_path == str(config)


def test_run_ids_are_deterministic(full_run) -> None:
    settings, experiments, *_ = full_run
    assert [e.id for e in build_matrix(load_settings(settings.path))] == [e.id for e in experiments]


def test_resume_launches_nothing_that_is_done(full_run) -> None:
    settings, experiments, *_ = full_run
    again = api.run(settings, experiments)
    assert again.outcomes == [] and again.skipped_done == len(experiments)


def _fake(master_config, *options: dict[str, Any], **execution: Any):
    """Settings with one python fake model and a YAML-only category `fake`, no baseline."""
    path = master_config(models=[{"name": "m1", "script": "python tests/fakes/fake_train.py"}],
                         experiment_categories={"fake": {"options": list(options)}},
                         system={"baseline": False}, execution=execution)
    settings = load_settings(path)
    return settings, build_matrix(settings)


def test_temp_configs_go_when_not_kept(master_config, tmp_path) -> None:
    """keep_temp_configs: false removes each temp config once its run has ended; the script
    still read it (its record holds the config) and the ledger keeps the resolved config."""
    path = master_config(models=[{"name": "m1", "script": "python tests/fakes/fake_train.py"}],
                         experiment_categories={"fake": {"options": [{"fake.metric": 0.6}]}},
                         system={"baseline": False, "keep_temp_configs": False})
    settings = load_settings(path)
    result = api.run(settings, build_matrix(settings))
    assert result.count("done") == 1
    assert not list(settings.system.temp_config_dir.glob("*.yaml"))
    (record,) = (tmp_path / "runs").glob("*/*/record.json")
    assert json.loads(record.read_text())["config"]["fake"]["metric"] == 0.6


def test_each_launch_keeps_its_own_temp_config(master_config) -> None:
    """Two configs of one experiment launched in the same minute (a --set change) keep their
    own temp config files: each ledger row points at the config its run read."""
    path = master_config(models=[{"name": "m1", "script": "python tests/fakes/fake_train.py"}],
                         experiment_categories={"fake": {"options": [{"fake.metric": 0.6}]}},
                         system={"baseline": False})
    ids = []
    for epochs in (2, 3):
        settings = load_settings(path, [f"epochs={epochs}"])
        experiments = build_matrix(settings)
        assert api.run(settings, experiments).count("done") == 1
        ids.append(experiments[0].id)
    rows = api.open_ledger(settings).rows(ids)
    assert len({r.config_path for r in rows}) == 2
    for row, epochs in zip(rows, (2, 3), strict=True):
        assert yaml.safe_load(Path(row.config_path).read_text())["epochs"] == epochs


def test_a_failing_option_leaves_the_others_done(master_config) -> None:
    settings, experiments = _fake(master_config, {"fake.exit_code": 3}, {"fake.metric": 0.7},
                                  {"+fake.segfault": True}, {"+fake.no_result": True},
                                  {"fake.metric": 0.8})
    result = api.run(settings, experiments)
    rows = api.open_ledger(settings).rows([e.id for e in experiments])
    assert [r.status for r in rows] == ["failed", "done", "failed", "failed", "done"]
    assert [r.metric for r in rows] == [None, 0.7, None, None, 0.8]
    assert rows[0].error == "exit code 3" and rows[0].exit_code == 3
    assert rows[2].error == "killed by signal SIGSEGV" and rows[2].signal == 11
    assert "result.json" in rows[3].error
    assert "failing on purpose" in rows[0].log_tail
    assert result.count("failed") == 3


def test_resume_retries_failures_and_rerun_forces(master_config) -> None:
    settings, experiments = _fake(master_config, {"fake.metric": 0.6}, {"fake.exit_code": 1})
    ok, bad = (e.id for e in experiments)
    first = api.run(settings, experiments)
    assert sorted(o.status for o in first.outcomes) == ["done", "failed"]
    second = api.run(settings, experiments)
    assert [o.experiment_id for o in second.outcomes] == [bad] and second.skipped_done == 1
    forced = api.run(settings, experiments, rerun=True)
    assert sorted(o.experiment_id for o in forced.outcomes) == sorted([ok, bad])
    assert api.open_ledger(settings).statuses()[ok] == "done"


@pytest.mark.parametrize(("retry", "attempts"), [(True, 2), (False, 1), (2, 3)])
def test_retry_failed(master_config, retry, attempts) -> None:
    settings, experiments = _fake(master_config, {"fake.exit_code": 1}, retry_failed=retry)
    result = api.run(settings, experiments)
    assert len(result.outcomes) == attempts
    assert api.open_ledger(settings).rows()[0].attempts == attempts


def test_each_launch_has_its_own_wandb_run_id(master_config) -> None:
    """The trainer resumes a W&B run of the same id: a retry or --rerun appending to the old
    run would lose its steps. The experiment id stays; the run id counts launches."""
    settings, (exp,) = _fake(master_config, {"fake.metric": 0.6})

    def launched_env() -> dict[str, str]:
        row = api.open_ledger(settings).rows()[0]
        return json.loads((Path(row.run_dir) / "record.json").read_text())["env"]

    api.run(settings, [exp])
    first = launched_env()
    api.run(settings, [exp], rerun=True)
    second = launched_env()
    assert first["WANDB_RUN_ID"] == exp.id and second["WANDB_RUN_ID"] == f"{exp.id}-2"
    assert first["HPSYS_EXPERIMENT_ID"] == second["HPSYS_EXPERIMENT_ID"] == exp.id
    row = api.open_ledger(settings).rows()[0]
    assert (row.wandb_run_id, row.launches, row.attempts) == (f"{exp.id}-2", 2, 1)


def test_retries_and_old_ledgers_count_launches_on(master_config) -> None:
    settings, (exp,) = _fake(master_config, {"fake.exit_code": 1}, retry_failed=1)
    api.run(settings, [exp])
    row = api.open_ledger(settings).rows()[0]
    assert (row.wandb_run_id, row.launches, row.attempts) == (f"{exp.id}-2", 2, 2)
    # a ledger written before launches were counted: its attempts used the old run ids
    with sqlite3.connect(settings.system.ledger) as db:
        db.execute("ALTER TABLE experiments DROP COLUMN launches")
    assert api.open_ledger(settings).rows()[0].launches == 2
    api.run(settings, [exp], rerun=True)
    assert api.open_ledger(settings).rows()[0].wandb_run_id == f"{exp.id}-4"


def test_timeout_ends_the_whole_process_tree(master_config, tmp_path) -> None:
    path = master_config(models=[{"name": "m1", "script": "tests/fakes/fake_spawn.sh"}],
                         experiment_categories={"fake": {"options": [{"fake.sleep": 60}]}},
                         system={"baseline": False}, execution={"experiment_timeout": 1})
    settings = load_settings(path)
    started = time.time()
    result = api.run(settings, build_matrix(settings))
    assert time.time() - started < 15
    (outcome,) = result.outcomes
    assert outcome.status == "timeout" and outcome.error == "timed out after 1 s"
    grandchild = int((Path(outcome.run_dir) / "grandchild.pid").read_text())
    deadline = time.time() + 5
    while alive(grandchild) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)
    assert api.open_ledger(settings).rows()[0].status == "timeout"


def test_live_display_reads_the_latest_epoch(full_run) -> None:
    settings, experiments, *_ = full_run
    row = api.open_ledger(settings).rows([experiments[1].id])[0]
    assert console.latest_epoch(row.run_dir) == "epoch 2 val_f1 0.5000"
    assert console.latest_epoch(str(settings.system.runs_dir / "nowhere")) == "starting"


def test_a_runner_bug_in_a_slot_is_raised_and_strands_nothing(master_config):
    """A failure inside a slot thread (here: the display) must not vanish silently, nor leave
    its experiment `running` or its process alive."""
    from hyperparameter_system.run.devices import Slot
    from hyperparameter_system.run.executor import Executor, local_dispatch

    settings = api.load(master_config(experiment_categories={
        "fake": {"options": [{"fake.sleep": 30}, {"fake.metric": 0.2}]}}))

    class BrokenDisplay:
        def started(self, *args):
            raise RuntimeError("display broke")

        def finished(self, *args):
            pass

        def refresh(self):
            pass

    engine = Executor(settings, api.open_ledger(settings), [Slot("cpu0")], local_dispatch(settings),
                      BrokenDisplay())
    with pytest.raises(RuntimeError, match="display broke"):
        engine.run(api.select(settings))
    rows = api.open_ledger(settings).rows()
    assert "running" not in {r.status for r in rows}
    assert any(r.status == "failed" and "display broke" in (r.error or "") for r in rows)
    assert not any(alive(r.pid) for r in rows if r.pid)


def test_without_proc_a_live_pid_is_alive(monkeypatch, tmp_path) -> None:
    """No /proc (macOS): kill(0) decides, so a live runner never looks dead to the ledger."""
    monkeypatch.setattr(reaper, "PROC", tmp_path / "no-proc")
    assert alive(os.getpid())
    assert not owner_gone(runner_identity(), None, 5, alive)


class _SlowServer:
    """A preload server whose first start pays its imports (here a sleep), then forks the
    script as a plain subprocess would."""

    def __init__(self, boot_s: float) -> None:
        self.boot_s = boot_s

    def start(self, argv, cwd, env, log):
        import subprocess

        time.sleep(self.boot_s)
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def test_the_timeout_counts_from_the_scripts_start_not_the_preload_servers(master_config):
    """Preload's first launch boots the server (its imports) inside `execute`: that time is
    not the experiment's, neither against its timeout nor in its duration."""
    from hyperparameter_system.run import launcher

    settings, (quick, slow) = _fake(master_config, {"fake.sleep": 0.3}, {"fake.sleep": 30},
                                    experiment_timeout=1.5)
    outcome = launcher.execute(launcher.plan(quick, settings, 1), server=_SlowServer(2.0))
    assert outcome.status == "done", (outcome.error, outcome.log_tail)
    assert outcome.duration_s < 1.5, outcome.duration_s
    started = time.time()
    timed_out = launcher.execute(launcher.plan(slow, settings, 1), server=_SlowServer(0.5))
    assert timed_out.status == "timeout"  # the clock still runs once the script is up
    assert 2.0 <= time.time() - started < 10

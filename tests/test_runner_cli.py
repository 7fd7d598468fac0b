"""The CLI as a user runs it: selection flags, --matrix, --dry-run, --set, --summary,
--export-ledger, unknown names, and broken master configs (exit 2, one line, nothing launched)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

LEGACY_CSV = ["experiment_id", "model_name", "category", "option", "status", "start_time",
              "error_message", "config_path", "execution_time", "f1_score", "accuracy",
              "stdout_sample"]


def test_selection_matrix_dry_run_and_resume(master_config, cli, tmp_path) -> None:
    path = str(master_config())
    res = cli("--config", path, "--dry-run")
    assert res.returncode == 0 and "Would run 8 of 8 (0 already done" in res.stdout
    # --models and --categories combine; with --matrix they only show, never launch
    res = cli("--config", path, "--models", "fake-net.v1", "--categories", "early_stopping",
              "--matrix")
    assert res.returncode == 0 and "Project: fake_net_v1 (3 runs)" in res.stdout
    assert "org_fake_sh" not in res.stdout and not (tmp_path / "runs").exists()
    assert "3 to run; no time estimate yet" in res.stdout
    res = cli("--config", path, "--models", "fake-net.v1", "--categories", "early_stopping")
    assert res.returncode == 0 and "3 done, 0 failed" in res.stdout, res.stderr
    assert len(list((tmp_path / "runs" / "fake_net_v1").iterdir())) == 3

    res = cli("--config", path, "--matrix")
    assert "Project: fake_net_v1 (4 runs)" in res.stdout
    assert "Project: org_fake_sh (4 runs)" in res.stdout
    assert res.stdout.count(" done ") >= 3
    assert "Total: 8 experiments, 3 done, 5 to run" in res.stdout
    res = cli("--config", path, "--dry-run")
    assert "Would run 5 of 8 (3 already done, skipped)" in res.stdout
    assert res.stdout.count("skip (done)") == 3 and res.stdout.count(" run ") >= 5
    res = cli("--config", path, "--all")
    assert res.returncode == 0 and "5 done" in res.stdout
    assert "3 skipped (already done)" in res.stdout


def test_set_reaches_every_temp_config(master_config, cli, tmp_path, fake_records) -> None:
    path = str(master_config(experiment_categories={"early_stopping": {"options": [
        {"patience": 4}]}}))
    res = cli("--config", path, "--all", "--set", "epochs=5", "--set", "scheduler_params.T_max=9")
    assert res.returncode == 0, res.stderr
    configs = [r["config"] for r in fake_records(tmp_path / "runs").values()]
    assert len(configs) == 4
    assert {(c["epochs"], c["scheduler_params"]["T_max"]) for c in configs} == {(5, 9)}


def test_bad_set_and_system_overrides_are_told_where_they_were_given(master_config, cli) -> None:
    res = cli("--config", str(master_config()), "--all", "--set", "epocs=5")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("error: --set epocs=5 (on ") and "'epochs'" in res.stderr
    path = master_config(system={"overrides": ["lr=0.1", "nosuch=1"]})
    res = cli("--config", str(path), "--matrix")
    assert res.returncode == 2 and f"{path}:" in res.stderr and "system.overrides" in res.stderr


def test_summary_and_export_ledger(master_config, cli, tmp_path) -> None:
    path = str(master_config(
        models=[{"name": "fake-net.v1", "script": "python tests/fakes/fake_train.py"}],
        experiment_categories={"quality": {"options": [
            {"fake.metric": 0.9, "description": "good"}, {"fake.metric": 0.2},
            {"fake.exit_code": 4, "description": "broken"}]}}))
    out = tmp_path / "export" / "ledger.csv"
    res = cli("--config", path, "--all", "--export-ledger", str(out))  # runs, then exports
    assert res.returncode == 1 and "3 done, 1 failed" in res.stdout
    assert "wrote 4 ledger rows" in res.stdout and out.is_file()
    out.unlink()
    res = cli("--config", path, "--summary")
    assert res.returncode == 0, res.stderr
    good = next(line for line in res.stdout.splitlines() if " good " in line)
    assert "0.9000" in good and "+0.4000" in good and "winner" in good
    assert "exit code 4" in res.stdout

    res = cli("--config", path, "--export-ledger", str(out))
    assert res.returncode == 0 and "wrote 4 ledger rows" in res.stdout
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:len(LEGACY_CSV)] == LEGACY_CSV
    by_option = {r["option"]: r for r in rows}
    good_row = by_option[json.dumps({"description": "good", "fake.metric": 0.9},
                                    separators=(",", ":"), sort_keys=True)]
    assert good_row["status"] == "completed" and float(good_row["f1_score"]) == 0.9
    assert good_row["model_name"] == "fake-net.v1" and good_row["category"] == "quality"
    assert Path(good_row["config_path"]).is_file() and float(good_row["execution_time"]) >= 0
    assert "fake training" in good_row["stdout_sample"]
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error_message"] == "exit code 4"


@pytest.mark.parametrize(("flag", "name", "valid", "close"), [
    ("--models", "fake-net.v2", "fake-net.v1, org/fake_sh", "fake-net.v1"),
    ("--categories", "early_stoping", "early_stopping, optimizer", "early_stopping"),
])
def test_unknown_names_list_the_valid_ones(master_config, cli, tmp_path, flag, name, valid,
                                           close) -> None:
    res = cli("--config", str(master_config()), flag, name)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"error: {flag} {name}: unknown {flag[2:-1].replace('ie', 'y')}; "
                          f"expected one of {valid} (did you mean '{close}'?)\n")
    assert not (tmp_path / "runs").exists()


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parents:
        doc = doc[part]
    doc[last] = value


SH = "tests/fakes/fake_train.sh"
BAD = {  # id: (dotted key to set, value, key path in the message, line needle, expected text)
    "unknown-top": ("executon", {}, "executon", "executon:", "did you mean 'execution'"),
    "unknown-system-key": ("system.ledgr", "x.db", "system.ledgr", "ledgr:",
                           "did you mean 'ledger'"),
    "unknown-option-key": ("experiment_categories.optimizer.options.0.momentom", 0.9,
                           "experiment_categories.optimizer.options[0].momentom", "momentom:",
                           "did you mean 'momentum'"),
    "option-type": ("experiment_categories.optimizer.options.0.lr", "fast",
                    "experiment_categories.optimizer.options[0].lr", "lr: fast",
                    "expected float"),
    "option-range": ("experiment_categories.early_stopping.options.1.patience", -2,
                     "experiment_categories.early_stopping.options[1].patience",
                     "patience: -2", ">= 0"),
    "execution-type": ("execution.max_parallel", "2", "execution.max_parallel", "max_parallel:",
                       "expected an integer"),
    "execution-range": ("execution.experiment_timeout", 0, "execution.experiment_timeout",
                        "experiment_timeout:", "seconds > 0"),
    "script-missing": ("models.0.script", "python tests/fakes/no_such_train.py",
                       "models[0].script", "no_such_train.py", "does not exist"),
    "script-sh-missing": ("models.1.script", "./no_such_run.sh", "models[1].script",
                          "no_such_run.sh", "does not exist"),
    "script-not-executable": ("models.1.script", "tests/fakes/base.yaml", "models[1].script",
                              "script: tests/fakes/base.yaml", "is not executable"),
    "base-config-broken": ("models.0.base_config", "{broken}", "models[0].base_config",
                           "base_config: '{broken}'", "YAML syntax error"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=list(BAD))
def test_bad_master_config_is_one_line_at_its_place(case, cli, master_config, tmp_path) -> None:
    dotted, value, key_path, needle, expected = case
    doc = yaml.safe_load(master_config().read_text())
    if dotted == "models.0.base_config":  # a base config file that exists but does not load
        broken = tmp_path / "broken.yaml"
        broken.write_text("lr: 0.1\nepochs: [1, 2\n")
        value = str(broken)
        needle = f"base_config: {broken}"
    _set(doc, dotted, value)
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if needle in t)
    res = cli("--config", str(path), "--all")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith(f"error: {path}:{line}: {key_path}: ")
    assert expected in res.stderr and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ledger.db").exists()


def test_legacy_master_config_runs_unchanged(cli, repo_root, tmp_path) -> None:
    """The original system's file, run from a project folder: relative paths are its own."""
    (tmp_path / "tests").symlink_to(repo_root / "tests")
    legacy = repo_root / "tests" / "fakes" / "legacy_config.yaml"
    res = cli("--config", str(legacy), "--all", cwd=tmp_path,
              env={"PATH": os.environ["PATH"]})
    assert res.returncode == 0, res.stderr
    assert "2 done, 0 failed" in res.stdout  # baseline + AdamW of the one enabled model
    temp = sorted(p.name for p in (tmp_path / "temp_configs").iterdir())
    assert temp[0].startswith("001_baseline_") and temp[1].startswith("002_opt_AdamW_lr0.001")
    config = yaml.safe_load((tmp_path / "temp_configs" / temp[1]).read_text())
    assert config["model_name"] == "resnet50.tv2_in1k" and config["optimizer_name"] == "AdamW"
    assert (tmp_path / "experiments.db").is_file()


@pytest.mark.parametrize("command", [
    (sys.executable, "-m", "hyperparameter_system.experiment_runner"),
    (str(Path(sys.executable).parent / "hpsys"),),
], ids=["python-m", "console-script"])
def test_other_ways_to_start_the_cli(command, master_config, repo_root) -> None:
    if not Path(command[0]).exists():
        pytest.skip("console script not installed")
    res = subprocess.run([*command, "--config", str(master_config()), "--dry-run"],
                         cwd=repo_root, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0 and "Would run 8 of 8" in res.stdout, res.stderr


@pytest.fixture
def in_process(monkeypatch, capsys):
    """experiment_runner.main in this process (fast), SIGTERM and SIGHUP left as pytest has them."""
    from hyperparameter_system import experiment_runner
    from hyperparameter_system.ui import cli

    monkeypatch.setattr(cli, "stop_on_signals", lambda: None)

    def run(*argv: str) -> tuple[int, str]:
        return experiment_runner.main(argv), capsys.readouterr().out

    return run


def test_dry_run_skips_only_the_run(master_config, in_process, tmp_path) -> None:
    """--dry-run with --summary and --export-ledger still shows and writes them."""
    out = tmp_path / "ledger.csv"
    code, text = in_process("--config", str(master_config()), "--dry-run", "--summary",
                            "--export-ledger", str(out))
    assert code == 0 and "Would run 8 of 8" in text
    assert "Summary: headline metric" in text and "wrote 0 ledger rows" in text and out.is_file()
    assert not (tmp_path / "runs").exists()


def test_combine_best_takes_rerun(master_config, in_process, monkeypatch) -> None:
    from hyperparameter_system.run.tally import RunResult
    from hyperparameter_system.ui import commands

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(commands, "combine_best",
                        lambda *args, **kw: calls.append(kw) or RunResult())
    assert in_process("--config", str(master_config()), "--combine-best", "--rerun")[0] == 0
    assert calls[0]["rerun"] is True and calls[0]["dry_run"] is False


def test_nothing_to_run_shows_no_bar(master_config, cli) -> None:
    """All done: no empty `experiments 0/1` bar, just how many were skipped."""
    path = str(master_config(
        models=[{"name": "fake-net.v1", "script": "python tests/fakes/fake_train.py"}],
        experiment_categories={"quality": {"options": [{"fake.metric": 0.9}]}}))
    assert cli("--config", path, "--all").returncode == 0
    res = cli("--config", path, "--all")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "nothing to run: 2 skipped (already done)"


def test_a_run_under_nohup_survives_the_terminal_closing() -> None:
    """SIGTERM stops a run as Ctrl-C does; SIGHUP too, unless already ignored (nohup)."""
    import signal

    from hyperparameter_system.run import signals as stopping
    from hyperparameter_system.ui import cli

    saved = {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        cli.stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        cli.stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.default_int_handler
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_script_removed_since_its_runs_blocks_launches_not_reports(master_config, cli,
                                                                     tmp_path) -> None:
    """A disabled model picked by name once: its runs still count in --summary after its
    script is gone, while relaunching them says what is wrong before anything starts."""
    import shutil

    from hyperparameter_system.app import api
    from hyperparameter_system.core.errors import HpsysError

    script = tmp_path / "old_train.sh"
    fakes = Path(__file__).parent / "fakes"
    shutil.copy(fakes / "fake_train.sh", script)
    shutil.copy(fakes / "fake_train.py", tmp_path / "fake_train.py")
    models = [{"name": "m1", "script": "python tests/fakes/fake_train.py"},
              {"name": "old", "enabled": False, "script": str(script)}]
    path = str(master_config(models=models, experiment_categories={"quality": {"options": [
        {"fake.metric": 0.9}, {"fake.exit_code": 3}]}}))
    assert cli("--config", path, "--models", "old").returncode == 1  # one option fails
    script.unlink()
    res = cli("--config", path, "--summary")
    assert res.returncode == 0, res.stderr
    assert "0.9000" in res.stdout and "exit code 3" in res.stdout
    with pytest.raises(HpsysError, match=r"models\[1\]\.script.*does not exist"):
        api.failed(api.load(path))


def test_a_closed_terminal_ends_it_quietly(master_config, monkeypatch) -> None:
    """The terminal gone (EIO on write, as after tmux kill-session): exit 129, no traceback;
    any other OSError is still a bug to see."""
    import errno

    from hyperparameter_system import experiment_runner
    from hyperparameter_system.ui import cli, commands

    monkeypatch.setattr(cli, "stop_on_signals", lambda: None)
    silenced = []
    monkeypatch.setattr(cli.os, "dup2", lambda fd, to: silenced.append(to))  # keep pytest's
    path = str(master_config())

    def gone(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(commands, "show_matrix", gone)
    assert experiment_runner.main(["--config", path, "--matrix"]) == 129
    assert len(silenced) == 2  # stdout and stderr pointed at /dev/null for Python's exit

    def bug(*args, **kwargs):
        raise OSError(errno.ENOENT, "a bug")

    monkeypatch.setattr(commands, "show_matrix", bug)
    with pytest.raises(OSError, match="a bug"):
        experiment_runner.main(["--config", path, "--matrix"])


def test_matrix_and_dry_run_say_which_launch_path_each_model_takes(master_config,
                                                                   in_process) -> None:
    """Issue 14: a `python script.py` model forks from the preloaded server when preload is on;
    a shell script, preload off, or Ray start plain subprocesses, and the views say so."""
    path = str(master_config(execution={"preload": ["json"]}))
    code, text = in_process("--config", path, "--dry-run")
    assert code == 0, text
    assert "launch: fake-net.v1: preloaded server" in text
    assert "launch: org/fake_sh: plain subprocess (shell script)" in text
    code, text = in_process("--config", path, "--matrix")
    def row(model: str) -> str:  # the model's row of the models x categories grid
        return next(line for line in text.splitlines() if model in line)

    assert code == 0 and "launch" in text
    assert "preloaded server" in row("fake-net.v1")
    assert "plain subprocess (shell script)" in row("org/fake_sh")
    code, text = in_process("--config", path, "--dry-run", "--no-preload")
    assert "launch: fake-net.v1: plain subprocess (execution.preload off)" in text
    code, text = in_process("--config", path, "--dry-run", "--executor", "ray")
    assert "launch: fake-net.v1: plain subprocess (Ray tasks start plain)" in text


def test_preload_auto_forks_the_built_in_trainer_alone(master_config, in_process) -> None:
    """The default (`preload: auto`): `python codes/train.py` forks from the server that
    imported what it imports; another Python script starts plain, and says why."""
    from hyperparameter_system.app import api
    from hyperparameter_system.config.settings import DEFAULT_PRELOAD
    from hyperparameter_system.run import preload

    models = [{"name": "engine", "script": "python codes/train.py"},
              {"name": "fake-net.v1", "script": "python tests/fakes/fake_train.py"}]
    path = master_config(models=models)
    settings = api.load(path)
    assert settings.execution.preload == DEFAULT_PRELOAD and not settings.execution.preload_all
    root = str(settings.root)
    assert preload.forks((sys.executable, "codes/train.py", "--config", "c"), root, False)
    assert preload.forks((sys.executable, "./codes/train.py"), root, False)
    assert not preload.forks((sys.executable, "tests/fakes/fake_train.py"), root, False)
    assert preload.forks((sys.executable, "tests/fakes/fake_train.py"), root, True)
    code, text = in_process("--config", str(path), "--dry-run")
    assert code == 0, text
    assert "launch: engine: preloaded server" in text
    assert "launch: fake-net.v1: plain subprocess (preload auto: codes/train.py alone)" in text
    every = master_config(name="every.yaml", models=models, execution={"preload": True})
    assert api.load(every).execution.preload_all


@pytest.mark.parametrize("value", ["yes", ["torch", "not a module"], 3])
def test_a_bad_preload_value_is_one_line(master_config, cli, value) -> None:
    res = cli("--config", str(master_config(execution={"preload": value})), "--matrix")
    assert res.returncode == 2 and "execution.preload" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_scripts_do_not_block_views_only_a_run(master_config, tmp_path, capsys,
                                                       monkeypatch) -> None:
    """Issue 20 item 10: the original team's master names scripts this repository lacks:
    --matrix, --dry-run and --summary show the matrix and mark those models "script missing";
    a run refuses, naming the file, and launches nothing."""
    import signal

    from hyperparameter_system import experiment_runner

    monkeypatch.setattr(signal, "signal", lambda *a: None)
    path = str(master_config(models=[
        {"name": "gemini", "script": "python codes/gemini_main_v2.py"},
        {"name": "v2", "script": "./run_code_v2.sh"},
        {"name": "m1", "script": "python tests/fakes/fake_train.py"}],
        experiment_categories={"quality": {"options": [{"fake.metric": 0.9}]}}))
    for view in (["--matrix"], ["--dry-run", "--all"], ["--summary"]):
        assert experiment_runner.main(["--config", path, *view]) == 0, view
        shown = capsys.readouterr()
        text = shown.out + shown.err
        assert "script missing (script 'codes/gemini_main_v2.py' does not exist)" in text, view
        assert "script missing (script './run_code_v2.sh' does not exist)" in text, view
    assert experiment_runner.main(["--config", path, "--all"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models[0].script: script 'codes/gemini_main_v2.py' does not " \
        "exist" in err[0]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*"))
    assert experiment_runner.main(["--config", path, "--models", "m1", "--dry-run"]) == 0

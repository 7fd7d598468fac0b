"""Issue 15: a config error (exit 2) is not retried; processes that left the process group are
ended after a timeout or a stop; unwritable output folders and a full disk stop a run cleanly."""

from __future__ import annotations

import errno
import re
import signal
import threading
from pathlib import Path

import pytest
import yaml
from relkit import (
    ROOT,
    completions,
    experiment_pids,
    ledger_rows,
    master_dict,
    run_cli,
    start_cli,
    wait_for,
    write_master,
)

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import ExecutionSettings
from hyperparameter_system.core.processes import alive
from hyperparameter_system.run import launcher

REASON = "error: tests/fakes/base.yaml:12: lr: expected a number > 0, got -1"


def _model(data: dict, script: str) -> dict:
    data["models"] = [{"name": "m1", "script": script}]
    return data


def test_a_config_error_is_not_retried_and_its_line_is_the_reason(tmp_path):
    data = _model(master_dict(tmp_path, execution={"retry_failed": 3}),
                  "tests/fakes/fake_config_error.sh")
    config = write_master(tmp_path, data)
    proc = run_cli(tmp_path, "--config", str(config), "--all")
    assert proc.returncode == 1, proc.stderr
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "failed" and row["exit_code"] == 2
    assert row["attempts"] == 1 and row["launches"] == 1  # retry_failed: 3, yet one launch
    assert row["error"].startswith(REASON), row["error"]
    assert "config error" in row["error"]
    launches = (Path(row["run_dir"]).parent / "launches.txt").read_text().split()
    assert launches == [row["id"]]
    summary = run_cli(tmp_path, "--config", str(config), "--summary", COLUMNS="1000")
    assert summary.returncode == 0, summary.stderr
    assert REASON in summary.stdout, summary.stdout


def test_a_crash_is_still_retried(tmp_path):
    data = master_dict(tmp_path, [{"fake.exit_code": 3}], {"retry_failed": 2})
    proc = run_cli(tmp_path, "--config", str(write_master(tmp_path, data)), "--all")
    assert proc.returncode == 1, proc.stderr
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["error"] == "exit code 3"


def _escaped(row_or_dir) -> int:
    run_dir = Path(row_or_dir if isinstance(row_or_dir, str | Path) else row_or_dir["run_dir"])
    return int((run_dir / "escaped.pid").read_text())


def _carrying(experiment_id: str) -> list[int]:
    """Live processes whose environment holds HPSYS_EXPERIMENT_ID=<experiment_id>."""
    needle = f"HPSYS_EXPERIMENT_ID={experiment_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and needle in env and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_timeout_ends_what_left_the_process_group(tmp_path):
    data = _model(master_dict(tmp_path, execution={"experiment_timeout": 2}),
                  "tests/fakes/fake_setsid.sh")
    proc = run_cli(tmp_path, "--config", str(write_master(tmp_path, data)), "--all")
    assert proc.returncode == 1, proc.stderr
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "timeout", row
    escaped = _escaped(row)
    assert "escaped" in row["log_tail"]  # the double fork happened before the timeout
    # at once, not eventually: the runner ended it before recording the timeout
    assert not _carrying(row["id"]), _carrying(row["id"])
    assert not alive(escaped)


def test_a_stop_ends_what_left_the_process_group(tmp_path):
    data = _model(master_dict(tmp_path), "tests/fakes/fake_setsid.sh")
    proc = start_cli(tmp_path, "--config", str(write_master(tmp_path, data)), "--all")
    try:
        assert wait_for(lambda: list((tmp_path / "runs").rglob("escaped.pid")), 30)
        (pid_file,) = (tmp_path / "runs").rglob("escaped.pid")
        assert wait_for(lambda: pid_file.read_text().strip(), 5)
        escaped = _escaped(pid_file.parent)
        assert alive(escaped)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "interrupted"
    assert not _carrying(row["id"]) and not alive(escaped)


@pytest.mark.parametrize(("key", "path"), [("runs_dir", "/proc"),
                                           ("runs_dir", "/proc/hpsys-none/runs"),
                                           ("temp_config_dir", "/proc")])
def test_an_unwritable_output_folder_is_one_line_and_launches_nothing(tmp_path, key, path):
    config = write_master(tmp_path, master_dict(tmp_path, **{key: path}))
    proc = run_cli(tmp_path, "--config", str(config), "--all")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"system.{key}" in lines[0] and path in lines[0], lines[0]
    assert not [r for r in ledger_rows(tmp_path) if r["status"] != "pending"]
    assert not completions(tmp_path) and not experiment_pids(tmp_path)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*"))


def test_a_writable_output_folder_passes_and_keeps_no_probe(tmp_path):
    settings = api.load(write_master(tmp_path, master_dict(tmp_path)))
    launcher.check_outputs(settings)
    assert list((tmp_path / "runs").iterdir()) == [] and list((tmp_path / "tc").iterdir()) == []


def test_a_full_disk_while_preparing_stops_the_run_resumably(tmp_path, monkeypatch):
    options = [{"fake.sleep": 0.1, "fake.metric": i / 10} for i in range(3)]
    config = write_master(tmp_path, master_dict(tmp_path, options, {"max_parallel": 1,
                                                                    "retry_failed": 2}))
    settings = api.load(config)
    monkeypatch.setenv("FAKE_EVENTS", str(tmp_path / "events.jsonl"))
    real_write = launcher.atomic_write_text
    calls: list[Path] = []
    lock = threading.Lock()

    def write(path, text, durable=True):
        with lock:
            calls.append(Path(path))
            first = len(calls) == 1
        if first:  # only the first: a run that went on would finish the other two
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, text, durable=durable)

    monkeypatch.setattr(launcher, "atomic_write_text", write)
    result = api.run(settings, api.select(settings))
    assert result.interrupted and len(calls) == 1, calls
    (outcome,) = result.outcomes
    assert outcome.status == "interrupted" and outcome.disk_full
    assert re.fullmatch(rf"disk full: {re.escape(str(calls[0]))} \(\d+\.\d GB free\)",
                        outcome.error), outcome.error
    assert any(m.startswith(outcome.error) and "same command" in m for m in result.messages)
    rows = {r["id"]: r for r in ledger_rows(tmp_path)}
    assert rows[outcome.experiment_id]["status"] == "interrupted"
    assert rows[outcome.experiment_id]["attempts"] == 0  # not held against its retries
    assert sorted(r["status"] for r in rows.values()) == ["interrupted", "pending", "pending"]
    assert not completions(tmp_path)
    # space is back: the same command resumes and runs each once
    monkeypatch.setattr(launcher, "atomic_write_text", real_write)
    again = api.run(settings, api.select(settings))
    assert again.count("done") == 3 and not again.interrupted
    assert sorted(completions(tmp_path).values()) == [1, 1, 1]


def test_another_error_while_preparing_stays_a_failed_attempt(tmp_path, monkeypatch):
    settings = api.load(write_master(tmp_path, master_dict(tmp_path)))
    (exp,) = api.select(settings)
    launch = launcher.plan(exp, settings, 1)

    def denied(*_a, **_k):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(launcher, "atomic_write_text", denied)
    other = launcher.execute(launch)
    assert other.status == "failed" and not other.disk_full
    assert other.error.startswith("cannot prepare the run")


def test_min_free_gb_default_is_the_readmes():
    readme = re.search(r"min_free_gb:\s*([0-9.]+)", (ROOT / "README.md").read_text())
    shipped = yaml.safe_load((ROOT / "experiment_config.yaml").read_text())["execution"]
    assert readme and float(readme.group(1)) == ExecutionSettings().min_free_gb == 1.0
    assert shipped["min_free_gb"] == 1.0


def test_an_unset_min_free_gb_is_one_gb(tmp_path):
    data = master_dict(tmp_path)
    assert "min_free_gb" not in data["execution"]
    assert api.load(write_master(tmp_path, data)).execution.min_free_gb == 1.0

"""Issue 15, item 2: a full disk anywhere in a run is one line naming the full path and its free
space; the running experiments are ended and left interrupted (or `running`, which the next
runner recovers), never failed; the same command resumes once space is back. The ledger or the
runs_dir fills on a small tmpfs where the test can mount one, else through an injected
"database or disk is full" / ENOSPC at the write."""

from __future__ import annotations

import contextlib
import errno
import itertools
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from full_ledger_runner import full_connect
from relkit import (
    ROOT,
    RUNNER,
    cli_env,
    completions,
    experiment_pids,
    master_dict,
    run_cli,
    wait_for,
    write_master,
)

from hyperparameter_system.app import api
from hyperparameter_system.core.diskspace import disk_full
from hyperparameter_system.run import launcher
from hyperparameter_system.store.ledger import Ledger, LedgerFull

FREE = r"\d+\.\d GB free"
EXIT_INTERRUPTED = 130


# -- a small file system to fill -----------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (a ledger's WAL grows to ~4 MB before SQLite rewinds it); skipped where
    mounting is not allowed (the injected tests cover those machines)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file in `folder` until its file system is full."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
        while True:
            fh.write(block)
    with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as fh:
        while True:  # the last pages, in small writes
            fh.write(b"\0" * 512)
    return filler


def rows(path: Path) -> list[dict]:
    """The ledger's rows, in the order they were added; none before the runner made it."""
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM experiments ORDER BY rowid")]
        except sqlite3.OperationalError:  # no table yet
            return []


def running_with_pid(path: Path, count: int) -> bool:
    return len([r for r in rows(path) if r["status"] == "running" and r["pid"]]) == count


# -- the ledger ------------------------------------------------------------------------------
def test_a_full_ledger_write_is_one_error_naming_the_ledger_and_its_free_space(tmp_path,
                                                                              monkeypatch):
    ledger = Ledger(tmp_path / "l.db")
    full = threading.Event()
    monkeypatch.setattr(Ledger, "_connect", full_connect(full.is_set))
    full.set()
    with pytest.raises(LedgerFull) as caught:
        ledger.heartbeat("host:1")
    text = str(caught.value)
    assert re.fullmatch(rf"ledger {re.escape(str(tmp_path / 'l.db'))}: the disk is full \({FREE}"
                        r"\); free some space and run the same command to resume", text), text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # one line
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not disk_full(sqlite3.OperationalError("database is locked"))


def test_a_full_ledger_mid_run_ends_the_running_experiments_interrupted(tmp_path, monkeypatch):
    """One write fails (the disk had filled, then space came back): the run stops at once with
    LedgerFull, both trainers are ended, their rows say interrupted and why; resumed after."""
    options = [{"fake.sleep": 4, "fake.metric": 0.1 * i} for i in (1, 2)]
    settings = api.load(write_master(tmp_path, master_dict(tmp_path, options, {
        "max_parallel": 2, "retry_failed": 0})))
    monkeypatch.setenv("FAKE_EVENTS", str(tmp_path / "events.jsonl"))
    armed, spent = threading.Event(), itertools.count()
    monkeypatch.setattr(Ledger, "_connect", full_connect(
        lambda: armed.is_set() and next(spent) == 0))
    db = tmp_path / "l.db"
    threading.Thread(target=lambda: wait_for(lambda: running_with_pid(db, 2), 30) and armed.set(),
                     daemon=True).start()
    started = time.monotonic()
    with pytest.raises(LedgerFull, match=rf"^ledger {re.escape(str(db))}: the disk is full "
                       rf"\({FREE}\); the running experiments were ended"):
        api.run(settings, api.select(settings))
    assert armed.is_set() and time.monotonic() - started < 4 + 5  # not waited out
    assert not experiment_pids(tmp_path)
    found = rows(db)
    assert [r["status"] for r in found] == ["interrupted"] * 2, found
    assert all(r["error"].startswith(f"ended: ledger {db}: the disk is full") for r in found)
    assert not completions(tmp_path)
    monkeypatch.setattr(Ledger, "_connect", full_connect(lambda: False))
    again = api.run(settings, api.select(settings))
    assert again.count("done") == 2 and not again.interrupted
    assert sorted(completions(tmp_path).values()) == [1, 1]


def _start(tmp_path: Path, config: Path, injected: bool) -> subprocess.Popen:
    runner = (sys.executable, str(Path(__file__).with_name("full_ledger_runner.py"))) \
        if injected else RUNNER
    env = cli_env(tmp_path, FULL_LEDGER_FLAG=str(tmp_path / "full.flag"))
    return subprocess.Popen([*runner, "--config", str(config), "--all"], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_a_ledger_that_fills_stops_the_cli_with_one_line_and_resumes(tmp_path, request, how):
    """The runner CLI whose ledger fills while two trainers run: exit 130 with one line (no
    traceback), the trainers ended, no row failed; the same command finishes both."""
    folder = request.getfixturevalue("small_fs") if how == "tmpfs" else tmp_path
    db = folder / "l.db"
    options = [{"fake.sleep": 5, "fake.metric": 0.1 * i} for i in (1, 2)]
    config = write_master(tmp_path, master_dict(tmp_path, options, {"max_parallel": 2},
                                                ledger=str(db)))
    proc = _start(tmp_path, config, injected=how == "injected")
    filler = None
    try:
        assert wait_for(lambda: running_with_pid(db, 2), 60), rows(db)
        if how == "tmpfs":
            filler = fill(folder)
        else:
            (tmp_path / "full.flag").touch()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, (out, err)
    assert "Traceback" not in out + err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(rf"ledger {re.escape(str(db))}: the disk is full \({FREE}\); the running "
                     "experiments were ended .*same command", lines[0]), lines[0]
    assert wait_for(lambda: not experiment_pids(tmp_path), 10)
    assert {r["status"] for r in rows(db)} <= {"running", "interrupted"}, rows(db)
    assert not completions(tmp_path)
    if filler is not None:
        filler.unlink()
    (tmp_path / "full.flag").unlink(missing_ok=True)
    again = run_cli(tmp_path, "--config", str(config), "--all")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert [r["status"] for r in rows(db)] == ["done", "done"]
    assert sorted(completions(tmp_path).values()) == [1, 1]


# -- the runs_dir ----------------------------------------------------------------------------
def _enospc_script(tmp_path: Path) -> str:
    script = tmp_path / "enospc_train.py"
    script.write_text("import sys\nprint(\"OSError: [Errno 28] No space left on device: "
                      "'/data/ckpt/last.pt'\", flush=True)\nsys.exit(1)\n")
    return f"python {script}"


def test_a_script_that_ran_out_of_space_is_interrupted_not_failed(tmp_path):
    data = master_dict(tmp_path)
    data["models"][0]["script"] = _enospc_script(tmp_path)
    settings = api.load(write_master(tmp_path, data))
    (exp,) = api.select(settings)
    outcome = launcher.execute(launcher.plan(exp, settings, 1))
    assert outcome.status == "interrupted" and outcome.disk_full
    assert re.fullmatch(rf"disk full: /data/ckpt/last\.pt \({FREE}\); the script ended with "
                        "exit code 1", outcome.error), outcome.error


def test_a_failure_on_a_nearly_full_run_folder_is_the_disk_and_not_otherwise(tmp_path,
                                                                            monkeypatch):
    """An empty train.log (it could not be written either): the run folder's free space
    decides. With space to spare, a failure stays a failure."""
    settings = api.load(write_master(tmp_path, master_dict(tmp_path, [{"fake.exit_code": 1}])))
    (exp,) = api.select(settings)
    failed = launcher.execute(launcher.plan(exp, settings, 1))
    assert failed.status == "failed" and not failed.disk_full and failed.error == "exit code 1"
    monkeypatch.setattr(launcher, "free_bytes", lambda path: 4096)
    full = launcher.execute(launcher.plan(exp, settings, 2))
    assert full.status == "interrupted" and full.disk_full
    assert full.error.startswith(f"disk full: {full.run_dir} (") and full.error.endswith(
        "the script ended with exit code 1"), full.error


def test_a_full_runs_dir_ends_the_running_experiments_and_resumes(tmp_path, monkeypatch):
    """One experiment fails for want of space: the other, still running, is ended (not left to
    fail the same way), both are interrupted with the reason, and the same run resumes."""
    options = [{"fake.exit_code": 1, "fake.sleep": 0.5}, {"fake.sleep": 4, "fake.metric": 0.9}]
    settings = api.load(write_master(tmp_path, master_dict(tmp_path, options, {
        "max_parallel": 2, "retry_failed": 0})))
    monkeypatch.setenv("FAKE_EVENTS", str(tmp_path / "events.jsonl"))
    monkeypatch.setattr(launcher, "free_bytes", lambda path: 0)
    started = time.monotonic()
    result = api.run(settings, api.select(settings))
    assert time.monotonic() - started < 4, "the running experiment was not ended"
    assert result.interrupted and result.disk_full.startswith("disk full: ")
    assert "ended (interrupted)" in result.disk_full and "same command" in result.disk_full
    assert any(m == result.disk_full for m in result.messages)
    by_option = {r["option_json"]: r for r in rows(tmp_path / "l.db")}
    failing, running = (by_option[next(k for k in by_option if key in k)]
                        for key in ("exit_code", "metric"))
    assert failing["status"] == "interrupted" and failing["error"].startswith("disk full: ")
    assert running["status"] == "interrupted"
    assert running["error"].startswith("ended: disk full: "), running["error"]
    monkeypatch.undo()
    monkeypatch.setenv("FAKE_EVENTS", str(tmp_path / "events.jsonl"))
    again = api.run(settings, api.select(settings))
    assert again.count("done") == 1 and again.count("failed") == 1 and not again.interrupted


def test_a_runs_dir_that_fills_on_a_tmpfs_stops_the_cli_and_resumes(tmp_path, small_fs):
    """A real full file system under runs_dir while two trainers run: the first one that fails
    writing stops the run; exit 130, a line naming the full path and its free space, nothing
    failed; once space is back, the same command finishes both."""
    options = [{"fake.sleep": 3, "fake.epochs": 3, "fake.metric": 0.1 * i} for i in (1, 2)]
    # min_free_gb 0: the 16 MiB tmpfs is below the default, which would pause before launching
    config = write_master(tmp_path, master_dict(tmp_path, options, {
        "max_parallel": 2, "min_free_gb": 0}, runs_dir=str(small_fs / "runs")))
    proc = subprocess.Popen([*RUNNER, "--config", str(config), "--all"], cwd=ROOT,
                            env=cli_env(tmp_path), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(list(small_fs.rglob("record.json"))) == 2, 60)
        filler = fill(small_fs)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, (out, err)
    assert "Traceback" not in out + err
    said = re.search(rf"disk full: ({re.escape(str(small_fs))}\S*) \({FREE}\)", out + err)
    assert said, (out, err)
    found = rows(tmp_path / "l.db")
    assert [r["status"] for r in found] == ["interrupted"] * 2, found
    assert not completions(tmp_path)
    filler.unlink()
    again = run_cli(tmp_path, "--config", str(config), "--all")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert sorted(completions(tmp_path).values()) == [1, 1]


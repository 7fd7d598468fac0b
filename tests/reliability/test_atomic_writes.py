"""Point 6: kills during writes leave the old or the new state, never half of one."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from relkit import ROOT, integrity, ledger_rows, master_dict, run_cli, write_master

from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.store.row import STATUSES

WRITER = """
import sys
from pathlib import Path
from hyperparameter_system.core.atomic import atomic_write_text
target, texts = Path(sys.argv[1]), ("a" * 300_000, "b" * 500_000)
print("ready", flush=True)
for i in range(10**9):
    atomic_write_text(target, texts[i % 2])
"""

LEDGER_CHURN = """
import sys, time
from hyperparameter_system.app import api
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.store.claims import runner_identity
settings = api.load(sys.argv[1])
experiments = api.select(settings)
ledger = api.open_ledger(settings)
ledger.sync(experiments)
print("ready", flush=True)
while True:
    for e in experiments:
        if ledger.claim(e.id, runner_identity(), 5):
            now = time.time()
            ledger.finish(e.id, Outcome(e.id, "done", now, now, log_tail="x" * 5000,
                                        result={"metrics": {"best_val_f1": 0.5}}), 0.5)
    ledger.reset(e.id for e in experiments)
"""


def _kill_at_random(code: str, arg: str, times: int, check) -> None:
    rng = random.Random(11)
    for _ in range(times):
        proc = subprocess.Popen([sys.executable, "-c", code, arg], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check()


def test_atomic_write_text_killed_mid_write_leaves_old_or_new(tmp_path):
    target = tmp_path / "tc" / "001_run.yaml"
    atomic_write_text(target, "a" * 300_000)

    def whole() -> None:
        assert target.read_text() in ("a" * 300_000, "b" * 500_000)

    _kill_at_random(WRITER, str(target), 15, whole)


@pytest.mark.slow
def test_ledger_killed_mid_transaction_stays_consistent(tmp_path):
    options = [{"fake.metric": i / 10} for i in range(10)]
    config = write_master(tmp_path, master_dict(tmp_path, options))

    def consistent() -> None:
        assert integrity(tmp_path / "l.db") == "ok"
        rows = ledger_rows(tmp_path)
        assert len(rows) == 10 and {r["status"] for r in rows} <= set(STATUSES)

    _kill_at_random(LEDGER_CHURN, str(config), 12, consistent)
    # the next runner takes back what the killed one held and finishes everything
    result = run_cli(tmp_path, "--config", str(config), "--all")
    assert result.returncode == 0, result.stderr
    assert {r["status"] for r in ledger_rows(tmp_path)} == {"done"}


def test_a_half_written_result_json_is_a_failure_not_a_result(tmp_path):
    half = ("import os; open(os.environ['HPSYS_RUN_DIR'] + '/result.json', 'w')"
            ".write('{\"experiment_id\": \"x\", \"metrics\": {\"best_va')")
    data = master_dict(tmp_path)
    data["models"] = [{"name": "m1", "script": ["python", "-c", half]}]
    config = write_master(tmp_path, data)
    assert run_cli(tmp_path, "--config", str(config), "--all").returncode == 1
    (row,) = ledger_rows(tmp_path)
    assert row["status"] == "failed" and "no readable result.json" in row["error"]
    assert Path(row["run_dir"], "result.json").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_text_gives_a_new_file_the_umask_mode(tmp_path, umask, mode):
    """An exported report is readable as any new file is, not mkstemp's owner-only 0o600."""
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "r.html", "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.html").stat().st_mode) == mode


def test_atomic_write_text_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]  # no temp file left

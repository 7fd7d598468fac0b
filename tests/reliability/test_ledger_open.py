"""Issue 20 item 9: opening a ledger. A lock held by another process is told at once, naming
it, and given up on after a bounded wait (exit 2); the ledger carries its schema version
(SQLite user_version), and a newer or unknown one, or a file whose table is gone, is refused;
a read-only command creates nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from relkit import master_dict, write_master

from hyperparameter_system.store import lock_wait
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.schema import LEDGER_VERSION

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE experiments SET note='x' WHERE 0")
print("held", flush=True)
time.sleep(60)
"""


def _config(tmp: Path, ledger: Path) -> str:
    return str(write_master(tmp, master_dict(tmp, ledger=str(ledger))))


def _made(tmp: Path) -> Path:
    path = tmp / "l.db"
    Ledger(path).ensure().close()
    return path


def test_a_locked_ledger_is_told_at_once_and_given_up_on(tmp_path, cli, monkeypatch):
    path = _made(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(lock_wait, "LOCK_WAIT_S", 1.5)
        start = time.monotonic()
        code, _, err = cli("--config", _config(tmp_path, path), "--summary")
        took = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    lines = err.strip().splitlines()
    assert code == 2 and took < 10, err
    assert len(lines) == 2 and "Traceback" not in err, err
    assert f"is locked by pid {holder.pid} (" in lines[0] and "waiting up to 1.5 s" in lines[0]
    assert f"locked by pid {holder.pid}" in lines[1] and "gave up after" in lines[1]


@pytest.mark.parametrize(("change", "says"), [
    ("PRAGMA user_version=99", "ledger version 99 is not one"),
    ("PRAGMA user_version=-3", "ledger version -3 is not one"),
    ("ALTER TABLE experiments RENAME TO old_experiments", "has no experiments table"),
])
def test_a_ledger_of_another_version_or_without_its_table_is_refused(tmp_path, cli, change,
                                                                      says):
    path = _made(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(change)
    before = path.read_bytes()
    for argv in (["--summary"], ["--all"], ["--matrix"]):
        code, _, err = cli("--config", _config(tmp_path, path), *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    with sqlite3.connect(path) as db:  # no new empty table added beside the renamed one
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "experiments" not in tables or "old_experiments" not in tables
    assert path.read_bytes() == before


def test_a_new_ledger_carries_its_version_and_an_old_one_is_read(tmp_path):
    path = _made(tmp_path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LEDGER_VERSION
        db.execute("PRAGMA user_version=0")  # a ledger from before versions were kept
    assert Ledger(path).rows() == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LEDGER_VERSION


def test_read_only_commands_create_nothing(tmp_path, cli):
    ledger = tmp_path / "not" / "yet" / "l.db"
    config = _config(tmp_path, ledger)
    for argv in (["--summary"], ["--matrix"], ["--dry-run", "--all"],
                 ["--export-ledger", str(tmp_path / "rows.csv")],
                 ["--forget", "failed"], ["--forget", "failed", "--dry-run"]):
        code, _, err = cli("--config", config, *argv)
        assert code == 0, (argv, err)
        assert not (tmp_path / "not").exists(), argv

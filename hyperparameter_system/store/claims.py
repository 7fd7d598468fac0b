"""Who holds a ledger row. A claim is an atomic compare-and-set inside the caller's immediate
transaction, so two runners on one ledger never launch the same experiment; a row left
`running` by a dead runner is taken back once its owner is gone: on this host, its pid has
exited; elsewhere, its heartbeat is stale."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable

from hyperparameter_system.core.processes import process_start
from hyperparameter_system.core.states import FINAL, Status
from hyperparameter_system.store.row import Row

Alive = Callable[[int], bool]


def runner_identity() -> str:
    """`host:pid`: who owns a running row."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(owner: str | None, heartbeat: float | None, stale_after: float, alive: Alive,
               claimed_at: float | None = None) -> bool:
    """Whether a running row's runner is gone. On this host its pid decides: a live runner whose
    heartbeat stalls (a loaded machine, a suspended laptop) still owns its rows, and taking one
    over would run the experiment twice; a process that started after the claim only reuses the
    dead runner's pid. Another host's runner is judged by its heartbeat."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        born = process_start(int(pid))
        reused = born is not None and claimed_at is not None and born > claimed_at + 1.0
        return reused or not alive(int(pid))
    return heartbeat is None or time.time() - heartbeat > stale_after


def owned(exp_id: str, owner: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause of a write to a running row: only while `owner` still holds it."""
    if owner is None:
        return "WHERE id=?", (exp_id,)
    return "WHERE id=? AND status='running' AND owner=?", (exp_id, owner)


def _claimable(row: sqlite3.Row, stale_after: float, alive: Alive) -> bool:
    """Whether a row may be taken: not finished, and not running under a live runner."""
    if row["status"] == Status.RUNNING:
        return owner_gone(row["owner"], row["heartbeat"], stale_after, alive,
                          row["started_at"])
    return row["status"] not in FINAL


def claim(db: sqlite3.Connection, exp_id: str, owner: str, stale_after: float,
          alive: Alive) -> Row | None:
    """Take an experiment to run (Ledger.claim): its row as it was before, or None when it is
    done or held by a live runner."""
    row = db.execute("SELECT * FROM experiments WHERE id=?", (exp_id,)).fetchone()
    if row is None or not _claimable(row, stale_after, alive):
        return None
    host, _pid = owner.rsplit(":", 1)
    db.execute("UPDATE experiments SET status='running', attempts=attempts+1,"
               " launches=COALESCE(launches, 0)+1, owner=?, host=?, pid=NULL,"
               " heartbeat=?, started_at=?, finished_at=NULL, exit_code=NULL,"
               " signal=NULL, error=NULL, note=NULL WHERE id=?",
               (owner, host, time.time(), time.time(), exp_id))
    return Row.from_columns(dict(row))


def release(db: sqlite3.Connection, exp_id: str, status: str, error: str | None,
            owner: str | None) -> bool:
    """Hand back a claimed experiment that never started (Ledger.release)."""
    where, args = owned(exp_id, owner)
    return db.execute("UPDATE experiments SET status=?, error=?, pid=NULL,"
                      " attempts=MAX(attempts-1, 0) " + where,
                      (status, error, *args)).rowcount > 0


def forget(db: sqlite3.Connection, wanted: list[str], stale_after: float,
           alive: Alive) -> tuple[int, int]:
    """Delete these rows but those held by a live runner (Ledger.forget): (deleted, kept)."""
    gone = kept = 0
    for exp_id in wanted:
        row = db.execute("SELECT * FROM experiments WHERE id=?", (exp_id,)).fetchone()
        if row is None:
            continue
        if row["status"] == Status.RUNNING and not _claimable(row, stale_after, alive):
            kept += 1
            continue
        db.execute("DELETE FROM experiments WHERE id=?", (exp_id,))
        gone += 1
    return gone, kept

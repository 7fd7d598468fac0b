"""The ledger (the enhanced experiment tracker): one SQLite row per experiment.

Every state change is one transaction. A claim is an atomic compare-and-set, so two runners on
one ledger never launch the same experiment; a row left `running` by a dead runner is taken back
once its owner is gone: on this host, its pid has exited; elsewhere, its heartbeat is stale.
Outcomes are written only by the runner that still owns the row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.core.diskspace import disk_full, free_space
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.processes import alive as pid_alive
from hyperparameter_system.core.processes import open_by, process_start
from hyperparameter_system.core.states import FINAL, Status

if TYPE_CHECKING:
    from hyperparameter_system.config.settings import Settings
    from hyperparameter_system.matrix.experiments import Experiment
    from hyperparameter_system.run.launcher import Outcome

Alive = Callable[[int], bool]

STATUSES = tuple(Status)  # stored as their values, as they always were

COLUMNS = {
    "id": "TEXT PRIMARY KEY", "model": "TEXT", "project": "TEXT", "category": "TEXT",
    "option_json": "TEXT", "label": "TEXT", "run_name": "TEXT", "repeat": "INTEGER",
    "changes_json": "TEXT", "config_json": "TEXT", "script": "TEXT",
    "status": "TEXT", "attempts": "INTEGER DEFAULT 0", "owner": "TEXT", "host": "TEXT",
    "pid": "INTEGER", "heartbeat": "REAL", "node": "TEXT",
    "created_at": "REAL", "started_at": "REAL", "finished_at": "REAL", "duration_s": "REAL",
    "exit_code": "INTEGER", "signal": "INTEGER", "error": "TEXT", "log_tail": "TEXT",
    "metric": "REAL", "result_json": "TEXT", "config_path": "TEXT", "run_dir": "TEXT",
    "log_path": "TEXT", "wandb_project": "TEXT", "wandb_name": "TEXT", "wandb_run_id": "TEXT",
    "wandb_mode": "TEXT", "wandb_dir": "TEXT",
    "launches": "INTEGER DEFAULT 0", "batch_override": "INTEGER", "note": "TEXT",
    "pruned_epoch": "INTEGER",  # the epoch a pruner stopped it at (its reason is the note)
    "job": "TEXT",  # a scheduler's job id (Slurm), found again by the next runner
}

# Rows recorded before `launches` existed: each started attempt used the W&B run id of the old
# scheme (the experiment id first), so the next launch must count on from there.
_LAUNCHES_FROM_ATTEMPTS = ("UPDATE experiments SET launches=MAX(COALESCE(attempts, 0), 1)"
                           " WHERE started_at IS NOT NULL")

# The original system's experiment_results_extended.csv columns, then everything else.
LEGACY_CSV = ("experiment_id", "model_name", "category", "option", "status", "start_time",
              "error_message", "config_path", "execution_time", "f1_score", "accuracy",
              "stdout_sample")


class LedgerFull(HpsysError):
    """A ledger write failed for want of space (SQLite's "database or disk is full", or
    ENOSPC). Not bad input: the run stops with one line naming the ledger and its free space,
    and the same command resumes once space is back. `then` says what the run did about it."""

    def __init__(self, path: Path, then: str = "free some space and run the same command to "
                 "resume") -> None:
        super().__init__(f"ledger {path}", f"the disk is full ({free_space(path)} free); {then}")
        self.path = path


def runner_identity() -> str:
    """`host:pid`: who owns a running row."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Row:
    """One ledger row, with the parsed JSON columns at hand."""

    data: dict[str, Any]

    def __post_init__(self) -> None:
        # A hand-edited cell (`duration_s='x'`): SQLite keeps text in a number column as text.
        # It is read as missing and told in `problems`, not a traceback in the report.
        object.__setattr__(self, "_problems", [])
        for key, kind in COLUMNS.items():
            value = self.data.get(key)
            if kind.startswith(("REAL", "INTEGER")) and isinstance(value, str | bytes):
                self.data[key] = None
                self._problem(key, value, "not a number")

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    def _problem(self, column: str, value: Any, what: str) -> None:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        self._problems.append(f"ledger row {self.data.get('id')}: {column} {shown} is {what}; "
                              "read as missing")

    def _json(self, column: str) -> dict[str, Any]:
        text = self.data.get(column)
        if not text:
            return {}
        try:
            value = json.loads(text)
        except (ValueError, TypeError):
            value = None
        if not isinstance(value, dict):
            self._problem(column, text, "not a JSON object")
            return {}
        return value

    # parsed once per row: a report reads each row's result several times over
    @cached_property
    def option(self) -> dict[str, Any]:
        return self._json("option_json")

    @cached_property
    def result(self) -> dict[str, Any]:
        return self._json("result_json")

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._json("config_json")

    @property
    def problems(self) -> list[str]:
        """The unreadable cells of this row, each read as missing: for the report to warn."""
        _ = self.option, self.result, self.config  # parse each: a bad one adds its problem
        return list(self._problems)


def row_problems(rows: Iterable[Row]) -> list[str]:
    """Every unreadable cell of these rows, one line each, naming the row's id."""
    return [problem for row in rows for problem in row.problems]


LEDGER_VERSION = 1  # PRAGMA user_version of a ledger; 0: written before versions were kept
LOCK_WAIT_S = 30.0  # how long opening or reading waits for another process's lock
_notice: Callable[[str], None] | None = None


def on_lock_wait(notice: Callable[[str], None] | None) -> None:
    """Who is told, once per wait, that a ledger is locked and by whom (the ui's warning line;
    nobody by default: the store never prints)."""
    global _notice
    _notice = notice


class LedgerLocked(HpsysError):
    """Another process held the ledger's lock for LOCK_WAIT_S: bad input's exit code, one line
    naming the holder, instead of a silent minute and SQLite's 'database is locked'."""

    def __init__(self, path: Path, holders: str, waited: float) -> None:
        super().__init__(f"ledger {path}", f"locked by {holders}; gave up after {waited:g} s "
                                           "(let it finish or end it, then run this again)")


def _holders(path: Path) -> str:
    """Who has the ledger open, in words: `pid 123 (sqlite3 x.db)`, or `another process`."""
    found = [f"pid {pid} ({cmd})" if cmd else f"pid {pid}"
             for pid, cmd in open_by(path, f"{path}-wal", f"{path}-shm") if pid != os.getpid()]
    return ", ".join(found[:3]) or "another process"


class Ledger:
    """SQLite-backed state of every experiment; safe across processes and threads.

    Opening creates nothing: a ledger that does not exist reads as empty, and its file and
    table are made by the first write (a read-only command leaves no trace). Its schema version
    is SQLite's user_version; a newer or unknown one, or a file whose experiments table is
    gone, is refused rather than read as "no runs yet"."""

    def __init__(self, path: str | Path, timeout: float = 60.0,
                 lock_wait_s: float | None = None) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._lock_wait_s = LOCK_WAIT_S if lock_wait_s is None else lock_wait_s
        self._keeper: sqlite3.Connection | None = None
        if self.path.exists():
            self._open()

    def ensure(self) -> Ledger:
        """Create the ledger now (its folder, file and table) if it is not yet there."""
        if self._keeper is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        return self

    def close(self) -> None:
        """Let go of the file (the connection held open for the ledger's life)."""
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def _open(self) -> None:
        self._patiently(self._use_wal)
        self._patiently(self._check_table)
        # Held open for the ledger's life: while another connection is open, SQLite does not
        # checkpoint (and fsync) the WAL each time a transaction's own connection closes.
        keeper = sqlite3.connect(self.path, timeout=0.2, check_same_thread=False)
        self._patiently(lambda: keeper.execute("SELECT 1 FROM experiments LIMIT 1").fetchall())
        self._keeper = keeper  # (a read opens it: sqlite3.connect alone touches nothing)

    def _check_table(self) -> None:
        """The version and the table as this runner writes them: a new file gets both; an
        older ledger gets its missing columns; anything else is refused."""
        db = self._connect(timeout=0.2)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if version > LEDGER_VERSION or version < 0:
                raise HpsysError(f"ledger {self.path}", f"ledger version {version} is not one "
                                 f"this hyperparameter_system reads (up to {LEDGER_VERSION}): "
                                 "written by a newer one? upgrade it, or name another "
                                 "system.ledger")
            if "experiments" not in tables and (tables or version):
                raise HpsysError(f"ledger {self.path}", "has no experiments table (renamed or "
                                 f"dropped? it holds {', '.join(sorted(tables)) or 'nothing'}); "
                                 "restore it, or name another system.ledger")
            have = {r[1] for r in db.execute("PRAGMA table_info(experiments)")}
            if version == LEDGER_VERSION and have >= COLUMNS.keys():
                return  # the common case: nothing to write, no write lock taken
        finally:
            db.close()
        with self._tx(timeout=0.2, ensure=False) as db:
            cols = ", ".join(f'"{k}" {v}' for k, v in COLUMNS.items())
            db.execute(f"CREATE TABLE IF NOT EXISTS experiments ({cols})")
            have = {r[1] for r in db.execute("PRAGMA table_info(experiments)")}
            for key, kind in COLUMNS.items():
                if key not in have:
                    db.execute(f'ALTER TABLE experiments ADD COLUMN "{key}" {kind}')
            if have and "launches" not in have:
                db.execute(_LAUNCHES_FROM_ATTEMPTS)
            db.execute(f"PRAGMA user_version={LEDGER_VERSION}")

    def _patiently(self, step: Callable[[], Any]) -> Any:
        """Run `step` (its connections wait briefly); while another process holds the lock,
        say at once that we wait and for whom (on_lock_wait), retry, and give up after
        lock_wait_s with LedgerLocked."""
        start = time.monotonic()
        told = False
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= self._lock_wait_s:
                    raise LedgerLocked(self.path, _holders(self.path),
                                       round(waited, 1)) from None
                if not told and _notice is not None:
                    _notice(f"ledger {self.path} is locked by {_holders(self.path)}; waiting "
                            f"up to {self._lock_wait_s:g} s")
                told = True
                time.sleep(0.05)

    def _use_wal(self) -> None:
        """Put the file in WAL mode (it stays so). SQLite's busy timeout does not cover the
        switch: two runners opening a new ledger at once would see 'database is locked'."""
        db = sqlite3.connect(self.path, timeout=0.2, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()

    def _connect(self, timeout: float | None = None) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self._timeout if timeout is None else timeout,
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _tx(self, timeout: float | None = None,
            ensure: bool = True) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: committed whole or not at all (the first one creates the
        ledger). A full disk is LedgerFull (SQLite may have rolled back already: a failed
        ROLLBACK must not chain a traceback)."""
        if ensure:
            self.ensure()
        db = self._connect(timeout)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            if disk_full(exc):
                raise LedgerFull(self.path) from None
            raise
        finally:
            db.close()

    def sync(self, experiments: Sequence[Experiment]) -> None:
        """Add every experiment not yet recorded as pending; known ones keep their state."""
        now = time.time()
        rows = [(e.id, e.model, e.project, e.category, e.option_json, e.label, e.run_name,
                 e.repeat, json.dumps(dict(e.changes), default=str),
                 json.dumps(dict(e.config), default=str), " ".join(e.script), now)
                for e in experiments]
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO experiments (id, model, project, category, option_json,"
                " label, run_name, repeat, changes_json, config_json, script, created_at, status,"
                " attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'pending',0)", rows)

    def reset(self, ids: Iterable[str]) -> None:
        """`--rerun`: forget the outcome of these (not running) experiments, and any batch size
        halved after an OOM (a fresh start; the launch counter keeps counting)."""
        with self._tx() as db:
            db.executemany("UPDATE experiments SET status='pending', attempts=0,"
                           " batch_override=NULL, note=NULL WHERE id=? AND status!='running'",
                           [(i,) for i in ids])

    def forget(self, ids: Iterable[str], stale_after: float = 300.0,
               alive: Alive = pid_alive) -> tuple[int, int]:
        """Delete these rows (`--forget`), except those running under a live runner: (how many
        were deleted, how many were kept as running). The ledger file itself stays."""
        wanted = list(dict.fromkeys(ids))
        if self._keeper is None and not self.path.exists():
            return 0, 0  # nothing recorded: nothing to delete, and nothing created
        return self._patiently(lambda: self._forget(wanted, stale_after, alive))

    def _forget(self, wanted: list[str], stale_after: float, alive: Alive) -> tuple[int, int]:
        gone = kept = 0
        with self._tx(timeout=0.2) as db:  # a user's command: told and bounded, not 60 s
            for exp_id in wanted:
                row = db.execute("SELECT * FROM experiments WHERE id=?", (exp_id,)).fetchone()
                if row is None:
                    continue
                if row["status"] == Status.RUNNING and not owner_gone(
                        row["owner"], row["heartbeat"], stale_after, alive, row["started_at"]):
                    kept += 1
                    continue
                db.execute("DELETE FROM experiments WHERE id=?", (exp_id,))
                gone += 1
        return gone, kept

    def held(self, ids: Iterable[str], stale_after: float = 300.0,
             alive: Alive = pid_alive) -> set[str]:
        """The ids among these running under a live runner: what `--forget` keeps (read only,
        for `--forget --dry-run`)."""
        return {r.id for r in self.rows(ids) if r.status == Status.RUNNING and not owner_gone(
            r.owner, r.heartbeat, stale_after, alive, r.started_at)}

    def claim(self, exp_id: str, owner: str, stale_after: float,
              alive: Alive = pid_alive) -> Row | None:
        """Atomically take an experiment to run: its row as it was before, for the one runner
        that got it; None for everyone else (done, or running under a live runner). Counts a
        launch: this one is number `launches + 1` of the row returned."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM experiments WHERE id=?", (exp_id,)).fetchone()
            if row is None or not self._claimable(row, stale_after, alive):
                return None
            host, pid = owner.rsplit(":", 1)
            db.execute("UPDATE experiments SET status='running', attempts=attempts+1,"
                       " launches=COALESCE(launches, 0)+1, owner=?, host=?, pid=NULL,"
                       " heartbeat=?, started_at=?, finished_at=NULL, exit_code=NULL,"
                       " signal=NULL, error=NULL, note=NULL WHERE id=?",
                       (owner, host, time.time(), time.time(), exp_id))
            return Row(dict(row))

    @staticmethod
    def _claimable(row: sqlite3.Row, stale_after: float, alive: Alive) -> bool:
        status = row["status"]
        if status == Status.RUNNING:
            return owner_gone(row["owner"], row["heartbeat"], stale_after, alive,
                              row["started_at"])
        return status not in FINAL

    def set_started(self, exp_id: str, pid: int, launch_info: dict[str, Any],
                    owner: str | None = None) -> bool:
        """The process is up: record its pid (for reaping) and where it writes. False when
        `owner` no longer holds the row (taken over): the caller must stop that process."""
        keys = ("config_path", "run_dir", "log_path", "wandb_project", "wandb_name",
                "wandb_run_id", "wandb_mode", "node", "job")
        values = [launch_info.get(k) for k in keys]
        where, args = _owned(exp_id, owner)
        with self._tx() as db:
            return db.execute(
                f"UPDATE experiments SET pid=?, {', '.join(f'{k}=?' for k in keys)} {where}",
                (pid, *values, *args)).rowcount > 0

    def heartbeat(self, owner: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE experiments SET heartbeat=? WHERE owner=? AND status='running'",
                       (time.time(), owner))

    def finish(self, exp_id: str, outcome: Outcome, metric: float | None,
               owner: str | None = None, batch_override: int | None = None) -> bool:
        """Record how an attempt ended; an interrupted attempt does not count against retries.

        With `owner` (a runner), only while that runner still holds the row: one whose row was
        taken over must not overwrite the new owner's record (False then). Without, the row is
        written as it stands (seeding a ledger). `batch_override`: the batch size the next
        launch uses (halved after an OOM); kept across runner restarts, cleared by --rerun.
        """
        o = outcome
        result = json.dumps(o.result, default=str) if o.result is not None else None
        wandb = (o.result or {}).get("wandb") or {}
        where, args = _owned(exp_id, owner)
        with self._tx() as db:
            return db.execute(
                "UPDATE experiments SET status=?, finished_at=?, duration_s=?, exit_code=?,"
                " signal=?, error=?, note=?, log_tail=?, metric=?, result_json=?,"
                " config_path=?, run_dir=?, log_path=?, wandb_run_id=COALESCE(?, wandb_run_id),"
                " wandb_dir=?, node=COALESCE(?, node), pid=NULL, pruned_epoch=?,"
                " batch_override=COALESCE(?, batch_override),"
                " attempts=attempts - (CASE WHEN ?='interrupted' THEN 1 ELSE 0 END) " + where,
                (o.status, o.finished_at, o.duration_s, o.exit_code, o.signal, o.error, o.note,
                 o.log_tail, metric, result, o.config_path, o.run_dir, o.log_path,
                 wandb.get("run_id"), wandb.get("dir"), o.node,
                 o.extra.get("pruned_epoch") if o.status == Status.PRUNED else None,
                 batch_override, o.status,
                 *args)).rowcount > 0

    def release(self, exp_id: str, status: str = Status.INTERRUPTED, error: str | None = None,
                owner: str | None = None) -> bool:
        """A claimed experiment that never started (stopped first): hand it back, if `owner`
        (when given) still holds it."""
        where, args = _owned(exp_id, owner)
        with self._tx() as db:
            return db.execute("UPDATE experiments SET status=?, error=?, pid=NULL,"
                              " attempts=MAX(attempts-1, 0) " + where,
                              (status, error, *args)).rowcount > 0

    def rows(self, ids: Iterable[str] | None = None, status: str | None = None) -> list[Row]:
        if self._keeper is None:
            if not self.path.exists():
                return []  # nothing recorded yet, and a read creates nothing
            self._open()  # another runner made it since

        def read() -> list[Row]:
            db = self._connect(timeout=0.2)
            try:
                return [Row(dict(r)) for r in db.execute(
                    "SELECT * FROM experiments" + (" WHERE status=?" if status else ""),
                    (status,) if status else ())]
            finally:
                db.close()

        found = self._patiently(read)
        if ids is not None:
            wanted = list(ids)
            by_id = {r.id: r for r in found}
            return [by_id[i] for i in wanted if i in by_id]
        return sorted(found, key=lambda r: (r.created_at or 0, r.id))

    def statuses(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        return {r.id: r.status for r in self.rows(ids)}

    def export_csv(self, path: str | Path) -> int:
        """Every row as CSV at `path` (written whole or not at all); the rows written."""
        text, count = self.csv_text()
        atomic_write_text(Path(path), text)
        return count

    def csv_text(self) -> tuple[str, int]:
        """Every row as CSV, the original's columns first, then every ledger column; and the
        number of rows."""
        rows = self.rows()
        fh = io.StringIO(newline="")
        writer = csv.writer(fh)
        extra = [k for k in COLUMNS if k not in LEGACY_CSV]  # no duplicate headers
        writer.writerow([*LEGACY_CSV, *extra])
        for r in rows:
            metrics = r.result.get("metrics", {})
            legacy = (r.id, r.model, r.category, r.option_json, _legacy_status(r.status),
                      _iso(r.started_at), r.error, r.config_path, r.duration_s,
                      metrics.get("best_val_f1"), metrics.get("final_val_acc"),
                      (r.log_tail or "")[-200:])
            writer.writerow([*legacy, *(r.data.get(k) for k in extra)])
        return fh.getvalue(), len(rows)


def open_ledger(settings: Settings, create: bool = False) -> Ledger:
    """The config's ledger (`create`: made now if it is not there, as a run needs; a read
    creates nothing). One that cannot be opened (an unwritable folder, a file that is not
    SQLite) is bad input at system.ledger, told before anything runs, not a traceback."""
    path = settings.system.ledger
    try:
        book = Ledger(path)
        return book.ensure() if create else book
    except LedgerFull:
        raise
    except (OSError, sqlite3.Error) as exc:
        if disk_full(exc):
            raise LedgerFull(path) from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise HpsysError(f"{settings.path}: system.ledger",
                         f"cannot open the ledger {path}: {reason}") from None


def _owned(exp_id: str, owner: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause of a write to a running row: only while `owner` still holds it."""
    if owner is None:
        return "WHERE id=?", (exp_id,)
    return "WHERE id=? AND status='running' AND owner=?", (exp_id, owner)


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


def _legacy_status(status: str) -> str:
    return "completed" if status == Status.DONE else status


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts)) if ts else None

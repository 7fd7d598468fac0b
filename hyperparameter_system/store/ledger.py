"""The ledger (the enhanced experiment tracker): one SQLite row per experiment.

Every state change is one transaction. A claim is an atomic compare-and-set, so two runners on
one ledger never launch the same experiment; a row left `running` by a dead runner is taken back
once its owner is gone (store/claims.py). Outcomes are written only by the runner that still
owns the row. The Ledger holds the file and its transactions; its rooms hold the rest: the
format (schema), the lock wait (lock_wait), ownership (claims), outcomes, the CSV (csv_export).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.core.diskspace import disk_full, free_space
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.processes import alive as pid_alive
from hyperparameter_system.core.states import Status
from hyperparameter_system.store import claims, csv_export, outcomes, queries, schema
from hyperparameter_system.store.claims import Alive, owner_gone
from hyperparameter_system.store.lock_wait import LockWait
from hyperparameter_system.store.row import Row

if TYPE_CHECKING:
    from hyperparameter_system.config.settings import Settings
    from hyperparameter_system.matrix.experiments import Experiment
    from hyperparameter_system.store.outcomes import Outcome


class LedgerFull(HpsysError):
    """A ledger write failed for want of space (SQLite's "database or disk is full", or
    ENOSPC). Not bad input: the run stops with one line naming the ledger and its free space,
    and the same command resumes once space is back. `then` says what the run did about it."""

    def __init__(self, path: Path, then: str = "free some space and run the same command to "
                 "resume") -> None:
        super().__init__(f"ledger {path}", f"the disk is full ({free_space(path)} free); {then}")
        self.path = path


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
        self._locks = LockWait(self.path, lock_wait_s)
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
        self._locks.patiently(lambda: schema.use_wal(self.path))
        self._locks.patiently(self._check_table)
        # Held open for the ledger's life: while another connection is open, SQLite does not
        # checkpoint (and fsync) the WAL each time a transaction's own connection closes.
        keeper = sqlite3.connect(self.path, timeout=0.2, check_same_thread=False)
        self._locks.patiently(
            lambda: keeper.execute("SELECT 1 FROM experiments LIMIT 1").fetchall())
        self._keeper = keeper  # (a read opens it: sqlite3.connect alone touches nothing)

    def _check_table(self) -> None:
        """The version and the table as this runner writes them (schema): a write lock is
        taken only when there is something to write."""
        db = self._connect(timeout=0.2)
        try:
            if schema.is_current(db, self.path):
                return
        finally:
            db.close()
        with self._tx(timeout=0.2, ensure=False) as db:
            schema.migrate(db)

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
        return self._locks.patiently(lambda: self._forget(wanted, stale_after, alive))

    def _forget(self, wanted: list[str], stale_after: float, alive: Alive) -> tuple[int, int]:
        with self._tx(timeout=0.2) as db:  # a user's command: told and bounded, not 60 s
            return claims.forget(db, wanted, stale_after, alive)

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
            return claims.claim(db, exp_id, owner, stale_after, alive)

    def set_started(self, exp_id: str, pid: int, launch_info: dict[str, Any],
                    owner: str | None = None) -> bool:
        """The process is up: record its pid (for reaping) and where it writes. False when
        `owner` no longer holds the row (taken over): the caller must stop that process."""
        with self._tx() as db:
            return outcomes.record_start(db, exp_id, pid, launch_info, owner)

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
        with self._tx() as db:
            return outcomes.record_finish(db, exp_id, outcome, metric, owner, batch_override)

    def release(self, exp_id: str, status: str = Status.INTERRUPTED, error: str | None = None,
                owner: str | None = None) -> bool:
        """A claimed experiment that never started (stopped first): hand it back, if `owner`
        (when given) still holds it."""
        with self._tx() as db:
            return claims.release(db, exp_id, status, error, owner)

    def rows(self, ids: Iterable[str] | None = None, status: str | None = None) -> list[Row]:
        if self._keeper is None:
            if not self.path.exists():
                return []  # nothing recorded yet, and a read creates nothing
            self._open()  # another runner made it since
        return queries.in_order(self._locks.patiently(lambda: self._read(status)), ids)

    def _read(self, status: str | None) -> list[Row]:
        db = self._connect(timeout=0.2)
        try:
            return queries.read_rows(db, status)
        finally:
            db.close()

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
        return csv_export.csv_text(rows), len(rows)


def open_ledger(settings: Settings, create: bool = False) -> Ledger:
    """The config's ledger (`create`: made now if it is not there, as a run needs; a read
    creates nothing). One that cannot be opened (an unwritable folder, a file that is not
    SQLite) is bad input at system.ledger, told before anything runs, not a traceback."""
    path = settings.system.ledger
    try:
        ledger = Ledger(path)
        return ledger.ensure() if create else ledger
    except LedgerFull:
        raise
    except (OSError, sqlite3.Error) as exc:
        if disk_full(exc):
            raise LedgerFull(path) from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise HpsysError(f"{settings.path}: system.ledger",
                         f"cannot open the ledger {path}: {reason}") from None

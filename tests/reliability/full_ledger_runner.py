"""The runner CLI over a ledger that is "full" once the file $FULL_LEDGER_FLAG exists: every
write then fails with SQLite's own error, as on a full disk (for CI that cannot mount a small
tmpfs). Run as `python tests/reliability/full_ledger_runner.py <runner flags>`; tests in this
process use `full_connect` with their own flag."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hyperparameter_system.store import ledger  # noqa: E402

WRITES = ("INSERT", "UPDATE", "DELETE", "COMMIT")


def full_connect(full: Callable[[], bool]) -> Callable[[ledger.Ledger], sqlite3.Connection]:
    """A Ledger._connect whose connections fail every write while `full()` says so."""

    def fails(sql: str) -> bool:
        return sql.lstrip().upper().startswith(WRITES) and full()

    class FullConnection(sqlite3.Connection):
        def execute(self, sql, *args):
            if fails(sql):
                raise sqlite3.OperationalError("database or disk is full")
            return super().execute(sql, *args)

        def executemany(self, sql, *args):
            if fails(sql):
                raise sqlite3.OperationalError("database or disk is full")
            return super().executemany(sql, *args)

    def connect(self: ledger.Ledger, timeout: float | None = None) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self._timeout if timeout is None else timeout,
                             isolation_level=None, factory=FullConnection)
        db.row_factory = sqlite3.Row
        return db

    return connect


if __name__ == "__main__":
    from hyperparameter_system import experiment_runner

    flag = Path(os.environ["FULL_LEDGER_FLAG"])
    ledger.Ledger._connect = full_connect(flag.exists)
    raise SystemExit(experiment_runner.main(sys.argv[1:]))

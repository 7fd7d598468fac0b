"""The ledger file's format: WAL mode, the experiments table (store/row.py's columns) and its
version in SQLite's user_version. An older ledger is brought up to date; a newer or unknown
one, or a file whose experiments table is gone, is refused rather than read as "no runs yet"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.store.row import COLUMNS

LEDGER_VERSION = 1  # PRAGMA user_version of a ledger; 0: written before versions were kept

# Rows recorded before `launches` existed: each started attempt used the W&B run id of the old
# scheme (the experiment id first), so the next launch must count on from there.
_LAUNCHES_FROM_ATTEMPTS = ("UPDATE experiments SET launches=MAX(COALESCE(attempts, 0), 1)"
                           " WHERE started_at IS NOT NULL")


def use_wal(path: Path) -> None:
    """Put the file in WAL mode (it stays so). SQLite's busy timeout does not cover the
    switch: two runners opening a new ledger at once would see 'database is locked'."""
    db = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def is_current(db: sqlite3.Connection, path: Path) -> bool:
    """Whether the file holds this version's table as it is (the common case: nothing to write,
    no write lock taken); a version or table this runner cannot read is refused."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if version > LEDGER_VERSION or version < 0:
        raise HpsysError(f"ledger {path}", f"ledger version {version} is not one "
                         f"this hyperparameter_system reads (up to {LEDGER_VERSION}): "
                         "written by a newer one? upgrade it, or name another system.ledger")
    if "experiments" not in tables and (tables or version):
        raise HpsysError(f"ledger {path}", "has no experiments table (renamed or "
                         f"dropped? it holds {', '.join(sorted(tables)) or 'nothing'}); "
                         "restore it, or name another system.ledger")
    have = {r[1] for r in db.execute("PRAGMA table_info(experiments)")}
    return version == LEDGER_VERSION and have >= COLUMNS.keys()


def migrate(db: sqlite3.Connection) -> None:
    """Inside a write transaction: a new file gets the table and the version; an older ledger
    gets its missing columns."""
    cols = ", ".join(f'"{k}" {v}' for k, v in COLUMNS.items())
    db.execute(f"CREATE TABLE IF NOT EXISTS experiments ({cols})")
    have = {r[1] for r in db.execute("PRAGMA table_info(experiments)")}
    for key, kind in COLUMNS.items():
        if key not in have:
            db.execute(f'ALTER TABLE experiments ADD COLUMN "{key}" {kind}')
    if have and "launches" not in have:
        db.execute(_LAUNCHES_FROM_ATTEMPTS)
    db.execute(f"PRAGMA user_version={LEDGER_VERSION}")

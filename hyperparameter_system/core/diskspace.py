"""A full disk, told apart from other failures and said in a line: which path, how much is
free. The ledger, the launcher and the executor's min_free_gb pause all ask here."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write that failed because its file system is full."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
            "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def nearest_existing(path: str | Path) -> Path:
    """`path`, or its nearest folder that exists: measured, never created (a runs_dir that a
    Ray runtime env replaced must not be made on the driver)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    return where


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the file system `path` is (or would be) on; None when unknown."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None


def free_space(path: str | Path) -> str:
    """The free space of the file system of `path`, as a line says it: `0.0 GB`."""
    free = free_bytes(path)
    return "unknown space" if free is None else f"{free / 1e9:.1f} GB"

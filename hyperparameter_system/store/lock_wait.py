"""Waiting for another process's lock on a ledger: told at once and bounded, instead of a
silent minute and SQLite's 'database is locked'."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.processes import open_by

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


class LockWait:
    """The bounded wait of one ledger (`wait_s`; None: LOCK_WAIT_S)."""

    def __init__(self, path: Path, wait_s: float | None = None) -> None:
        self.path = path
        self.wait_s = LOCK_WAIT_S if wait_s is None else wait_s

    def patiently(self, step: Callable[[], Any]) -> Any:
        """Run `step` (its connections wait briefly); while another process holds the lock,
        say at once that we wait and for whom (on_lock_wait), retry, and give up after
        `wait_s` with LedgerLocked."""
        start = time.monotonic()
        told = False
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= self.wait_s:
                    raise LedgerLocked(self.path, _holders(self.path),
                                       round(waited, 1)) from None
                if not told and _notice is not None:
                    _notice(f"ledger {self.path} is locked by {_holders(self.path)}; waiting "
                            f"up to {self.wait_s:g} s")
                told = True
                time.sleep(0.05)

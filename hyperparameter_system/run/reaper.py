"""Find and end the processes of an experiment, whoever started them.

Every launched process inherits HPSYS_EXPERIMENT_ID, so on Linux /proc tells which processes
belong to an experiment even after the runner that launched them was killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from hyperparameter_system.core.processes import PROC, alive


def experiment_pids(experiment_id: str, ledger: str | None = None,
                    run_id: str | None = None) -> list[int]:
    """Live processes whose environment carries HPSYS_EXPERIMENT_ID=<experiment_id> (and
    HPSYS_LEDGER=<ledger> when given: equal experiments of another ledger are not ours; and
    WANDB_RUN_ID=<run_id> when given: one launch's, not a later launch of another runner)."""
    if not PROC.is_dir():
        return []
    needles = {f"HPSYS_EXPERIMENT_ID={experiment_id}".encode()}
    if ledger:
        needles.add(f"HPSYS_LEDGER={ledger}".encode())
    if run_id:
        needles.add(f"WANDB_RUN_ID={run_id}".encode())
    own = os.getpid()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needles <= set(env.split(b"\0")):
            found.append(int(entry.name))
    return found


def reap(experiment_id: str, pgid: int | None = None, timeout: float = 5.0,
         ledger: str | None = None, run_id: str | None = None) -> int:
    """SIGKILL every process of the experiment (and its process group, when one of them is
    still in it: a recorded pid may since belong to someone else); returns how many are left.
    `ledger` and `run_id` narrow it as for experiment_pids."""
    pids = experiment_pids(experiment_id, ledger, run_id)
    if pgid and pgid in {_pgid(p) for p in pids}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.time() + timeout
    while pids and time.time() < deadline:
        pids = [p for p in pids if alive(p)]
        if pids:
            time.sleep(0.05)
    return len(pids)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None

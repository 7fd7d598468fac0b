"""Find and end the processes of an experiment, whoever started them.

Every launched process inherits HPSYS_EXPERIMENT_ID, so on Linux /proc tells which processes
belong to an experiment even after the runner that launched them was killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def experiment_pids(experiment_id: str) -> list[int]:
    """Live processes whose environment carries HPSYS_EXPERIMENT_ID=<experiment_id>."""
    if not PROC.is_dir():
        return []
    needle = f"HPSYS_EXPERIMENT_ID={experiment_id}".encode()
    own = os.getpid()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def reap(experiment_id: str, pgid: int | None = None, timeout: float = 5.0) -> int:
    """SIGKILL every process of the experiment (and its process group); returns how many."""
    pids = experiment_pids(experiment_id)
    if pgid:
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


def alive(pid: int) -> bool:
    """True for a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        return (PROC / str(pid) / "stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False

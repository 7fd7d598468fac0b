"""Is a process alive, and since when: read from /proc where there is one.

Both the ledger (is a row's owner still running?) and the reaper (which processes are an
experiment's?) ask, so the answer lives below both.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def alive(pid: int) -> bool:
    """True for a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes; only /proc tells one apart
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:  # no /proc (macOS): kill(0) succeeded, so it lives
        return True
    return stat.split(")")[-1].split()[0] != "Z"


def process_start(pid: int) -> float | None:
    """When a process started (epoch seconds, from /proc), None where that cannot be read: tells
    a runner apart from a later process that was given its pid."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in (PROC / "stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def open_by(*paths: str | Path) -> list[tuple[int, str]]:
    """The processes (pid, command line) holding any of `paths` open, from /proc (empty where
    there is none, or nothing can be read): says who holds a locked ledger."""
    wanted = {str(Path(p).resolve()) for p in paths}
    found: list[tuple[int, str]] = []
    try:
        entries = list(PROC.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:  # gone, or not ours to read
            continue
        if links & wanted:
            try:
                cmd = " ".join((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace").split())  # one line, whatever the arguments hold
            except OSError:
                cmd = ""
            found.append((int(entry.name), cmd[:80]))
    return found

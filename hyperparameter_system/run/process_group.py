"""One experiment's process group: started so that it dies with the runner, waited for with
its timeout and stop, and ended whole (SIGTERM, then SIGKILL) however it ends. What left the
group (a double fork with setsid) is the reaper's (run/reaper.py)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

KILL_GRACE_S = 3.0


# PR_SET_PDEATHSIG (1) with SIGKILL (9), then exec the script: same pid, same process group.
_DIE_WITH_RUNNER = ("import ctypes, os, sys\n"
                    "ctypes.CDLL(None).prctl(1, 9)\n"
                    "if os.getppid() != int(sys.argv[1]):\n    os._exit(137)\n"
                    "os.execvp(sys.argv[2], sys.argv[2:])\n")


def dies_with_runner(argv: tuple[str, ...], cwd: str) -> tuple[str, ...]:
    """On Linux the script starts through a tiny shim that has the kernel SIGKILL it when the
    runner thread that launched it dies, even by SIGKILL: a killed runner leaves no experiment
    holding a GPU. (Grandchildren outside the group are reaped by the next runner.)"""
    if not sys.platform.startswith("linux"):
        return argv
    if shutil.which(os.path.join(cwd, argv[0]) if "/" in argv[0] else argv[0]) is None:
        raise FileNotFoundError(errno.ENOENT, "not found or not executable", argv[0])
    setpriv = _setpriv()
    if setpriv:  # the same in ~2 ms, where a Python start costs 10 to 30 ms
        return (*setpriv, str(os.getpid()), *argv)
    return (sys.executable, "-S", "-c", _DIE_WITH_RUNNER, str(os.getpid()), *argv)


# util-linux setpriv sets the death signal, then sh checks the runner is still the parent
# (it may have died before the signal was set) and execs the script.
_PPID_CHECK = '[ "$PPID" = "$1" ] || exit 137; shift; exec "$@"'


@functools.cache
def _setpriv() -> tuple[str, ...] | None:
    """The setpriv + sh prefix when this system has both (util-linux >= 2.33), else None."""
    path = shutil.which("setpriv")
    prefix = (str(path), "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _PPID_CHECK, "sh")
    try:
        ok = path is not None and subprocess.run(
            [*prefix, str(os.getpid()), "true"], capture_output=True, timeout=10,
            stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return prefix if ok else None


def wait(proc: subprocess.Popen, timeout: float | None, stop: Callable[[], bool],
          started: float) -> str:
    """Wake the moment the script exits (a pidfd on Linux; elsewhere a poll with a growing
    interval), checking the timeout and `stop()` at least every 0.1 s."""
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        return _wait_loop(proc, timeout, stop, started, pidfd)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _wait_loop(proc: subprocess.Popen, timeout: float | None, stop: Callable[[], bool],
               started: float, pidfd: int | None) -> str:
    delay = 0.0005
    while True:
        if pidfd is not None:
            select.select([pidfd], [], [], 0.1)
            if proc.poll() is not None:
                return "exited"
        else:
            try:
                proc.wait(timeout=delay)
                return "exited"
            except subprocess.TimeoutExpired:
                pass
        if timeout is not None and time.time() - started > timeout:
            kill_group(proc)
            return "timeout"
        if stop():
            kill_group(proc)
            return "interrupted"
        delay = min(delay * 2, 0.1)


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM the whole process tree, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # the leader is gone; grandchildren that ignored SIGTERM still get SIGKILL
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        return


def end_leftovers(pgid: int, grace: float = 1.0) -> None:
    """The script exited: what it left in its process group (a background job, a data worker)
    ends too, SIGTERM then SIGKILL, so nothing of a finished experiment holds on to a GPU."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace
        try:
            os.killpg(pgid, sig)
            while time.monotonic() < deadline:
                time.sleep(0.02)
                os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"

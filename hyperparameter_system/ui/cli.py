"""What both entry points (the flags and the menu) share about being a command."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.run.signals import stop_on_signals
from hyperparameter_system.store.lock_wait import on_lock_wait
from hyperparameter_system.ui import screen

__all__ = ["Parser", "stop_on_signals", "tell_lock_waits", "until_output_gone"]


def tell_lock_waits() -> None:
    """A ledger another process holds locked is told at once, naming the holder, while the
    store waits its bounded time (it never prints by itself)."""
    on_lock_wait(screen.warn)


class Parser(argparse.ArgumentParser):
    """A bad flag is bad input like any other: one line and exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise HpsysError("command line", message)


def until_output_gone(main: Callable[[], int]) -> int:
    """Run `main`; when the terminal closes (EIO) or a pipe's reader leaves (`| head`, EPIPE),
    stop quietly instead of with a traceback: nothing more can be shown anyway. The run itself
    has already stopped its children and marked its rows."""
    try:
        return main()
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.EIO):
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)  # Python's exit flush must not complain
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, stream.fileno())
        return 128 + (signal.SIGPIPE if exc.errno == errno.EPIPE else signal.SIGHUP)

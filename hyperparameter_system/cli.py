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

from hyperparameter_system.errors import HpsysError


class Parser(argparse.ArgumentParser):
    """A bad flag is bad input like any other: one line and exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise HpsysError("command line", message)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def stop_on_signals() -> None:
    """SIGTERM (a scheduler, `kill`) and SIGHUP (the terminal closed, tmux kill-session) stop a
    run as Ctrl-C does: its children ended, its rows marked interrupted and left resumable. A
    signal already ignored (a run started with nohup) stays ignored."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: the user chose to go on
            signal.signal(signum, signal.default_int_handler)


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

"""What both entry points (the flags and the menu) share about being a command."""

from __future__ import annotations

import argparse
import signal
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

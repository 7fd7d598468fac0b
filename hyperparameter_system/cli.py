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


def stop_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`) stops a run as Ctrl-C does: its children ended, its rows
    left resumable."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)

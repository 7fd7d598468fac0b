"""The ui's two rich Consoles (standard output, standard error) and its one-line messages.

Every printer of the ui looks `console` up here when it prints, so a test that swaps it
(`monkeypatch.setattr(screen, "console", recording)`) sees everything printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text

# Not a terminal (CI logs, pipes, `make demo | tee`): wide enough that run names are never cut.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False)


@contextmanager
def talking_on_stderr(on: bool = True) -> Iterator[None]:
    """While inside (when `on`), everything the ui says goes to standard error: standard
    output carries an export (`--export json -`) that a pipe reads whole."""
    global console
    kept = console
    if on:
        console = Console(stderr=True, highlight=False, width=_WIDTH)
    try:
        yield
    finally:
        console = kept


def raw(text: str) -> None:
    """A file's text on standard output, as is (no markup, no wrapping)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def error(message: str) -> None:
    """The one-line bad-input message (no traceback)."""
    err_console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)

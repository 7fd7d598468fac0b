"""How a run is stopped by signals: Ctrl-C, SIGTERM and SIGHUP all mean "stop, resumably"."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

# Turned into KeyboardInterrupt as Ctrl-C is (SIGINT is Python's own default).
MAPPED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
STOP_SIGNALS = (signal.SIGINT, *MAPPED_SIGNALS)


def stop_on_signals() -> None:
    """SIGTERM (a scheduler, `kill`) and SIGHUP (the terminal closed, tmux kill-session) stop a
    run as Ctrl-C does: its children ended, its rows marked interrupted and left resumable. A
    signal already ignored (a run started with nohup) stays ignored."""
    for signum in MAPPED_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: the user chose to go on
            signal.signal(signum, signal.default_int_handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ignore further stop signals while the first is handled (children ended, rows released,
    the outcome told), then restore the handlers. Only signals with a Python handler
    (default_int_handler included) are touched: one already ignored (nohup) or left to the OS
    stays as it is. Only the main thread can set handlers, and only it receives signals."""
    saved: dict[int, Callable[..., Any]] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):  # not SIG_IGN, SIG_DFL nor None (set outside Python)
                saved[signum] = handler
                signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def handlers_kept() -> Iterator[None]:
    """Put the stop-signal handlers back after a library that takes them over (ray.init sets its
    own SIGTERM handler, and its core worker a C-level one that logs and aborts), so SIGTERM and
    SIGHUP still stop the run as Ctrl-C does. Main thread only, like every handler change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)


@contextlib.contextmanager
def children_spared(signums: tuple[int, ...] = (signal.SIGHUP,)) -> Iterator[None]:
    """Block `signums` in this thread while helper processes are spawned, so that they inherit
    them blocked (a signal mask survives fork and exec) and a closing terminal's SIGHUP, sent to
    the whole process group, reaches the runner alone: the runner then ends them in order
    instead of finding them dead. A signal that comes meanwhile waits and is delivered after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)

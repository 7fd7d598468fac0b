"""Whether the run is ending, and why when it is not the user: a full disk or a full ledger ends
every running experiment as Ctrl-C does (interrupted, resumable), and the reason becomes their
error, so the slots only ask one object instead of each keeping the story."""

from __future__ import annotations

import threading

from hyperparameter_system.run.tally import Tally
from hyperparameter_system.store.ledger import LedgerFull


class Halt:
    """The run's stop `event` (every slot and dispatch watches it) and why it was set."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.event = threading.Event()
        self.reason: str | None = None  # why the runner ended its running experiments
        self.ledger_full: LedgerFull | None = None  # raised by the run once every slot has ended

    def interrupt(self) -> None:
        """Ctrl-C, or the view failing: the run ends interrupted. Under no lock: the main
        thread may be interrupted while a slot holds it."""
        self.tally.result.interrupted = True
        self.event.set()

    def for_disk(self, text: str, reason: str) -> None:
        """A full disk: start no new experiment and end those running, so none fails for want
        of space. `text` is said once whichever slots get here; `reason` becomes the error of
        the experiments ended."""
        with self.tally.lock:
            first = self.tally.result.disk_full is None
            if first:
                self.tally.result.disk_full, self.reason = text, reason
            self.tally.result.interrupted = True
        self.event.set()
        if first:
            self.tally.say(text)

    def for_ledger(self, exc: LedgerFull) -> None:
        """The ledger cannot be written: end everything; the run raises it as one line."""
        with self.tally.lock:
            if self.ledger_full is None:
                self.ledger_full, self.reason = exc, f"ended: {exc}"
                self.tally.result.disk_full = str(exc)
            self.tally.result.interrupted = True
        self.event.set()

    def raise_ledger_full(self) -> None:
        if self.ledger_full is not None:
            raise LedgerFull(self.ledger_full.path, "the running experiments were ended "
                             "(interrupted); free some space and run the same command to resume")

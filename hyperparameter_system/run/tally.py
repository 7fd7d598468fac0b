"""The run's result as the slot threads add to it, and the live view they tell: one lock, so no
count, outcome or line is lost between threads, and a run without a view keeps its lines for
the caller to show."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from hyperparameter_system.core.states import FINAL
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.run.launcher import Outcome
from hyperparameter_system.run.seams import Display
from hyperparameter_system.store.ledger import Ledger

if TYPE_CHECKING:
    from hyperparameter_system.run.executor import RunResult


class Tally:
    """What the slots report, kept in `result` and shown on `display` when there is one."""

    def __init__(self, result: RunResult, display: Display | None) -> None:
        self.result, self.display = result, display
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        """To the live view, else kept in the result for the caller to show."""
        if self.display is not None:
            self.display.message(text)
        else:
            with self.lock:
                self.result.messages.append(text)

    def refresh(self) -> None:
        if self.display is not None:
            self.display.refresh()

    def started(self, exp: Experiment, run_dir: str, slot: str) -> None:
        if self.display is not None:
            self.display.started(exp, run_dir, slot)

    def finished(self, exp: Experiment, outcome: Outcome, final: bool) -> None:
        """A recorded attempt; `final` is False before a retry."""
        with self.lock:
            self.result.outcomes.append(outcome)
        if self.display is not None:
            self.display.finished(exp, outcome, final)

    def elsewhere(self, exp_id: str) -> None:
        """An experiment another runner holds: counted once the run ends (settle_elsewhere)."""
        with self.lock:
            self.result.busy_elsewhere += 1
            self.result.elsewhere.add(exp_id)

    def settle_elsewhere(self, ledger: Ledger) -> None:
        """The experiments another runner held: re-read at the end, so the last line says
        which it has finished meanwhile and which it still runs."""
        ids = self.result.elsewhere
        if not ids:
            return
        with contextlib.suppress(Exception):  # a count for the last line, never fatal
            statuses = ledger.statuses(ids)
            done = sum(1 for i in ids if statuses.get(i) in FINAL)
            self.result.done_elsewhere, self.result.busy_elsewhere = done, len(ids) - done

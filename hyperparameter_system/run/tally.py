"""The run's result as the slot threads add to it, and the live view they tell: one lock, so no
count, outcome or line is lost between threads, and a run without a view keeps its lines for
the caller to show."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

from hyperparameter_system.core.states import FINAL
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.run.seams import Display
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.outcomes import Outcome


@dataclass
class RunResult:
    """What one invocation did."""

    skipped_done: int = 0
    busy_elsewhere: int = 0  # still running under another runner when this one ended
    done_elsewhere: int = 0  # taken by another runner, which has finished them by now
    elsewhere: set[str] = field(default_factory=set, repr=False)  # their ids
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    disk_full: str | None = None  # why the run stopped early for want of space
    messages: list[str] = field(default_factory=list)  # said while no display was attached
    undecided: list[str] = field(default_factory=list)  # a race's pools left open, and why
    over_budget: int = 0  # seeds a race wanted but left for execution.budget

    def count(self, status: str) -> int:
        """Experiments whose last attempt ended so: a retry that succeeded is no failure."""
        last = {o.experiment_id: o.status for o in self.outcomes}
        return sum(1 for s in last.values() if s == status)


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

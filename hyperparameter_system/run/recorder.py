"""How an attempt's end is kept: the ledger first (the truth), then the tally and the view; a
row another runner took over keeps that runner's record, and a row a full ledger will not
finish is handed back so that the next runner goes on from it."""

from __future__ import annotations

import contextlib

from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.run.halt import Halt
from hyperparameter_system.run.seams import Dispatch
from hyperparameter_system.run.slot_guards import recovered
from hyperparameter_system.run.tally import Tally
from hyperparameter_system.store.ledger import Ledger, LedgerFull
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.store.row import Row


class Recorder:
    """Writes the ends of one runner's (`owner`) attempts; `metric` is system.metric."""

    def __init__(self, ledger: Ledger, owner: str, metric: str, tally: Tally,
                 halt: Halt) -> None:
        self.ledger, self.owner, self.metric = ledger, owner, metric
        self.tally, self.halt = tally, halt

    def record(self, exp: Experiment, outcome: Outcome, final: bool = True,
               batch_override: int | None = None) -> None:
        """`final` is False before a retry; `batch_override` is the batch an OOM left for the
        next launch."""
        metric = headline(outcome.result, self.metric)
        try:
            recorded = self.ledger.finish(exp.id, outcome, metric, self.owner, batch_override)
        except LedgerFull:
            if outcome.status != Status.DONE:  # a done row stays running: recovered as done
                self.hand_back(exp.id)
            raise
        if not recorded:
            outcome.extra["taken_over"] = True
            self.tally.elsewhere(exp.id)
            self.tally.say(f"{exp.describe()}: another runner took this experiment over; this "
                           f"runner's attempt ({outcome.status}) is not recorded")
            return
        self.tally.finished(exp, outcome, final)

    def hand_back(self, exp_id: str) -> None:
        """Mark a claimed row interrupted where the full ledger still takes the write; else it
        stays `running`, and the next runner recovers it (its owner is gone by then)."""
        with contextlib.suppress(LedgerFull):
            self.ledger.release(exp_id, Status.INTERRUPTED, self.halt.reason, self.owner)

    def recover(self, exp: Experiment, before: Row, dispatch: Dispatch, ledger: str) -> bool:
        """Record the result a dead runner's row finished with (slot_guards.recovered); True
        when there was one. `ledger`: the path its processes were started with."""
        outcome = recovered(exp, before, dispatch, ledger)
        if outcome is not None:
            self.record(exp, outcome)
        return outcome is not None

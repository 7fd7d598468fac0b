"""A search's study as the executor's experiment source (ask/tell) and stopper (pruning).

Each trial is an experiment: asked when a slot frees, launched through the same contract as a
matrix option (its sampled values applied to the model's base config), reported each epoch's
monitored metric, pruned through the study's pruner with a graceful stop request, and told how
it ended: COMPLETE with its objective values, PRUNED, or FAIL with the reason.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperparameter_system.config.search_blocks import SearchSettings
from hyperparameter_system.config.settings import ModelSettings, Settings
from hyperparameter_system.core.configdict import stable_hash
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import Experiment, Job, make_experiment
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.run.stoppers import Say, StopDecision, monitored
from hyperparameter_system.run.studies.explain import why_pruned
from hyperparameter_system.run.studies.study import (
    ASKING,
    ATTR,
    FINISHED,
    Opened,
    distributions,
    finished,
)
from hyperparameter_system.store.outcomes import Outcome

RECOUNT_S = 2.0  # how often the finished trials are counted again (other runners' count too)


class StudySource:
    """Trials of one study for one model, as experiments, until `n_trials` have finished
    (complete or pruned) in the study: a shared study's trials of other runners count too."""

    synced = False  # each trial is a new ledger row

    def __init__(self, settings: Settings, search: SearchSettings, model: ModelSettings,
                 opened: Opened, n_trials: int, first_index: int = 1) -> None:
        self.settings, self.search, self.model = settings, search, model
        self.opened, self.study = opened, opened.study
        study = opened.study
        self.n_trials, self.index = n_trials, first_index
        self.dists = distributions(search)
        self.trials: dict[str, optuna.trial.Trial] = {}  # experiment id -> its running trial
        self.retries: deque[Experiment] = deque()
        self.lock = threading.Lock()
        self.failures = 0
        self.done, self.counted_at = finished(study), time.monotonic()

    # -- ExperimentSource --------------------------------------------------------------------
    def next(self) -> Experiment | None:
        with self.lock:
            if self.retries:
                return self.retries.popleft()
            if time.monotonic() - self.counted_at > RECOUNT_S:
                self.done, self.counted_at = self._recount(), time.monotonic()
            if self.done + len(self.trials) >= self.n_trials:
                return None
            if self.failures >= max(3, self.n_trials):  # a script that always fails: stop
                return None
            asking = f"{ASKING}{socket.gethostname()}.{os.getpid()}"
            self.opened.mark(asking, time.time())
            trial = self.study.ask(self.dists)
            exp = self._experiment(trial)
            trial.set_user_attr(ATTR, {"host": socket.gethostname(), "pid": os.getpid(),
                                       "experiment_id": exp.id})
            self.opened.mark(asking, None)
            self.trials[exp.id] = trial
            return exp

    def put_back(self, experiment: Experiment, front: bool = False) -> None:
        with self.lock:
            (self.retries.appendleft if front else self.retries.append)(experiment)

    def told(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None:
        if not final:
            return
        with self.lock:
            trial = self.trials.get(experiment.id)
        if trial is None:
            return
        ok = False
        try:
            ok = self._tell(trial, outcome)
        finally:
            # Counted as running until the tell is stored, then as finished in the same step:
            # a slot asking meanwhile never sees one trial fewer (an extra trial) nor one twice.
            with self.lock:
                del self.trials[experiment.id]
                if ok:
                    self.done += 1
                else:
                    self.failures += 1

    def _tell(self, trial: optuna.trial.Trial, outcome: Outcome) -> bool:
        """Tell the study how the trial ended; True when it counts as finished."""
        if outcome.status == Status.DONE:
            values = [headline(outcome.result, key) for key, _ in self.search.objectives]
            if all(v is not None and math.isfinite(v) for v in values):
                self.study.tell(trial, values)
                return True
            missing = [key for (key, _), v in zip(self.search.objectives, values, strict=True)
                       if v is None]
            trial.set_user_attr("fail_reason", "result.json lacks an objective value")
            if missing:  # a name no result holds: every trial would fail alike, stop now
                self.study.tell(trial, state=TrialState.FAIL)
                raise HpsysError(f"{self.search.where}.objectives", f"trial {trial.number}'s "
                                 f"result.json has no number at {missing[0]} (its metrics: "
                                 f"{', '.join(sorted((outcome.result or {}).get('metrics') or {}))}"
                                 "); the search stopped rather than fail every trial")
        elif outcome.status == Status.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
            return True
        else:
            trial.set_user_attr("fail_reason", outcome.error or str(outcome.status))
        self.study.tell(trial, state=TrialState.FAIL)
        return False

    def _recount(self) -> int:
        """Finished trials in the storage (other runners' too), but not this source's own
        running ones: a tell stored before its trial leaves `self.trials` is counted once."""
        mine = {t.number for t in self.trials.values()}
        return sum(t.number not in mine for t in
                   self.study.get_trials(deepcopy=False, states=FINISHED))

    def _experiment(self, trial: optuna.trial.Trial) -> Experiment:
        params = dict(trial.params)
        option = {"trial": trial.number, **params}
        changes = {k: v for p in self.search.space if p.key in params
                   for k, v in p.changes(params[p.key]).items()}
        run_name = f"{self.search.name}_t{trial.number:03d}"
        exp = make_experiment(self.model, Job(self.search.name, option, changes, run_name),
                              self.index + trial.number)
        # the trial's start in the id: a study started over numbers its trials from 0 again,
        # and its trial 0 must not be the old study's done ledger row
        started = trial.datetime_start.isoformat() if trial.datetime_start else ""
        return dataclasses.replace(exp, id=stable_hash(exp.id, started))

    # -- Stopper -------------------------------------------------------------------------------
    def attach(self, say: Say) -> None:
        return None

    def observe(self, experiment: Experiment, line: Mapping[str, Any]) -> StopDecision | None:
        if not self.search.pruner.on or self.search.multi:
            # Optuna prunes single-objective studies only: the config refuses a pruner on a
            # multi-objective search (config/search_blocks.py); one built by hand is never pruned
            return None
        trial = self.trials.get(experiment.id)
        read = monitored(line, self.search.pruner.monitor)
        if trial is None or read is None:
            return None
        epoch, value = read
        trial.report(value, epoch)
        if epoch < self.search.pruner.min_epochs or not trial.should_prune():
            return None
        return StopDecision(Status.PRUNED, epoch, why_pruned(self.study, trial.number,
                                                             self.search.pruner, epoch, value))

    def ended(self, experiment: Experiment, status: str,
              rest: Sequence[Mapping[str, Any]] = ()) -> None:
        return None

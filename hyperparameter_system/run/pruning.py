"""Stop losing options early: a `Stopper` that prunes a category's weak options by their curves.

Optuna's pruners are the engine. Each (model, category) pool is one study (`pruning/<model>/
<category>` in `system.optuna_storage`); each experiment of it is a trial, found again by its
experiment id (a user attr), so a resumed runner goes on with the trial its first run made and
decides as that one would have. The model's baseline is a trial of every pool of its model: it
sets the bar and is never pruned. Nor is a pruned option that `--rerun` trains again (`to_the_end`):
its trial reports and competes at the rungs like the baseline's; a user attr on the trial keeps
that through an interruption and resume. Each metrics line reports the monitored metric at its epoch
(`trial.report`); from `min_epochs` on, `trial.should_prune()` decides.

Optuna is imported here only: the runner imports this module when pruning is on.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperparameter_system.config.settings import PruningSettings, Settings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Direction, Status
from hyperparameter_system.matrix.experiments import BASELINE, Experiment
from hyperparameter_system.run import launcher
from hyperparameter_system.run.stoppers import METRICS, MetricsTail, StopDecision

EXPERIMENT_ATTR = "experiment_id"
TO_THE_END_ATTR = "to_the_end"  # a rerun of a pruned option: reported, never pruned
Pool = tuple[str, str]  # (model, category)


def make_pruner(rules: PruningSettings) -> optuna.pruners.BasePruner:
    """A fresh Optuna pruner for one study (Hyperband keeps per-study state)."""
    low = rules.min_epochs
    # a single baseline that ended is enough of a reference in a category's small pool
    median = dict(n_startup_trials=1, n_warmup_steps=max(0, low - 1), interval_steps=1)
    if rules.rule == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=low,
                                                      reduction_factor=rules.reduction_factor)
    if rules.rule == "median":
        return optuna.pruners.MedianPruner(**median)
    if rules.rule == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource="auto",
                                              reduction_factor=rules.reduction_factor)
    if rules.rule == "patient":
        with warnings.catch_warnings():  # PatientPruner is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**median),
                                                patience=low)
    raise ValueError(f"no pruner for rule {rules.rule!r}")


class PoolPruner:
    """The Stopper of `execution.pruning`: one Optuna study per (model, category) pool."""

    def __init__(self, settings: Settings, experiments: Sequence[Experiment],
                 say: Callable[[str], None] | None = None,
                 to_the_end: Iterable[str] = ()) -> None:
        self.settings, self.rules = settings, settings.execution.pruning
        self.to_the_end = set(to_the_end)  # experiment ids never pruned (see the module doc)
        # the monitored key's own direction (val_loss falls, val_f1 rises), whatever the
        # headline metric's system.metric_mode
        self.direction = self.rules.direction
        self.say = say  # the executor's message line; set after the executor exists
        self.lock = threading.Lock()
        self.warned = False
        # the pools of this selection, by model: a baseline is a trial of each of its model's
        self.pools: dict[str, list[str]] = {}
        for e in experiments:
            if e.category != BASELINE:
                cats = self.pools.setdefault(e.model, [])
                if e.category not in cats:
                    cats.append(e.category)
        self.studies: dict[Pool, optuna.Study] = {}
        self.trials: dict[tuple[Pool, str], optuna.Trial] = {}  # (pool, experiment id)
        optuna.logging.set_verbosity(logging.WARNING)
        self.storage = self._storage()

    def _storage(self) -> optuna.storages.BaseStorage:
        """The study storage, opened before anything launches: a bad URL is bad input."""
        url = self.settings.system.optuna_storage
        try:
            if url.startswith("sqlite:///"):
                Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.RDBStorage(url)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy, OSError, ValueError alike
            raise HpsysError(f"{self.settings.path}: system.optuna_storage",
                             f"cannot open the pruning study storage {url}: {exc}") from None

    # -- the Stopper protocol ------------------------------------------------------------
    def observe(self, experiment: Experiment, line: Mapping[str, Any]) -> StopDecision | None:
        epoch, value = line.get("epoch"), line.get(self.rules.monitor)
        if not isinstance(value, int | float) or isinstance(value, bool):
            if "epoch" in line:
                self._warn_missing(experiment, line)
            return None
        if not isinstance(epoch, int) or isinstance(epoch, bool) or math.isnan(value):
            return None
        with self.lock:
            for pool in self._pools_of(experiment):
                trial = self._trial(pool, experiment)
                self._report(trial, float(value), epoch)
            if experiment.category == BASELINE or experiment.id in self.to_the_end:
                for pool in self._pools_of(experiment):  # it competes at the rungs, never pruned
                    if epoch >= self.rules.min_epochs:
                        self._trial(pool, experiment).should_prune()
                return None
            pool = (experiment.model, experiment.category)
            if epoch < self.rules.min_epochs or not self._trial(pool, experiment).should_prune():
                return None
            return StopDecision(Status.PRUNED, epoch, self._detail(pool, experiment, epoch,
                                                                   float(value)))

    def ended(self, experiment: Experiment, status: str) -> None:
        """Done: its trial is complete (the last lines the watch missed reported first);
        pruned: pruned. Any other end leaves the trial running, for its retry or resume."""
        if status not in (Status.DONE, Status.PRUNED):
            return
        with self.lock:
            pools = [p for p in self._pools_of(experiment)
                     if status == Status.DONE or (p, experiment.id) in self.trials]
            if status == Status.DONE:
                for pool in pools:
                    self._trial(pool, experiment)
                self._report_rest(experiment, pools)
            for pool in pools:
                trial = self.trials.pop((pool, experiment.id))
                values = trial.storage.get_trial(trial._trial_id).intermediate_values
                last = values[max(values)] if values else None
                if status == Status.PRUNED:
                    self.studies[pool].tell(trial, state=TrialState.PRUNED)
                elif last is None:
                    self.studies[pool].tell(trial, state=TrialState.FAIL)
                else:
                    self.studies[pool].tell(trial, last)

    # -- inside ----------------------------------------------------------------------------
    def _pools_of(self, experiment: Experiment) -> list[Pool]:
        if experiment.category == BASELINE:
            return [(experiment.model, c) for c in self.pools.get(experiment.model, ())]
        return [(experiment.model, experiment.category)]

    def _study(self, pool: Pool) -> optuna.Study:
        study = self.studies.get(pool)
        if study is None:
            direction = "maximize" if self.direction is Direction.MAX else "minimize"
            study = optuna.create_study(storage=self.storage, study_name=study_name(*pool),
                                        direction=direction, pruner=make_pruner(self.rules),
                                        load_if_exists=True)
            self.studies[pool] = study
        return study

    def _trial(self, pool: Pool, experiment: Experiment) -> optuna.Trial:
        """The experiment's running trial in the pool's study: the one a previous runner left
        running for it, else a new one."""
        key = (pool, experiment.id)
        trial = self.trials.get(key)
        if trial is None:
            study = self._study(pool)
            left = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                    if t.user_attrs.get(EXPERIMENT_ATTR) == experiment.id]
            if left:
                trial = optuna.Trial(study, left[-1]._trial_id)
                if left[-1].user_attrs.get(TO_THE_END_ATTR):
                    self.to_the_end.add(experiment.id)
            else:
                trial = study.ask()
                trial.set_user_attr(EXPERIMENT_ATTR, experiment.id)
                trial.set_user_attr("category", experiment.category)
                if experiment.id in self.to_the_end:
                    trial.set_user_attr(TO_THE_END_ATTR, True)
            self.trials[key] = trial
        return trial

    @staticmethod
    def _report(trial: optuna.Trial, value: float, epoch: int) -> None:
        """An epoch a previous attempt already reported keeps its first value, quietly."""
        if epoch not in trial._cached_frozen_trial.intermediate_values:
            trial.report(value, epoch)

    def _report_rest(self, experiment: Experiment, pools: Iterable[Pool]) -> None:
        """The lines written after the watch's last poll (the script exited in between)."""
        run_dir = Path(launcher.plan(experiment, self.settings, 1).run_dir)
        for line in MetricsTail(run_dir / METRICS).new_lines():
            epoch, value = line.get("epoch"), line.get(self.rules.monitor)
            if (isinstance(epoch, int) and isinstance(value, int | float)
                    and not isinstance(value, bool) and not math.isnan(value)):
                for pool in pools:
                    self._report(self.trials[(pool, experiment.id)], float(value), epoch)

    def _detail(self, pool: Pool, experiment: Experiment, epoch: int, value: float) -> str:
        """In words, against the other trials of the pool at this epoch (best effort)."""
        others = [t.intermediate_values[epoch]
                  for t in self.studies[pool].get_trials(deepcopy=False)
                  if epoch in t.intermediate_values
                  and t.user_attrs.get(EXPERIMENT_ATTR) != experiment.id]
        monitor = f"epoch {epoch}: {self.rules.monitor} {value:.4g}"
        worse = "below" if self.direction is Direction.MAX else "above"
        if not others:
            return f"{monitor}, pruned by {self.rules.rule}"
        ranked = sorted(others, key=self.direction.score, reverse=True)
        if self.rules.rule in ("successive_halving", "hyperband"):
            keep = max(1, (len(ranked) + 1) // self.rules.reduction_factor)
            return (f"{monitor} {worse} the pool's top 1/{self.rules.reduction_factor} "
                    f"({ranked[keep - 1]:.4g})")
        return f"{monitor} {worse} the pool's median ({statistics.median(ranked):.4g})"

    def _warn_missing(self, experiment: Experiment, line: Mapping[str, Any]) -> None:
        with self.lock:
            if self.warned:
                return
            self.warned = True
        keys = ", ".join(sorted(str(k) for k in line)) or "none"
        text = (f"pruning: {experiment.describe()}: the metrics line has no number "
                f"'{self.rules.monitor}' (execution.pruning.monitor; keys: {keys}); "
                "nothing is pruned without it (not reported again in this run)")
        if self.say is not None:
            self.say(text)


def study_name(model: str, category: str) -> str:
    return f"pruning/{model}/{category}"


def baselines_first(experiments: Sequence[Experiment]) -> list[Experiment]:
    """Each model's baseline before the options it sets the bar for (otherwise in order)."""
    return sorted(experiments, key=lambda e: e.category != BASELINE)

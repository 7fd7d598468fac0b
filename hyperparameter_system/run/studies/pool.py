"""Stop losing options early: the Stopper of `execution.pruning`, one Optuna study per pool.

Each (model, category) pool is one study (`pruning/<model>/<category>` in
`system.optuna_storage`); each experiment of it is a trial, found again by its experiment id (a
user attr), so a resumed runner goes on with the trial its first run made and decides as that
one would have. The model's baseline is a trial of every pool of its model: it sets the bar and
is never pruned. Nor is a pruned option that `--rerun` trains again (`to_the_end`): its trial
reports and competes at the rungs like the baseline's; a user attr on the trial keeps that
through an interruption and resume. Each metrics line reports the monitored metric at its epoch
(`trial.report`), compared in the monitored key's own direction; from `min_epochs` on,
`trial.should_prune()` decides, and `explain.why_pruned` says why from what it decided.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Direction, Status
from hyperparameter_system.matrix.experiments import BASELINE, Experiment
from hyperparameter_system.run.stoppers import Say, StopDecision, monitored
from hyperparameter_system.run.studies.explain import why_pruned
from hyperparameter_system.run.studies.pruners import make_pruner
from hyperparameter_system.run.studies.storage import open_storage

EXPERIMENT_ATTR = "experiment_id"
TO_THE_END_ATTR = "to_the_end"  # a rerun of a pruned option: reported, never pruned
Pool = tuple[str, str]  # (model, category)
Key = tuple[Pool, str]  # (pool, experiment id)


class PoolPruner:
    """The Stopper of `execution.pruning`: one Optuna study per (model, category) pool.

    Example:
        pruner = PoolPruner(settings, baselines_first(experiments))
        Executor(settings, ledger, slots, dispatch, stopper=pruner).run(experiments)
    """

    def __init__(self, settings: Settings, experiments: Sequence[Experiment],
                 to_the_end: Iterable[str] = ()) -> None:
        self.settings, self.rules = settings, settings.execution.pruning
        self.to_the_end = set(to_the_end)  # experiment ids never pruned (see the module doc)
        # the monitored key's own direction (val_loss falls, val_f1 rises), whatever the
        # headline metric's system.metric_mode
        self.direction = self.rules.direction
        self.say: Say | None = None  # the executor's message line (attach)
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
        self.trials: dict[Key, optuna.Trial] = {}
        self.reported: dict[Key, dict[int, float]] = {}  # epoch -> value, earlier attempts too
        self.storage = open_storage(settings)  # before anything launches: a bad URL is input
        for model, categories in self.pools.items():
            for category in categories:
                self._check_direction(study_name(model, category))

    def _check_direction(self, name: str) -> None:
        """A pool study made before the monitor's own direction was used (under
        system.metric_mode) may compare the other way: told before launch, never pruned
        upside down."""
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            return  # made on first use, the right way
        wanted = "MAXIMIZE" if self.direction is Direction.MAX else "MINIMIZE"
        found = [d.name for d in self.storage.get_study_directions(study_id)]
        if found != [wanted]:
            raise HpsysError(f"{self.settings.path}: execution.pruning.monitor",
                             f"the study {name} in {self.settings.system.optuna_storage} "
                             f"compares {self.rules.monitor} as {found[0].lower()}, but a "
                             f"larger {self.rules.monitor} is "
                             f"{'better' if self.direction is Direction.MAX else 'worse'}; "
                             f"delete it (optuna delete-study --study-name '{name}' --storage "
                             "URL) and its pool starts afresh")

    # -- the Stopper protocol ------------------------------------------------------------
    def attach(self, say: Say) -> None:
        self.say = say

    def observe(self, experiment: Experiment, line: Mapping[str, Any]) -> StopDecision | None:
        read = monitored(line, self.rules.monitor)
        if read is None:
            if "epoch" in line and not isinstance(line.get(self.rules.monitor), float):
                self._warn_missing(experiment, line)
            return None
        epoch, value = read
        with self.lock:
            for pool in self._pools_of(experiment):
                self._report(pool, experiment, value, epoch)
            if experiment.category == BASELINE or experiment.id in self.to_the_end:
                for pool in self._pools_of(experiment):  # it competes at the rungs, never pruned
                    if epoch >= self.rules.min_epochs:
                        self._trial(pool, experiment).should_prune()
                return None
            pool = self._pools_of(experiment)[0]
            trial = self._trial(pool, experiment)
            if epoch < self.rules.min_epochs or not trial.should_prune():
                return None
            return StopDecision(Status.PRUNED, epoch, why_pruned(self.studies[pool], trial.number,
                                                                 self.rules, epoch, value))

    def ended(self, experiment: Experiment, status: str,
              rest: Sequence[Mapping[str, Any]] = ()) -> None:
        """Done: its trial is complete (the lines the watch missed, `rest`, reported first);
        pruned: pruned. Any other end leaves the trial running, for its retry or resume."""
        if status not in (Status.DONE, Status.PRUNED):
            return
        with self.lock:
            pools = [p for p in self._pools_of(experiment)
                     if status == Status.DONE or (p, experiment.id) in self.trials]
            if status == Status.DONE:
                for line in rest:
                    read = monitored(line, self.rules.monitor)
                    for pool in pools if read is not None else ():
                        self._report(pool, experiment, read[1], read[0])
                for pool in pools:
                    self._trial(pool, experiment)
            for pool in pools:
                key = (pool, experiment.id)
                trial = self.trials.pop(key)
                values = self.reported.pop(key, {})
                if status == Status.PRUNED:
                    self.studies[pool].tell(trial, state=TrialState.PRUNED)
                elif not values:
                    self.studies[pool].tell(trial, state=TrialState.FAIL)
                else:
                    self.studies[pool].tell(trial, values[max(values)])

    # -- inside ----------------------------------------------------------------------------
    def _pools_of(self, experiment: Experiment) -> list[Pool]:
        """With paired seeds (repeats), seed k of a category is a pool of its own beside the
        baseline's seed k: seeds of one option never compete with each other."""
        seed = f"#seed{experiment.repeat}" if self.settings.execution.repeats > 1 else ""
        if experiment.category == BASELINE:
            return [(experiment.model, c + seed) for c in self.pools.get(experiment.model, ())]
        return [(experiment.model, experiment.category + seed)]

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
        running for it (found by its number, through the storage's public API), else a new
        one."""
        key = (pool, experiment.id)
        trial = self.trials.get(key)
        if trial is None:
            study = self._study(pool)
            left = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                    if t.user_attrs.get(EXPERIMENT_ATTR) == experiment.id]
            if left:
                study_id = self.storage.get_study_id_from_name(study.study_name)
                trial = optuna.Trial(study, self.storage.get_trial_id_from_study_id_trial_number(
                    study_id, left[-1].number))
                self.reported[key] = dict(left[-1].intermediate_values)
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

    def _report(self, pool: Pool, experiment: Experiment, value: float, epoch: int) -> None:
        """An epoch a previous attempt already reported keeps its first value, quietly."""
        trial = self._trial(pool, experiment)
        seen = self.reported.setdefault((pool, experiment.id), {})
        if epoch not in seen:
            trial.report(value, epoch)
            seen[epoch] = value

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

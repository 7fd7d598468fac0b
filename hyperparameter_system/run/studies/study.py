"""A search's study: opened (created on first use) with its sampler and pruner, the trials a
dead runner left told FAIL with their ledger rows, the space as Optuna distributions, and the
start configs enqueued."""

from __future__ import annotations

import dataclasses
import functools
import socket
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from hyperparameter_system.config.search_blocks import SearchSettings
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.configdict import get_dotted
from hyperparameter_system.core.processes import alive
from hyperparameter_system.core.states import Direction, Status
from hyperparameter_system.run.studies.pruners import make_pruner
from hyperparameter_system.run.studies.samplers import make_sampler
from hyperparameter_system.run.studies.storage import open_storage
from hyperparameter_system.store.claims import owner_gone
from hyperparameter_system.store.ledger import open_ledger

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ATTR = "hpsys"  # a trial's user attribute: {host, pid, experiment_id}, set in one write
# A study system attribute `hpsys.asking.<host>.<pid>`: when that runner began an ask whose
# trial has no owner yet (None once it has). A runner killed in between leaves a RUNNING trial
# nobody owns; the next opening tells it FAIL, as it does a dead owner's.
ASKING = "hpsys.asking."


@dataclasses.dataclass(frozen=True)
class Opened:
    """A study with the storage it was opened on: the runner's own marks live in the study's
    system attrs (Optuna's public storage API), out of the user attrs the dashboard shows."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage

    @functools.cached_property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.study.study_name)

    def marks(self) -> dict[str, Any]:
        return self.storage.get_study_system_attrs(self.study_id)

    def mark(self, key: str, value: Any) -> None:
        self.storage.set_study_system_attr(self.study_id, key, value)


def open_study(settings: Settings, search: SearchSettings, model: str) -> optuna.Study:
    """The real Optuna study `<search>/<model>` (created on first use), with the trials a dead
    runner of this host left RUNNING told FAIL, and their ledger rows with them."""
    return open_opened(settings, search, model).study


def open_opened(settings: Settings, search: SearchSettings, model: str) -> Opened:
    """`open_study`, with the storage kept for the runner's marks."""
    directions = ["maximize" if d is Direction.MAX else "minimize" for _, d in search.objectives]
    store = open_storage(settings)
    study = optuna.create_study(storage=store, study_name=search.study_name(model),
                                directions=directions, sampler=make_sampler(search),
                                pruner=make_pruner(search.pruner) if search.pruner.on
                                else optuna.pruners.NopPruner(), load_if_exists=True)
    opened = Opened(study, store)
    names = [key for key, _ in search.objectives]
    if study.metric_names != names:  # the dashboard's and trials_dataframe's column names
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    host = socket.gethostname()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        owner = trial.user_attrs.get(ATTR) or {}
        if owner.get("host") == host and not alive(int(owner.get("pid", 0)) or -1):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    _fail_half_asked(opened, running, host)
    _release_dead_rows(settings, search, model)
    return opened


def _release_dead_rows(settings: Settings, search: SearchSettings, model: str) -> None:
    """Ledger rows of this study's trials whose runner died (SIGKILL): the study told their
    trials FAIL and a new trial takes each one's place, so the rows say failed, not running."""
    ledger = open_ledger(settings)
    stale = settings.execution.stale_after_s
    for row in ledger.rows(status=Status.RUNNING):
        if row.category == search.name and row.model == model \
                and owner_gone(row.owner, row.heartbeat, stale, alive, row.started_at):
            ledger.release(row.id, Status.FAILED, f"its runner {row.owner} died; the study told "
                           "this trial FAIL and asked a new one in its place", row.owner)


def _fail_half_asked(opened: Opened, running: list[optuna.trial.FrozenTrial],
                     host: str) -> None:
    """Trials a dead runner of this host asked for but never got to own (killed between the
    ask and the owner's write): told FAIL, so none stays RUNNING."""
    study = opened.study
    # the marks, and those an earlier version left among the user attrs (cleared alike)
    marks = [(key, since, opened.mark) for key, since in opened.marks().items()]
    marks += [(key, since, study.set_user_attr) for key, since in study.user_attrs.items()]
    for key, since, clear in marks:
        who, _, pid = key.removeprefix(ASKING).rpartition(".")
        if not key.startswith(ASKING) or since is None or who != host or not pid.isdigit() \
                or alive(int(pid)):
            continue
        for trial in running:
            started = trial.datetime_start
            if ATTR not in trial.user_attrs and started is not None \
                    and started.timestamp() >= float(since) - 0.01:
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        clear(key, None)


def experiment_of(trial: optuna.trial.FrozenTrial) -> str | None:
    """The ledger id of the experiment a trial ran as (None: a trial added by hand)."""
    return (trial.user_attrs.get(ATTR) or {}).get("experiment_id")


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def distributions(search: SearchSettings) -> dict[str, BaseDistribution]:
    """The search's space as Optuna's distributions (what `study.ask` samples)."""
    out: dict[str, BaseDistribution] = {}
    for param in search.space:
        if param.kind == "categorical":
            out[param.key] = CategoricalDistribution(param.choices)
        elif param.kind == "int":
            out[param.key] = IntDistribution(int(param.low), int(param.high), log=param.log,
                                             step=int(param.step or 1))
        else:
            out[param.key] = FloatDistribution(param.low, param.high, log=param.log,
                                               step=param.step)
    return out


def enqueue(study: optuna.Study, search: SearchSettings, configs: Mapping[str, Mapping]) -> int:
    """Enqueue each start config's values of the searched keys (those its distributions hold),
    once: `start_from: [baseline, combined, path]`. Returns how many were new."""
    dists = distributions(search)
    added = 0
    seen = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)}
    for config in configs.values():
        params = {}
        for key, dist in dists.items():
            value = get_dotted(config, key, None)
            if value is not None and _fits(dist, value):
                params[key] = value
        if params and tuple(sorted(params.items())) not in seen:
            study.enqueue_trial(params, skip_if_exists=True)
            seen.add(tuple(sorted(params.items())))
            added += 1
    return added


def _fits(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return dist.low <= value <= dist.high


def counts(study: optuna.Study) -> dict[str, int]:
    """Its trials by state as the runner tells them (a status line per study): active (running or
    waiting), complete, pruned, failed."""
    out = {"active": 0, "complete": 0, "pruned": 0, "failed": 0}
    names = {TrialState.RUNNING: "active", TrialState.WAITING: "active",
             TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}
    for trial in study.get_trials(deepcopy=False):
        out[names.get(trial.state, "failed")] += 1
    return out


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA), or none when they cannot be told (e.g. a
    single distinct value)."""
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}

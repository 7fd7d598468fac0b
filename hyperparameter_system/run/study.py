"""An Optuna study as the executor's experiment source (ask/tell) and stopper (pruning).

Each trial is an experiment: asked when a slot frees, launched through the same contract as a
matrix option (its sampled values applied to the model's base config), reported each epoch's
monitored metric, pruned through the study's pruner with a graceful stop request, and told how
it ended: COMPLETE with its objective values, PRUNED, or FAIL with the reason. Trials a dead
runner of this host left RUNNING are told FAIL when the study is opened again, so a resumed
search never counts a trial twice and leaves none RUNNING.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import math
import os
import socket
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from hyperparameter_system.config.search import SAMPLERS, Param, SearchSettings
from hyperparameter_system.config.settings import ModelSettings, Settings
from hyperparameter_system.core.configdict import get_dotted, stable_hash
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.processes import alive
from hyperparameter_system.core.states import Direction, Status
from hyperparameter_system.matrix.experiments import Experiment, make_experiment
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.run.launcher import Outcome
from hyperparameter_system.run.pruning import make_pruner
from hyperparameter_system.run.stoppers import StopDecision
from hyperparameter_system.store.ledger import open_ledger, owner_gone

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ATTR = "hpsys"  # a trial's user attribute: {host, pid, experiment_id}, set in one write
# A study's user attribute `hpsys.asking.<host>.<pid>`: when that runner began an ask whose
# trial has no owner yet (None once it has). A runner killed in between leaves a RUNNING trial
# nobody owns; the next opening tells it FAIL, as it does a dead owner's.
ASKING = "hpsys.asking."
RECOUNT_S = 2.0  # how often the finished trials are counted again (other runners' count too)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner's display says what happens


def storage_url(settings: Settings) -> str:
    """`system.optuna_storage`, else a SQLite file beside the runs."""
    given = getattr(settings.system, "optuna_storage", None)
    return given or f"sqlite:///{settings.system.runs_dir / 'optuna.db'}"


def sampler(search: SearchSettings) -> optuna.samplers.BaseSampler:
    """The search's sampler (`tpe`, `random`, ... or `{_target_: optuna.samplers.X, ...}`).

    With a seed, each trial is sampled by a sampler seeded from that seed and the trial's
    number (`SeedPerTrial`): a resumed search, or a second runner on a shared study, goes on
    with new numbers and so new settings, while one run from an empty study repeats exactly.
    QMC and grid keep their one seed: the position in QMC's sequence is counted in the
    storage, and a grid's seed shuffles the grid every worker must share (trial k takes its
    point k).
    """
    name, kwargs = _sampler_args(search)
    seed = kwargs.pop("seed", search.seed)
    if name in ("QMCSampler", "GridSampler") or seed is None:
        return _build(search, name, {**kwargs, "seed": seed})
    return SeedPerTrial(lambda trial_seed: _build(search, name, {**kwargs, "seed": trial_seed}),
                        seed)


# Samplers whose package Optuna imports only at the first trial (not at construction).
NEEDS = {"CmaEsSampler": ("cmaes",), "GPSampler": ("torch", "scipy")}


def check_sampler(search: SearchSettings) -> None:
    """Build the search's sampler and pruner once, before anything launches: an argument
    Optuna refuses, or a package its sampler needs and lacks, is bad input, one line naming
    the key and what Optuna said."""
    name, kwargs = _sampler_args(search)
    missing = [pkg for pkg in NEEDS.get(name, ()) if importlib.util.find_spec(pkg) is None]
    if missing:
        raise HpsysError(f"{search.where}.sampler", f"{name} needs the package "
                         f"{missing[0]!r}, which is not installed (pip install {missing[0]})")
    if search.pruner.on:
        make_pruner(search.pruner)
    try:
        _build(search, name, kwargs if "seed" in kwargs else {**kwargs, "seed": search.seed})
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, ImportError alike
        raise HpsysError(f"{search.where}.sampler", f"Optuna refused {name}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                         ) from None


def grid_size(search: SearchSettings) -> int | None:
    """How many settings a grid search holds (None: not a grid), so a search stops there."""
    name, kwargs = _sampler_args(search)
    if name != "GridSampler":
        return None
    space = kwargs.get("search_space") or {p.key: _grid(p) for p in search.space}
    return math.prod(len(values) for values in space.values())


def _sampler_args(search: SearchSettings) -> tuple[str, dict[str, Any]]:
    if isinstance(search.sampler, str):
        return SAMPLERS[search.sampler], {}
    kwargs = {k: v for k, v in search.sampler.items() if k != "_target_"}
    return str(search.sampler["_target_"]).rsplit(".", 1)[-1], kwargs


def _build(search: SearchSettings, name: str, kwargs: dict[str, Any]
           ) -> optuna.samplers.BaseSampler:
    cls = _GridToItsSize if name == "GridSampler" else getattr(optuna.samplers, name)
    if name == "GridSampler":
        kwargs.setdefault("search_space", {p.key: list(_grid(p)) for p in search.space})
    with warnings.catch_warnings():  # QMC and GP are marked experimental: not the user's news
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(**kwargs)


class _GridToItsSize(optuna.samplers.GridSampler):
    """Optuna's grid, less its `after_trial`: that only calls `study.stop()` once the grid is
    used up, which raises outside `optimize()`; a search stops at the grid's size instead
    (`grid_size`)."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: Sequence[float] | None) -> None:
        return None


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number` of a search seeded `seed`: distinct per trial, in numpy's
    range, the same on every machine."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class SeedPerTrial(optuna.samplers.BaseSampler):
    """A sampler seeded per trial: each trial's settings come from a fresh sampler seeded by
    `trial_seed(seed, trial.number)`, over the study's whole history.

    One seed for a whole sampler makes every new instance repeat the first one: a search run
    again with more trials, rerun after a SIGKILL, or joined by a second runner would propose
    the settings it already holds. Trial numbers are unique in a study, so the seeds are too;
    from an empty study the same seed still gives the same trials.

    Args:
        build: a sampler for one trial, given its seed.
        seed: the search's `seed`.
    """

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self.build, self.seed = build, seed
        self.lock = threading.Lock()
        self.by_number: dict[int, optuna.samplers.BaseSampler] = {}

    def _of(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        with self.lock:
            inner = self.by_number.get(trial.number)
            if inner is None:
                inner = self.build(trial_seed(self.seed, trial.number))
                self.by_number[trial.number] = inner
            return inner

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._of(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: Sequence[float] | None) -> None:
        inner = self._of(trial)
        with self.lock:
            self.by_number.pop(trial.number, None)
        inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing: the seeds come from the trial numbers."""


def _grid(param: Param) -> tuple[Any, ...]:
    if param.kind == "categorical":
        return param.choices
    step = param.step or (1 if param.kind == "int" else (param.high - param.low) / 4)
    count = int(round((param.high - param.low) / step)) + 1
    return tuple(param.low + i * step for i in range(count))


def distributions(search: SearchSettings) -> dict[str, BaseDistribution]:
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
    settings.system.runs_dir.mkdir(parents=True, exist_ok=True)
    directions = ["maximize" if d is Direction.MAX else "minimize" for _, d in search.objectives]
    store = storage(storage_url(settings))
    study = optuna.create_study(storage=store, study_name=search.study_name(model),
                                directions=directions, sampler=sampler(search),
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
    book = open_ledger(settings)
    stale = settings.execution.stale_after_s
    for row in book.rows(status=Status.RUNNING):
        if row.category == search.name and row.model == model \
                and owner_gone(row.owner, row.heartbeat, stale, alive, row.started_at):
            book.release(row.id, Status.FAILED, f"its runner {row.owner} died; the study told "
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


def _shared(url: str, tries: int = 5) -> optuna.storages.BaseStorage:
    """A server's storage. Two runners meeting a fresh database both create Optuna's tables;
    the one that loses the race (a duplicate type or table) retries and finds them made."""
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=None)
        except SQLAlchemyError:
            if attempt == tries - 1:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def experiment_of(trial: optuna.trial.FrozenTrial) -> str | None:
    """The ledger id of the experiment a trial ran as (None: a trial added by hand)."""
    return (trial.user_attrs.get(ATTR) or {}).get("experiment_id")


def storage(url: str) -> optuna.storages.BaseStorage:
    """The study storage; a SQLite file in WAL mode with normal syncing (each ask and tell is
    a commit: a full fsync per commit costs more than the trial's own launch)."""
    if not url.startswith("sqlite:"):
        return _shared(url)
    from sqlalchemy import event

    rdb = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(rdb.engine, "connect", pragmas)
    rdb.engine.dispose()  # connections opened while creating the schema go: new ones get them
    return rdb


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


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


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
        self.monitor = search.pruner.monitor

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
        run_name = f"{self.search.name}_t{trial.number:03d}"
        exp = make_experiment(self.model, self.search.name, option, params, run_name,
                              self.index + trial.number)
        # the trial's start in the id: a study started over numbers its trials from 0 again,
        # and its trial 0 must not be the old study's done ledger row
        started = trial.datetime_start.isoformat() if trial.datetime_start else ""
        return dataclasses.replace(exp, id=stable_hash(exp.id, started))

    # -- Stopper -------------------------------------------------------------------------------
    def observe(self, experiment: Experiment, line: Mapping[str, Any]) -> StopDecision | None:
        if not self.search.pruner.on or self.search.multi:
            # Optuna prunes single-objective studies only: the config refuses a pruner on a
            # multi-objective search (config/search.py); one built by hand is never pruned
            return None
        trial = self.trials.get(experiment.id)
        value, epoch = line.get(self.monitor), line.get("epoch")
        if trial is None or not isinstance(epoch, int) or not isinstance(value, int | float):
            return None
        trial.report(float(value), epoch)
        if epoch < self.search.pruner.min_epochs or not trial.should_prune():
            return None
        return StopDecision(Status.PRUNED, epoch, f"epoch {epoch}: {self.monitor} {value:.4f}, "
                                                  f"pruned by {self.search.pruner.rule}")

    def ended(self, experiment: Experiment, status: str) -> None:
        return None

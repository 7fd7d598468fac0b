"""Searches: Optuna studies over a `search:` block's space, run on the executor's slots.

The API the CLI (`--search`), the menu and notebooks call: `study()` is the real
`optuna.Study` (ask/tell by hand, `best_trials`, `trials_dataframe()`), `run_search()` runs
trials until a study has `n_trials` finished ones, `status()` counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperparameter_system.app import api
from hyperparameter_system.config.search_blocks import SearchSettings
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.errors import HpsysError, close_match
from hyperparameter_system.core.states import Status
from hyperparameter_system.run.executor import Executor
from hyperparameter_system.run.seams import Display
from hyperparameter_system.run.studies import (
    StudySource,
    check_sampler,
    complete,
    counts,
    enqueue,
    experiment_of,
    finished,
    grid_size,
    importances,
    open_opened,
    open_study,
)
from hyperparameter_system.run.tally import RunResult
from hyperparameter_system.store.estimates import spread

# A live view for a search: given the trials left to run and the slots, or None.
SearchDisplay = Callable[[int, int], Display]


@dataclass
class TrialView:
    number: int
    values: list[float] | None
    params: dict[str, Any]
    state: str
    experiment_id: str | None
    wandb: str | None = None  # "project/run id" as the trial's result.json recorded it


@dataclass
class StudyStatus:
    """One study's counts (active, complete, pruned, failed), its best trial or Pareto front,
    and the parameter importances once enough trials completed."""

    search: str
    model: str
    study_name: str
    objectives: list[str]
    counts: dict[str, int]
    best: list[TrialView] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)
    history: list[tuple[int, float]] = field(default_factory=list)  # (trial, best so far)


@dataclass(frozen=True)
class SearchPlan:
    """What `run_search` would do: trials left per model, the slots, the estimated time (from
    the ledger's finished runs of those models; None without any)."""

    search: str
    left: Mapping[str, int]
    slots: int
    estimate_s: float | None

    @property
    def trials(self) -> int:
        return sum(self.left.values())


def plan_search(settings: Settings, name: str, trials: int | None = None) -> SearchPlan:
    search = checked(settings, name)
    left = {m: max(0, target(search, trials) - finished(open_study(settings, search, m)))
            for m in search.models}
    slots = api.slot_count(settings) or 1
    rows = [r for r in api.open_ledger(settings).rows() if r.model in left and r.duration_s
            and r.status == Status.DONE]
    per_model = {m: [r.duration_s for r in rows if r.model == m] for m in left}
    known = [sum(times) / len(times) * left[m] for m, times in per_model.items() if times]
    estimate = spread(known, slots) if len(known) == len(left) else None
    return SearchPlan(name, left, slots, estimate)


def get_search(settings: Settings, name: str) -> SearchSettings:
    names = [s.name for s in settings.searches]
    for search in settings.searches:
        if search.name == name:
            return search
    raise HpsysError(f"--search {name}", f"unknown search{close_match(name, names)}; "
                     f"expected one of {', '.join(names) or '(none: add a search: block)'}")


def checked(settings: Settings, name: str) -> SearchSettings:
    """The search `name`, its sampler and pruner built once by Optuna: what Optuna refuses is
    told now, one line, before any study is opened or trial launched."""
    search = get_search(settings, name)
    check_sampler(search)
    return search


def target(search: SearchSettings, trials: int | None = None) -> int:
    """Finished trials a study is run to: `--trials`, else n_trials; a grid's size at most
    (once every setting is tried, a further trial would repeat one)."""
    wanted = trials or search.n_trials
    size = grid_size(search)
    return wanted if size is None else min(wanted, size)


def study(config: str | Path | Settings, search: str, model: str | None = None):  # noqa: ANN201
    """The real `optuna.Study` of `search` for `model` (default: its first model)."""
    settings = config if isinstance(config, Settings) else api.load(config)
    block = get_search(settings, search)
    return open_study(settings, block, model or block.models[0])


def start_configs(settings: Settings, search: SearchSettings, model: str) -> dict[str, Mapping]:
    """The configs `start_from` enqueues first: the base config, the combined winners (when the
    matrix has them), a YAML file."""
    out: dict[str, Mapping] = {}
    for item in search.start_from:
        if item == "baseline":
            out[item] = settings.model(model).base
        elif item == "combined":
            plans = [m.combined.plan for m in api.summarize(settings).models
                     if m.model == model and m.combined and m.combined.plan.applied]
            if plans:
                out[item] = plans[0].experiments[0].config
        else:
            data = yaml.safe_load(Path(item).read_text(encoding="utf-8")) or {}
            if isinstance(data, Mapping):
                out[item] = data
    return out


def run_search(settings: Settings, name: str, models: Sequence[str] | None = None,
               trials: int | None = None, executor: str | None = None,
               display: SearchDisplay | None = None) -> RunResult:
    """Run trials of each model's study until it holds `trials` (default n_trials) finished
    ones; every slot runs a trial at once, a freed slot asks the study for the next."""
    search = checked(settings, name)
    chosen = [m for m in search.models if not models or m in models]
    if models:
        unknown = [m for m in models if m not in search.models]
        if unknown:
            raise HpsysError(f"--models {unknown[0]}", f"not a model of search {name!r}; "
                             f"expected one of {', '.join(search.models)}")
    total = RunResult()
    ledger = api.open_ledger(settings)
    kind = executor or settings.execution.executor
    slots, dispatch = api.runtime(settings, kind)
    goal = target(search, trials)
    if goal < (trials or search.n_trials):
        total.messages.append(f"{name}: the grid holds {goal} settings; each study stops once "
                              "it has tried them all")
    for model in chosen:
        opened = open_opened(settings, search, model)
        enqueue(opened.study, search, start_configs(settings, search, model))
        source = StudySource(settings, search, settings.model(model), opened, goal)
        left = max(0, goal - finished(opened.study))
        view = display(left, len(slots)) if display is not None and left else None
        engine = Executor(settings, ledger, slots, dispatch, view, stopper=source)
        if view is None:
            result = engine.run_source(source)
        else:
            with view:
                result = engine.run_source(source)
        total.outcomes += result.outcomes
        total.messages += result.messages
        total.busy_elsewhere += result.busy_elsewhere
        total.done_elsewhere += result.done_elsewhere
        if result.interrupted:
            total.interrupted = True
            break
    return total


def status(settings: Settings, name: str | None = None) -> list[StudyStatus]:
    """Every study of the searches (or of `name`), with counts and best trials."""
    chosen = [get_search(settings, name)] if name else list(settings.searches)
    out = []
    for search in chosen:
        for model in search.models:
            s = open_study(settings, search, model)
            view = StudyStatus(search.name, model, s.study_name, [k for k, _ in search.objectives],
                               counts(s))
            done = complete(s)
            if done:
                view.best = [TrialView(t.number, list(t.values), dict(t.params), "complete",
                                       experiment_of(t))
                             for t in s.best_trials]
                _add_wandb(settings, view.best)
                if not search.multi:
                    best, direction = None, search.objectives[0][1]
                    for t in sorted(done, key=lambda t: t.number):
                        if best is None or direction.score(t.value) > direction.score(best):
                            best = t.value
                        view.history.append((t.number, best))
                if len(done) >= 3 and not search.multi:
                    view.importances = importances(s)
            out.append(view)
    return out


def _add_wandb(settings: Settings, trials: Sequence[TrialView]) -> None:
    """Each trial's W&B run, as its result.json (in the ledger) recorded it: where to look in
    W&B, which the experiment id alone does not say."""
    ids = [t.experiment_id for t in trials if t.experiment_id]
    if not ids:
        return
    rows = {r.id: r for r in api.open_ledger(settings).rows(ids)}
    for trial in trials:
        row = rows.get(trial.experiment_id or "")
        block = (row.result.get("wandb") if row is not None else None) or {}
        if isinstance(block, Mapping) and block.get("project") and block.get("run_id"):
            trial.wandb = f"{block['project']}/{block['run_id']}"

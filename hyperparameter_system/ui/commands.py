"""The commands the flags and the menu share: call the API, show what it returns.

The API computes and runs; everything it found reaches the terminal here, through the console.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.report.summary import Summary
from hyperparameter_system.run.tally import RunResult
from hyperparameter_system.ui import console, screen


def live_display(plan: api.RunPlan, slots: int) -> console.RunDisplay:
    """The progress view of a run: its bar and one line per running experiment."""
    return console.RunDisplay(len(plan.to_run), plan.skipped, plan.estimate_s, slots)


def show_matrix(settings: Settings, experiments: Sequence[Experiment],
                executor: str | None = None) -> None:
    view = api.matrix_view(settings, experiments, executor)
    for problem in view.problems:
        console.warn(problem)
    console.print_matrix(settings, list(view.experiments), view.statuses, view.estimates,
                         view.slots, launch=view.launch)


def run(settings: Settings, experiments: Sequence[Experiment], rerun: bool = False,
        executor: str | None = None, show: bool = True) -> RunResult:
    """Run with the live view (or quietly); what the executor said without one is warned."""
    def display(plan: api.RunPlan, slots: int) -> console.RunDisplay:
        return console.RunDisplay(len(plan.to_run), plan.skipped, plan.estimate_s, slots,
                                  settings.system.metric)

    if settings.execution.budget_s and settings.execution.race:  # a new matrix's figures
        for line in api.calibrate(settings, experiments):
            console.info(line)
    result = api.run(settings, experiments, rerun=rerun, executor=executor,
                     display=display if show else None)
    for text in result.messages:
        console.warn(text)
    return result


@dataclass(frozen=True)
class CombineView:
    """What --combine-best shows around its run: the live view while it runs (off in tests),
    and the tables comparing it with the winners after (off when a --summary in the same
    command prints those tables, once)."""

    live: bool = True
    tables: bool = True


def combine_best(settings: Settings, models: Sequence[str] | None = None,
                 executor: str | None = None, rerun: bool = False, dry_run: bool = False,
                 view: CombineView = CombineView()) -> RunResult:
    """`--combine-best`: say what is combined, run it, then compare it with the winners."""
    found = api.combine_plans(settings, models)
    for note in found.notes:
        console.warn(note)
    if not found.plans:  # every base config already beats its options: nothing to run
        return RunResult()
    console.print_combined_plans(found.plans)
    if dry_run:
        console.info("--dry-run: no combined config saved, nothing run")
        return RunResult()
    result = api.run_combined(settings, found.plans, rerun=rerun, executor=executor,
                              display=live_display if view.live else None)
    console.print_run_result(result, console.resume_hint(rerun))
    if view.tables:
        console.print_tables([t for t in api.report(settings).tables
                              if t.key in ("model", "combined", "conflicts")])
    return result


def report(settings: Settings, summary: bool = True, export: Sequence[str] | None = None,
           plots: str | Path | None = None) -> Summary:
    """`--summary`, `--export FORMAT PATH`, `--plots DIR`: the summary printed and written."""
    out = api.report(settings, export=export, plots=plots)
    for mark in api.script_marks(settings):
        console.warn(mark)
    for problem in out.summary.problems:
        console.warn(problem)
    if out.summary.metric_missing:
        console.warn(out.summary.metric_missing)
    if summary:
        console.print_summary(out.summary, out.tables)
    for line in out.written:
        console.info(line)
    if out.stdout is not None:
        screen.raw(out.stdout)
    return out.summary


def search(settings: Settings, name: str, models: Sequence[str] | None = None,
           trials: int | None = None, executor: str | None = None,
           show: bool = True) -> RunResult:
    """`--search NAME`: run its trials with the live view, then show its studies."""
    from hyperparameter_system.app import search_api as searches  # Optuna: only when searching

    block = searches.get_search(settings, name)
    metric = block.objectives[0][0]  # each done line shows it
    # a script that cannot start: refused before any study opens
    api.check_runnable(settings, [m for m in block.models if not models or m in models])
    result = searches.run_search(
        settings, name, models, trials, executor,
        display=(lambda left, slots: console.RunDisplay(left, 0, None, slots, metric))
        if show else None)
    for text in result.messages:
        console.warn(text)
    show_studies(settings, name)
    return result


def search_plan(settings: Settings, name: str, trials: int | None = None) -> None:
    """`--search NAME --dry-run`: the trials each study would run, the slots, the estimate."""
    from hyperparameter_system.app import search_api as searches  # Optuna: only when searching

    console.print_search_plan(searches.plan_search(settings, name, trials))


def show_studies(settings: Settings, name: str | None = None) -> None:
    """`--search` alone, and `--summary`: each study's counts, best trials, importances."""
    if not settings.searches:
        console.info("no search: blocks in this config")
        return
    from hyperparameter_system.app import search_api as searches  # Optuna: only when searching

    console.print_studies(searches.status(settings, name))

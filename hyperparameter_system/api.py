"""The runner's API: what the CLI flags and the interactive menu both call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hyperparameter_system import combine, console, devices, exports
from hyperparameter_system.errors import HpsysError
from hyperparameter_system.estimates import estimate_durations
from hyperparameter_system.executor import Executor, RunResult, local_dispatch
from hyperparameter_system.hyperparameter_configs import Experiment, build_matrix
from hyperparameter_system.ledger import Ledger, open_ledger
from hyperparameter_system.report import FAILED, Summary, collect, seen_matrix, tables
from hyperparameter_system.settings import Settings, load_settings

__all__ = ["EXPORT_FORMATS", "Plan", "load", "select", "ledger", "plan_run", "slot_count", "run",
           "show_matrix", "failed", "estimates", "export_ledger", "combine_best", "report",
           "summarize"]

EXPORT_FORMATS = exports.FORMATS


@dataclass(frozen=True)
class Plan:
    """What a run would do: what runs, what is skipped as done, the slots it runs on (None: a
    Ray cluster decides, or nothing has a known duration to spread) and the estimate."""

    experiments: tuple[Experiment, ...]
    to_run: tuple[Experiment, ...]
    statuses: Mapping[str, str]
    slots: int | None
    estimate_s: float | None
    unknown: int  # experiments to run without an estimate

    @property
    def total(self) -> int:
        return len(self.experiments)

    @property
    def skipped(self) -> int:
        return self.total - len(self.to_run)


def load(config: str | Path, overrides: Sequence[str] = ()) -> Settings:
    return load_settings(config, overrides)


def select(settings: Settings, models: Sequence[str] | None = None,
           categories: Sequence[str] | None = None) -> list[Experiment]:
    return build_matrix(settings, models or None, categories or None)


def ledger(settings: Settings) -> Ledger:
    return open_ledger(settings)


def estimates(settings: Settings, experiments: Sequence[Experiment]) -> dict[str, float | None]:
    return estimate_durations(ledger(settings).rows(), experiments)


def plan_run(settings: Settings, experiments: Sequence[Experiment], rerun: bool = False,
             executor: str | None = None, slots: int | None = None) -> Plan:
    statuses = ledger(settings).statuses(e.id for e in experiments)
    todo = [e for e in experiments if rerun or statuses.get(e.id) != "done"]
    est = estimates(settings, todo)
    known = [v for v in est.values() if v is not None]
    if slots is None and known:  # only to spread known durations (may run nvidia-smi)
        slots = slot_count(settings, executor)
    return Plan(tuple(experiments), tuple(todo), statuses, slots,
                (sum(known) / slots) if known and slots else None, len(est) - len(known))


def slot_count(settings: Settings, executor: str | None = None) -> int | None:
    """How many experiments run at once: the local slots as planned (GPU caps included); on
    Ray, max_parallel, or None when that is 1 ("as many as the cluster holds": unknown here)."""
    execution = settings.execution
    if (executor or execution.executor) == "ray":
        return execution.max_parallel if execution.max_parallel > 1 else None
    return len(local_slots(settings))


def local_slots(settings: Settings) -> list[devices.Slot]:
    execution = settings.execution
    try:
        return devices.plan_slots(execution.max_parallel, execution.gpus,
                                  execution.gpus_per_experiment, execution.experiments_per_gpu)
    except ValueError as exc:
        raise HpsysError(f"{settings.path}: execution.gpus", str(exc)) from None


def failed(settings: Settings) -> list[Experiment]:
    """Experiments of this config whose last attempt failed, timed out or was stopped: in the
    default matrix, or of a disabled model or category the user picked to run."""
    rows = [r for r in ledger(settings).rows() if r.status in FAILED]
    stopped = {r.id for r in rows}
    chosen = [e for e in seen_matrix(settings, rows) if e.id in stopped] if rows else []
    _check_entries(settings, chosen)
    return chosen


def _check_entries(settings: Settings, experiments: Sequence[Experiment]) -> None:
    """Before launching what was picked from the ledger: a problem of its (disabled) model or
    category, such as a script removed since, is told now, not once per launch."""
    for name in dict.fromkeys(e.model for e in experiments):
        settings.model(name).checked()
    for name in dict.fromkeys(e.category for e in experiments):
        if any(c.name == name for c in settings.categories):
            settings.category(name).checked()


def show_matrix(settings: Settings, experiments: Sequence[Experiment],
                executor: str | None = None) -> None:
    """The matrix with ledger statuses; its estimate over the slots a run would really have."""
    statuses = ledger(settings).statuses(e.id for e in experiments)
    est = estimates(settings, experiments)
    # the slots only matter to spread known durations (finding GPUs may run nvidia-smi)
    slots = slot_count(settings, executor) if any(v is not None for v in est.values()) else None
    console.print_matrix(settings, experiments, statuses, est, slots)


def run(settings: Settings, experiments: Sequence[Experiment], rerun: bool = False,
        executor: str | None = None, show: bool = True) -> RunResult:
    """Run the selection to its end; Ctrl-C ends the children and leaves it resumable."""
    kind = executor or settings.execution.executor
    book = ledger(settings)
    if kind == "ray":
        from hyperparameter_system.ray_executor import ray_dispatch, ray_slots

        slots, dispatch = ray_slots(settings), ray_dispatch(settings)
    else:
        slots, dispatch = local_slots(settings), local_dispatch(settings)
    plan = plan_run(settings, experiments, rerun, kind, slots=len(slots))
    display = console.RunDisplay(len(plan.to_run), plan.skipped, plan.estimate_s,
                                 len(slots)) if show else None
    engine = Executor(settings, book, slots, dispatch, display)
    if display is None:
        return engine.run(experiments, rerun)
    with display:
        return engine.run(experiments, rerun)


def export_ledger(settings: Settings, path: str | Path) -> int:
    return ledger(settings).export_csv(path)


def combine_best(settings: Settings, models: Sequence[str] | None = None,
                 executor: str | None = None, rerun: bool = False, show: bool = True,
                 dry_run: bool = False) -> RunResult:
    """`--combine-best`: save and run each model's combined winners, then compare them (with
    `dry_run`, only say what would be combined)."""
    plans = [m.combined.plan for m in summarize(settings).models
             if m.combined and (not models or m.model in models)]
    for p in plans:
        if not p.applied:
            console.warn(f"{p.model}: no category has a winner that beat the baseline (a tie at "
                         "the top is no winner); its base config stays the best, nothing to "
                         "combine")
    if not plans:
        raise HpsysError("--combine-best", "no model has finished category options to combine; "
                         "run the matrix first (--all)")
    plans = [p for p in plans if p.applied]
    if not plans:  # every base config already beats its options: nothing to run, no error
        return RunResult()
    console.print_combined_plans(plans)
    if dry_run:
        console.info("--dry-run: no combined config saved, nothing run")
        return RunResult()
    _check_entries(settings, [e for p in plans for e in p.experiments])
    for p in plans:
        combine.save_config(p)
    result = run(settings, [e for p in plans for e in p.experiments], rerun=rerun,
                 executor=executor, show=show)
    console.print_run_result(result, console.resume_hint(rerun))
    console.print_tables([t for t in tables(collect(settings))
                          if t.key in ("model", "combined", "conflicts")])
    return result


def report(settings: Settings, summary: bool = True, export: Sequence[str] | None = None,
           plots: str | Path | None = None) -> Summary:
    """`--summary`, `--export FORMAT PATH`, `--plots DIR`: the summary printed and written."""
    data = summarize(settings)
    if summary:
        console.print_summary(data, tables(data))
    if export:
        fmt, path = export
        with _writing(f"--export {fmt} {path}"):
            written = exports.export(data, fmt, Path(path))
        console.info(f"wrote the {fmt} report to {written}")
    if plots:
        with _writing(f"--plots {plots}"):
            files = exports.write_plots(data, Path(plots))
        console.info(f"wrote {len(files)} plot(s) to {plots}")
    return data


def summarize(settings: Settings) -> Summary:
    """The summary, with a warning when `system.metric` names a key no finished result has:
    otherwise a renamed metric would show as tables without a single number."""
    data = collect(settings)
    if data.metric_missing:
        console.warn(data.metric_missing)
    return data


@contextmanager
def _writing(where: str) -> Iterator[None]:
    """A report that cannot be written (disk full, permissions) is one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise HpsysError(where, f"cannot write: {exc.strerror or exc}") from None

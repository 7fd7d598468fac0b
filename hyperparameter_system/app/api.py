"""The runner's API: what the CLI flags and the interactive menu both call.

It returns what it found and did; it never prints. The UI (ui/commands.py) shows it. Each call
opens the ledger once and passes it down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from hyperparameter_system.config.settings import Settings, load_settings
from hyperparameter_system.core.durations import fmt_duration, parse_duration
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import FINAL, STOPPED, Status
from hyperparameter_system.core.writable import STDOUT, output_file
from hyperparameter_system.matrix import combine
from hyperparameter_system.matrix.experiments import BASELINE, Experiment, build_matrix
from hyperparameter_system.report import exports
from hyperparameter_system.report.studies import study_figures
from hyperparameter_system.report.summary import Summary, collect, seen_matrix
from hyperparameter_system.report.tables import ReportTable, tables
from hyperparameter_system.run import devices, exec_plan, launcher, preload
from hyperparameter_system.run.executor import Executor, local_dispatch
from hyperparameter_system.run.race import RaceSource
from hyperparameter_system.run.seams import Dispatch, Display
from hyperparameter_system.run.tally import RunResult
from hyperparameter_system.store.estimates import calibrated, estimate_durations, spread
from hyperparameter_system.store.ledger import Ledger, open_ledger
from hyperparameter_system.store.row import Row, row_problems

__all__ = ["EXPORT_FORMATS", "RunPlan", "MatrixView", "CombinePlans", "Report", "load",
           "select", "open_ledger", "plan_run", "seeds_plan", "calibrate", "slot_count", "run",
           "runtime", "matrix_view", "failed", "estimates", "export_ledger", "forget",
           "forget_plan", "Forgotten", "with_pruning", "with_budget", "check_runnable",
           "script_marks", "combine_plans", "run_combined", "report", "summarize",
           "launch_paths"]

EXPORT_FORMATS = exports.FORMATS


@dataclass(frozen=True)
class RunPlan:
    """What a run would do: what runs, what is skipped as done, the slots it runs on (None: a
    Ray cluster decides, or nothing has a known duration to spread) and the estimate."""

    experiments: tuple[Experiment, ...]
    to_run: tuple[Experiment, ...]
    statuses: Mapping[str, str]
    slots: int | None
    estimate_s: float | None
    unknown: int  # experiments to run without an estimate
    launch: Mapping[str, str] = field(default_factory=dict)  # model -> how it starts
    seeds: str = ""  # the repeats in words: fixed, or the race and its budget (seeds_plan)
    estimate_max_s: float | None = None  # a race: the estimate were every option to need max

    @property
    def total(self) -> int:
        return len(self.experiments)

    @property
    def skipped(self) -> int:
        return self.total - len(self.to_run)


@dataclass(frozen=True)
class MatrixView:
    """The matrix with its ledger statuses and estimates, over the slots a run would have."""

    experiments: tuple[Experiment, ...]
    statuses: Mapping[str, str]
    estimates: Mapping[str, float | None]
    slots: int | None
    problems: tuple[str, ...] = ()  # unreadable ledger cells, per row (read as missing)
    launch: Mapping[str, str] = field(default_factory=dict)  # model -> how it starts


@dataclass
class CombinePlans:
    """`--combine-best`: the plans with winners to run, and a note per model without any."""

    plans: list[combine.Plan]
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """`--summary`, `--export`, `--plots`: the summary, its tables and what was written."""

    summary: Summary
    tables: list[ReportTable]
    written: list[str] = field(default_factory=list)  # one line per file or folder written
    stdout: str | None = None  # the export asked for on standard output (`-`), for the ui


# A live view for a run: given the plan and the slot count, or None to run quietly.
DisplayFactory = Callable[[RunPlan, int], Display]


def load(config: str | Path, overrides: Sequence[str] = (), sweeps: Sequence[str] = ()
         ) -> Settings:
    """The master config with `--set` overrides and `--sweep` categories (load_settings)."""
    return load_settings(config, overrides, sweeps)


def select(settings: Settings, models: Sequence[str] | None = None,
           categories: Sequence[str] | None = None) -> list[Experiment]:
    return build_matrix(settings, models or None, categories or None)


def estimates(settings: Settings, experiments: Sequence[Experiment],
              ledger: Ledger | None = None) -> dict[str, float | None]:
    return estimate_durations((ledger or open_ledger(settings)).rows(), experiments,
                              pruning=settings.execution.pruning.on,
                              calibration=calibrated(settings.system.runs_dir))


def plan_run(settings: Settings, experiments: Sequence[Experiment], rerun: bool = False,
             executor: str | None = None, slots: int | None = None,
             ledger: Ledger | None = None) -> RunPlan:
    """With adaptive repeats, what runs first is each option's `min` seeds (the race adds seeds
    as verdicts need them, up to `max`: `estimate_max_s` is that worst case)."""
    ledger = ledger or open_ledger(settings)
    statuses = ledger.statuses(e.id for e in experiments)
    todo = [e for e in experiments if rerun or statuses.get(e.id) not in FINAL]
    rule = settings.execution.race
    upto: list[Experiment] = []
    if rule is not None and not _fixed(experiments):
        # the race's plan so far: every option's first seeds, and the seeds it added
        upto = todo
        experiments = [e for e in experiments if e.repeat < rule.min_seeds or e.id in statuses]
        todo = [e for e in todo if e.repeat < rule.min_seeds]
    est = estimates(settings, upto or todo, ledger)
    now = {e.id for e in todo}
    known = [v for i, v in est.items() if v is not None and i in now]
    known_max = [v for v in est.values() if v is not None]
    if slots is None and known_max:  # only to spread known durations (may run nvidia-smi)
        slots = slot_count(settings, executor)
    return RunPlan(tuple(experiments), tuple(todo), statuses, slots,
                   spread(known, slots),
                   len(todo) - len(known), launch_paths(settings, experiments, executor),
                   seeds_plan(settings),
                   spread(known_max, slots) if upto else None)


def seeds_plan(settings: Settings) -> str:
    """How many seeds each option runs, in words, with the budget: what a run's confirmation
    and --matrix say before anything runs."""
    execution = settings.execution
    rule = execution.race
    if rule is not None:
        text = (f"adaptive repeats: {rule.min_seeds} to {rule.max_seeds} paired seeds per "
                f"option, verdicts at {rule.confidence:.0%} (the first {rule.min_seeds} now, "
                "more where a verdict is open)")
    elif execution.repeats > 1:
        text = f"fixed repeats: {execution.repeats} paired seeds per option"
    else:
        text = "one run per option (noise unknown)"
    if execution.budget_s:
        text += f"; budget {fmt_duration(execution.budget_s)}"
    return text


PRELOADED = "preloaded server"


def launch_paths(settings: Settings, experiments: Sequence[Experiment],
                 executor: str | None = None) -> dict[str, str]:
    """Per model, how its experiments would start: forked from the preloaded server,
    or a plain subprocess and why, decided as the launcher decides (run/preload.py), so
    `--matrix` and `--dry-run` say it before anything runs."""
    kind = executor or settings.execution.executor
    out: dict[str, str] = {}
    for e in experiments:
        if e.model not in out:
            out[e.model] = _launch_path(settings, e, kind)
    return out


def _launch_path(settings: Settings, experiment: Experiment, kind: str) -> str:
    mark = settings.model(experiment.model).script_mark
    if mark is not None:
        return mark
    if kind == "ray":
        return "plain subprocess (Ray tasks start plain)"
    if kind == "slurm":
        from hyperparameter_system.run.slurm_executor import job_options

        return f"a Slurm job each: sbatch {' '.join(job_options(settings))}"
    if not settings.execution.preload:
        return "plain subprocess (execution.preload off)"
    launch = launcher.plan(experiment, settings, 1)
    if preload.forks(launch.argv, launch.cwd, settings.execution.preload_all):
        return PRELOADED
    if exec_plan.offered(launch.argv, launch.cwd):
        return f"{PRELOADED} (the shell script's exec plan)"
    if any(part.endswith(".sh") for part in launch.argv[:2]):
        return "plain subprocess (shell script)"
    if preload.python_script(launch.argv) is not None:
        return f"plain subprocess (preload auto: {preload.ENGINE} alone)"
    return "plain subprocess (not `python <script>.py`)"


def slot_count(settings: Settings, executor: str | None = None) -> int | None:
    """How many experiments run at once: the local slots as planned (GPU caps included); on
    Ray, max_parallel, or None when that is 1 ("as many as the cluster holds": unknown here)."""
    execution = settings.execution
    kind = executor or execution.executor
    if kind == "ray":
        return execution.max_parallel if execution.max_parallel > 1 else None
    if kind == "slurm":
        return execution.slurm.max_jobs or execution.max_parallel
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
    rows = [r for r in open_ledger(settings).rows() if r.status in STOPPED]
    stopped = {r.id for r in rows}
    chosen = [e for e in seen_matrix(settings, rows) if e.id in stopped] if rows else []
    _check_entries(settings, chosen)
    return chosen


def check_runnable(settings: Settings, models: Iterable[str]) -> None:
    """A run refuses a model whose script cannot start, naming the file, before anything is
    launched (views only mark it: launch_paths, script_marks)."""
    for name in dict.fromkeys(models):
        settings.model(name).runnable()


def script_marks(settings: Settings, models: Iterable[str] | None = None) -> list[str]:
    """`<model>: script missing (...)` for each model (default: the enabled ones) whose script
    cannot start: what a view says of it."""
    names = list(models) if models is not None else [m.name for m in settings.models
                                                      if m.enabled]
    return [f"{name}: {settings.model(name).script_mark}; a run refuses it"
            for name in dict.fromkeys(names) if settings.model(name).script_mark]


def _check_entries(settings: Settings, experiments: Sequence[Experiment]) -> None:
    """Before launching what was picked from the ledger: a problem of its (disabled) model or
    category, such as a script removed since, is told now, not once per launch."""
    for name in dict.fromkeys(e.model for e in experiments):
        settings.model(name).checked().runnable()
    for name in dict.fromkeys(e.category for e in experiments):
        if any(c.name == name for c in settings.categories):
            settings.category(name).checked()


def matrix_view(settings: Settings, experiments: Sequence[Experiment],
                executor: str | None = None) -> MatrixView:
    """The matrix with ledger statuses; its estimate over the slots a run would really have."""
    ledger = open_ledger(settings)
    statuses = ledger.statuses(e.id for e in experiments)
    rows = ledger.rows()
    est = estimate_durations(rows, experiments, pruning=settings.execution.pruning.on,
                             calibration=calibrated(settings.system.runs_dir))
    # the slots only matter to spread known durations (finding GPUs may run nvidia-smi)
    slots = slot_count(settings, executor) if any(v is not None for v in est.values()) else None
    return MatrixView(tuple(experiments), statuses, est, slots, tuple(row_problems(rows)),
                      launch_paths(settings, experiments, executor))


def runtime(settings: Settings, kind: str) -> tuple[list[devices.Slot], Dispatch]:
    """The slots and the way one launch runs on them: local processes, Ray tasks, Slurm jobs."""
    if kind == "slurm":
        from hyperparameter_system.run.slurm_executor import slurm_dispatch, slurm_slots

        return slurm_slots(settings), slurm_dispatch(settings)
    if kind == "ray":
        from hyperparameter_system.run.ray_executor import ray_dispatch, ray_slots

        return ray_slots(settings), ray_dispatch(settings)
    return local_slots(settings), local_dispatch(settings)


def run(settings: Settings, experiments: Sequence[Experiment], rerun: bool = False,
        executor: str | None = None, display: DisplayFactory | None = None) -> RunResult:
    """Run the selection to its end; Ctrl-C ends the children and leaves it resumable."""
    check_runnable(settings, (e.model for e in experiments))
    kind = executor or settings.execution.executor
    if kind != "ray":  # on Ray the nodes write the runs (a runtime env may ship the project)
        launcher.check_outputs(settings)  # an unwritable runs_dir: one line, nothing launched
    ledger = open_ledger(settings, create=True)
    slots, dispatch = runtime(settings, kind)
    stopper = None
    if settings.execution.pruning.on:  # each baseline first: it sets its pools' bar
        from hyperparameter_system.run.studies import PoolPruner, baselines_first

        experiments = baselines_first(experiments)
    race = settings.execution.race is not None and not _fixed(experiments)
    plan = plan_run(settings, experiments, rerun, kind, slots=len(slots), ledger=ledger)
    if settings.execution.pruning.on:
        stopper = PoolPruner(settings, experiments, to_the_end=_rerun_pruned(plan, rerun))
    view = display(plan, len(slots)) if display is not None else None
    engine = Executor(settings, ledger, slots, dispatch, view, stopper=stopper)
    with view if view is not None else nullcontext():
        if not race:
            return engine.run(experiments, rerun)
        if rerun:
            ledger.reset(e.id for e in experiments)
        source = RaceSource(settings, experiments, ledger, engine.stop)
        result = engine.run_source(source)
    result.undecided = source.undecided()
    result.over_budget = len(source.over_budget)
    return result


def _fixed(experiments: Sequence[Experiment]) -> bool:
    """A selection the race does not choose seeds for: one without a baseline to pair with
    (combined configs, whose seeds are fixed; failed runs picked to rerun)."""
    return not any(e.category == BASELINE for e in experiments)


def _rerun_pruned(plan: RunPlan, rerun: bool) -> set[str]:
    """`--rerun` of pruned experiments trains them to the end (the README's promise): the pool's
    pruner would otherwise stop them again, as it did the first time."""
    if not rerun:
        return set()
    return {e.id for e in plan.to_run if plan.statuses.get(e.id) == Status.PRUNED}


def with_pruning(settings: Settings, rule: str | None) -> Settings:
    """`--pruning RULE`: execution.pruning.rule for this invocation only."""
    if rule is None:
        return settings
    pruning = replace(settings.execution.pruning, rule=rule)
    return replace(settings, execution=replace(settings.execution, pruning=pruning))


def calibrate(settings: Settings, experiments: Sequence[Experiment]) -> list[str]:
    """One short run (one epoch) of each model and shape that has no estimate yet, so a new
    matrix's estimates and budget have figures (run/calibrate.py); one line each."""
    from hyperparameter_system.run.calibrate import calibrate as run_calibrations

    launcher.check_outputs(settings)
    slots, dispatch = runtime(settings, "local")
    return run_calibrations(settings, experiments, open_ledger(settings), dispatch, slots[0])


def with_budget(settings: Settings, budget: str | None) -> Settings:
    """`--budget 8h`: execution.budget for this invocation only."""
    if budget is None:
        return settings
    try:
        seconds = parse_duration(budget)
    except ValueError as exc:
        raise HpsysError(f"--budget {budget}", str(exc)) from None
    return replace(settings, execution=replace(settings.execution, budget_s=seconds))


@dataclass(frozen=True)
class Forgotten:
    """`--forget`: rows deleted, rows kept because a live runner runs them, rows selected."""

    forgotten: int
    running: int
    selected: int
    would: tuple[str, ...] = ()  # under dry_run: one line per row it would delete


def forget_plan(settings: Settings, models: Sequence[str] | None = None,
                categories: Sequence[str] | None = None, failed_only: bool = False,
                searches: Sequence[str] | None = None) -> Forgotten:
    """What `forget` would delete (`--forget --dry-run`), deleting nothing."""
    ledger = open_ledger(settings)
    rows = _forgettable(ledger, models, [*(categories or ()), *(searches or ())], failed_only)
    held = ledger.held([r.id for r in rows], settings.execution.stale_after_s)
    would = tuple(f"{r.model} {r.category} {r.run_name or r.label} ({r.status}, {r.id})"
                  for r in rows if r.id not in held)
    return Forgotten(len(would), len(held), len(rows), would)


def _forgettable(ledger: Ledger, models: Sequence[str] | None, categories: Sequence[str] | None,
                 failed_only: bool) -> list[Row]:
    """The rows of the selection: `categories` holds category and search names alike (their
    names never meet)."""
    return [r for r in ledger.rows()
            if (not models or r.model in models) and (not categories or r.category in categories)
            and (not failed_only or r.status in STOPPED)]


def forget(settings: Settings, models: Sequence[str] | None = None,
           categories: Sequence[str] | None = None, failed_only: bool = False,
           searches: Sequence[str] | None = None) -> Forgotten:
    """Delete the ledger rows of the selection (models, categories or searches, whose names
    never meet; `failed_only`: only those whose last attempt failed, timed out or was stopped),
    never a row a live runner is running nor the ledger file. A search's study keeps its
    trials. No selection at all forgets nothing: that is the caller's to refuse."""
    ledger = open_ledger(settings)
    rows = _forgettable(ledger, models, [*(categories or ()), *(searches or ())], failed_only)
    gone, running = ledger.forget([r.id for r in rows], settings.execution.stale_after_s)
    return Forgotten(gone, running, len(rows))


def export_ledger(settings: Settings, path: str | Path) -> tuple[int, str | None]:
    """`--export-ledger PATH`: every row as CSV; the rows written and, for `-`, the text (the
    ui puts it on standard output)."""
    where = f"--export-ledger {path}"
    ledger = open_ledger(settings)
    with _writing(where):
        target = output_file(where, path)
        if target is None:
            text, count = ledger.csv_text()
            return count, text
        return ledger.export_csv(target), None


def combine_plans(settings: Settings, models: Sequence[str] | None = None) -> CombinePlans:
    """`--combine-best`: each model's combined winners; a note for a model without any."""
    plans = [m.combined.plan for m in summarize(settings).models
             if m.combined and (not models or m.model in models)]
    if not plans:
        raise HpsysError("--combine-best", "no model has finished category options to combine; "
                         "run the matrix first (--all)")
    notes = [f"{p.model}: no category has a winner that beat the baseline (a tie at the top is "
             "no winner); its base config stays the best, nothing to combine"
             for p in plans if not p.applied]
    return CombinePlans([p for p in plans if p.applied], notes)


def run_combined(settings: Settings, plans: Sequence[combine.Plan], rerun: bool = False,
                 executor: str | None = None,
                 display: DisplayFactory | None = None) -> RunResult:
    """Save and run the combined configs of `plans` (from combine_plans)."""
    experiments = [e for p in plans for e in p.experiments]
    _check_entries(settings, experiments)
    for p in plans:
        combine.save_config(p)
    return run(settings, experiments, rerun=rerun, executor=executor, display=display)


def report(settings: Settings, export: Sequence[str] | None = None,
           plots: str | Path | None = None) -> Report:
    """The summary and its tables, written as `export` (FORMAT, PATH) and `plots` (DIR)."""
    data = summarize(settings)
    out = Report(data, tables(data))
    if export:
        fmt, path = export
        extra = study_figures(settings) if fmt == "html" and settings.searches else ()
        with _writing(f"--export {fmt} {path}"):
            if str(path) == STDOUT:
                out.stdout = exports.render(data, fmt, extra)
            else:
                exports.export(data, fmt, Path(path), extra)
                out.written.append(f"wrote the {fmt} report to {path}")
    if plots:
        with _writing(f"--plots {plots}"):
            files = exports.write_plots(data, Path(plots))
        out.written.append(f"wrote {len(files)} plot(s) to {plots}")
    return out


def summarize(settings: Settings) -> Summary:
    """The summary of the current matrix (its `metric_missing` says when `system.metric` names
    a key no finished result has)."""
    return collect(settings)


@contextmanager
def _writing(where: str) -> Iterator[None]:
    """A report that cannot be written (disk full, permissions) is one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise HpsysError(where, f"cannot write: {exc.strerror or exc}") from None

"""The runner's API: what the CLI flags and the interactive menu both call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hyperparameter_system import console, devices
from hyperparameter_system.errors import HpsysError
from hyperparameter_system.estimates import estimate_durations
from hyperparameter_system.executor import Executor, RunResult, local_dispatch
from hyperparameter_system.hyperparameter_configs import Experiment, build_matrix
from hyperparameter_system.ledger import Ledger
from hyperparameter_system.settings import Settings, load_settings

__all__ = ["load", "select", "ledger", "plan_run", "slot_count", "run", "show_matrix", "failed",
           "estimates", "export_ledger"]


def load(config: str | Path, overrides: Sequence[str] = ()) -> Settings:
    return load_settings(config, overrides)


def select(settings: Settings, models: Sequence[str] | None = None,
           categories: Sequence[str] | None = None) -> list[Experiment]:
    return build_matrix(settings, models or None, categories or None)


def ledger(settings: Settings) -> Ledger:
    return Ledger(settings.system.ledger)


def estimates(settings: Settings, experiments: Sequence[Experiment]) -> dict[str, float | None]:
    return estimate_durations(ledger(settings).rows(), experiments)


def plan_run(settings: Settings, experiments: Sequence[Experiment], rerun: bool = False,
             executor: str | None = None, slots: int | None = None) -> dict:
    """What a run would do: counts of what runs and what is skipped as done, the slots it runs
    on (None: a Ray cluster decides) and the estimate, the known durations spread over them."""
    statuses = ledger(settings).statuses(e.id for e in experiments)
    todo = [e for e in experiments if rerun or statuses.get(e.id) != "done"]
    est = estimates(settings, todo)
    known = [v for v in est.values() if v is not None]
    slots = slots or slot_count(settings, executor)
    return {"experiments": list(experiments), "total": len(experiments), "to_run": todo,
            "skipped": len(experiments) - len(todo), "slots": slots,
            "estimate_s": (sum(known) / slots) if known and slots else None,
            "unknown": len(est) - len(known), "statuses": statuses}


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


STOPPED = ("failed", "timeout", "interrupted")


def failed(settings: Settings) -> list[Experiment]:
    """Experiments of this config whose last attempt failed, timed out or was stopped: in the
    default matrix, or of a disabled model or category the user picked to run."""
    book = ledger(settings)
    rows = [r for status in STOPPED for r in book.rows(status=status)]
    if not rows:
        return []
    ran_models, ran_categories = {r.model for r in rows}, {r.category for r in rows}
    models = [m.name for m in settings.models if m.enabled or m.name in ran_models]
    categories = [c.name for c in settings.categories if c.enabled or c.name in ran_categories]
    stopped = {r.id for r in rows}
    return [e for e in build_matrix(settings, models, categories) if e.id in stopped]


def show_matrix(settings: Settings, experiments: Sequence[Experiment]) -> None:
    statuses = ledger(settings).statuses(e.id for e in experiments)
    console.print_matrix(settings, experiments, statuses, estimates(settings, experiments))


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
    display = console.RunDisplay(len(plan["to_run"]), plan["skipped"], plan["estimate_s"],
                                 len(slots)) if show else None
    engine = Executor(settings, book, slots, dispatch, display)
    if display is None:
        return engine.run(experiments, rerun)
    with display:
        return engine.run(experiments, rerun)


def export_ledger(settings: Settings, path: str | Path) -> int:
    return ledger(settings).export_csv(path)

"""The ui's rich output: errors and warnings, the matrix, the dry run, the live progress display
and a run's last line. The summary's printers live in ui/summary_view.py (imported here, so
`screen.console.print_summary` and the rest stay where callers find them); both print through the
Console objects of ui/screen.py, looked up when they print (tests swap them)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from hyperparameter_system.core.durations import fmt_duration
from hyperparameter_system.core.states import FINAL, Status
from hyperparameter_system.core.text import printable
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.report.format import fmt_metric
from hyperparameter_system.run.launcher import tail
from hyperparameter_system.store.estimates import spread
from hyperparameter_system.ui import screen
from hyperparameter_system.ui.screen import error, info, warn  # noqa: F401 - re-exported
from hyperparameter_system.ui.summary_view import (  # noqa: F401 - re-exported
    PathText,
    other_configs_line,
    print_combined_plans,
    print_studies,
    print_summary,
    print_tables,
)

if TYPE_CHECKING:
    from hyperparameter_system.app.api import RunPlan
    from hyperparameter_system.app.search_api import SearchPlan
    from hyperparameter_system.config.settings import Settings
    from hyperparameter_system.matrix.experiments import Experiment
    from hyperparameter_system.run.tally import RunResult
    from hyperparameter_system.store.outcomes import Outcome


MATRIX_TABLE_ROWS = 300  # a model with more runs is listed as plain lines (fast), not a Table
STATUS_STYLE = {Status.DONE: "green", Status.PRUNED: "magenta", Status.FAILED: "red",
                Status.TIMEOUT: "red", Status.INTERRUPTED: "yellow", Status.RUNNING: "cyan",
                Status.PENDING: "dim"}


def status_text(status: str | None) -> Text:
    status = status or "new"
    return Text(status, style=STATUS_STYLE.get(status, "dim"))


def print_matrix(settings: Settings, experiments: Sequence[Experiment],
                 statuses: Mapping[str, str], estimates: Mapping[str, float | None],
                 slots: int | None = None, launch: Mapping[str, str] | None = None) -> None:
    """Models x categories with option counts and how each model's experiments start (`launch`:
    api.launch_paths; by the configured executor when not given), then each model's project
    and its runs; the estimate spreads over `slots`, the run's real slot count (None: unknown,
    as on a Ray cluster that decides)."""
    if launch is None:
        from hyperparameter_system.app.api import launch_paths

        launch = launch_paths(settings, experiments)
    _print_grid(settings.path.name, experiments, launch)
    for model in dict.fromkeys(e.model for e in experiments):
        _print_project([e for e in experiments if e.model == model], statuses, estimates)
    screen.console.print(_matrix_total(experiments, statuses, estimates, slots))
    from hyperparameter_system.app.api import seeds_plan

    screen.console.print(f"seeds: {seeds_plan(settings)}", soft_wrap=True)


def _print_grid(config_name: str, experiments: Sequence[Experiment],
                launch: Mapping[str, str]) -> None:
    """One row per model: its experiments in each category, their total, how they start."""
    models = list(dict.fromkeys(e.model for e in experiments))
    cats = list(dict.fromkeys(e.category for e in experiments))
    grid = Table(title=f"Experiment matrix: {config_name}", show_lines=False)
    grid.add_column("model")
    for cat in cats:
        grid.add_column(cat, justify="right")
    grid.add_column("total", justify="right", style="bold")
    grid.add_column("launch")
    for model in models:
        counts = Counter(e.category for e in experiments if e.model == model)
        grid.add_row(model, *(str(counts.get(c, 0)) for c in cats), str(sum(counts.values())),
                     launch[model])
    screen.console.print(grid)


def _print_project(mine: Sequence[Experiment], statuses: Mapping[str, str],
                   estimates: Mapping[str, float | None]) -> None:
    """One model's W&B project and its runs, as plain lines past MATRIX_TABLE_ROWS."""
    header = ("#", "id", "category", "run name", "status", "estimate")
    title = f"Project: {mine[0].project} ({len(mine)} runs)"
    if len(mine) > MATRIX_TABLE_ROWS:
        _plain_table(title, header, [
            (str(e.index), e.id, e.category, e.run_name, statuses.get(e.id) or "new",
             fmt_duration(estimates.get(e.id))) for e in mine])
        return
    table = Table(title=title, title_justify="left")
    for col in header:
        table.add_column(col)
    for e in mine:
        table.add_row(str(e.index), e.id, e.category, e.run_name,
                      status_text(statuses.get(e.id)), fmt_duration(estimates.get(e.id)))
    screen.console.print(table)


def _matrix_total(experiments: Sequence[Experiment], statuses: Mapping[str, str],
                  estimates: Mapping[str, float | None], slots: int | None) -> str:
    """How many there are, done, pruned and left to run, and how long those left take on
    `slots` (or why that is not known yet)."""
    total_est = [estimates.get(e.id) for e in experiments if statuses.get(e.id) not in FINAL]
    known = [t for t in total_est if t is not None]
    done = sum(1 for e in experiments if statuses.get(e.id) == Status.DONE)
    pruned = sum(1 for e in experiments if statuses.get(e.id) == Status.PRUNED)
    line = f"Total: {len(experiments)} experiments, {done} done"
    line += f", {pruned} pruned" if pruned else ""
    line += f", {len(total_est)} to run"
    total = spread(known, slots)
    if total is not None:
        unknown = len(total_est) - len(known)
        line += f"; estimated {fmt_duration(total)} on {slots} slot(s)"
        line += f" ({unknown} without an estimate)" if unknown else ""
    elif known:
        line += "; time unknown (the Ray cluster decides how many run at once)"
    elif total_est:
        line += ("; no time estimate yet (nothing like them has run; --calibrate runs one "
                 "epoch of each)")
    return line


def _plain_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned plain lines, written as they are: rich takes seconds to lay out a table of
    thousands of rows, and still a while to wrap that many lines of text."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in (header, *rows)]
    screen.console.file.write("\n".join([title, *lines, ""]))
    screen.console.file.flush()


class RunDisplay:
    """Overall bar (done/failed counts, ETA) and one line per running experiment with its epoch."""

    def __init__(self, total: int, skipped: int, eta_s: float | None = None,
                 slots: int = 1, metric: str | None = None) -> None:
        self.total, self.skipped, self.slots = total, skipped, max(1, slots)
        self.metric = metric  # the headline key: a "done" line shows its value
        self.eta_s, self.since = eta_s, time.time()  # eta_s: from the ledger's past durations
        self.counts: Counter[str] = Counter()
        self.durations: list[float] = []  # of this run's finished experiments
        self.running: dict[str, tuple[Experiment, float, str]] = {}
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[eta]}"),
            console=screen.console, transient=False)
        self.task = self.progress.add_task("experiments", total=max(total, 1), counts="",
                                           eta="")
        self.live = Live(self._render(), console=screen.console, refresh_per_second=4,
                         transient=False, redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> RunDisplay:
        if not self.total:  # nothing to run: no empty bar; print_run_result tells the skips
            return self
        if self.skipped:
            screen.console.print(f"skipping {self.skipped} experiment(s) already done")
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if not self.total:
            return
        self.live.update(self._render())
        self.live.__exit__(*exc)

    def started(self, experiment: Experiment, run_dir: str, slot: str) -> None:
        self.running[experiment.id] = (experiment, time.time(), f"{slot}|{run_dir}")
        if len(self.running) + sum(self.counts.values()) > self.total:  # a race adds seeds
            self.total += 1
            self.progress.update(self.task, total=self.total)
        self.refresh()

    def finished(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None:
        """One attempt ended; only the final one counts (retries don't overshoot), and a
        stopped one is no failure: the bar advances only for what is done or failed."""
        self.running.pop(experiment.id, None)
        if final:
            status = outcome.status  # a timeout is counted as such, as the final line does
            self.counts[status] += 1
            if status != Status.INTERRUPTED:
                self.durations.append(outcome.duration_s or 0.0)
                self.progress.advance(self.task)
        style = STATUS_STYLE.get(outcome.status, "")
        # a success's note: OOM halving; an error may quote the log (core.text: made printable)
        detail = printable(outcome.error or getattr(outcome, "note", None))
        reason = f" ({detail})" if detail else ""
        reason += "" if final else ", retrying"
        value = headline(outcome.result or {}, self.metric) if self.metric else None
        if outcome.status == Status.DONE and value is not None:
            reason = f", {self.metric} {fmt_metric(value)}{reason}"
        self.live.console.print(Text(
            f"{outcome.status:<11} {experiment.describe()} in "
            f"{fmt_duration(outcome.duration_s)}{reason}", style=style), soft_wrap=True)
        self.refresh()

    def message(self, text: str) -> None:
        self.live.console.print(text, soft_wrap=True)

    def refresh(self) -> None:
        self.live.update(self._render())

    def eta(self) -> str:
        """Time left: from this run's own durations once one has finished (the ledger's past
        ones may be of other configs), else from the ledger's, else unknown."""
        now = time.time()
        left = self.total - sum(self.counts.values())
        if self.counts[Status.INTERRUPTED]:
            return f"stopped after {fmt_duration(now - self.since)}"
        if left <= 0:
            return f"took {fmt_duration(now - self.since)}"
        if self.durations:
            per = sum(self.durations) / len(self.durations)
            busy = [now - since for _, since, _ in list(self.running.values())]
            work = sum(max(0.0, per - b) for b in busy) + max(0, left - len(busy)) * per
            return f"ETA {fmt_duration(work / self.slots)}"
        if self.eta_s is not None:
            left_s = max(0.0, self.eta_s - (now - self.since))
            return f"ETA {fmt_duration(left_s)} (from past durations)"
        return "ETA ?"

    def _render(self) -> Group:
        counts = (f"[green]{self.counts[Status.DONE]} done[/] "
                  f"[red]{self.counts[Status.FAILED]} failed[/]")
        for status, words, style in ((Status.PRUNED, "pruned", "magenta"),
                                     (Status.TIMEOUT, "timed out", "red"),
                                     (Status.INTERRUPTED, "interrupted", "yellow")):
            if self.counts[status]:
                counts += f" [{style}]{self.counts[status]} {words}[/]"
        self.progress.update(self.task, counts=counts, eta=self.eta())
        rows = Table.grid(padding=(0, 2))
        for exp, since, where in list(self.running.values()):
            slot, run_dir = where.split("|", 1)
            rows.add_row(Text(f"[{slot}]", style="cyan"), printable(exp.describe()),
                         latest_epoch(run_dir, (getattr(exp, "config", None) or {}).get("epochs")),
                         fmt_duration(time.time() - since))
        return Group(self.progress, rows)


def latest_epoch(run_dir: str, epochs: object = None) -> str:
    """`epoch 3/10 val_f1 0.91` from the last line of metrics.jsonl, read from its end; the
    total is the experiment config's `epochs` (left out when it is not a number)."""
    try:
        row = json.loads(tail(Path(run_dir) / "metrics.jsonl", lines=1, max_bytes=4096))
    except ValueError:  # not there yet (""), or a line half written
        return "starting"
    if not isinstance(row, dict):
        return "starting"
    f1 = row.get("val_f1")
    total = f"/{epochs}" if isinstance(epochs, int) and not isinstance(epochs, bool) else ""
    return printable(f"epoch {row.get('epoch')}{total}") + (
        f" val_f1 {fmt_metric(f1)}" if isinstance(f1, float) else "")


def interactive() -> bool:
    return sys.stdin.isatty()


def print_plan(plan: RunPlan) -> None:
    """--dry-run: every selected experiment, whether it would run or be skipped as done (or
    pruned), then how each model's experiments would start (preloaded or plain)."""
    todo = {e.id for e in plan.to_run}
    table = Table(title=f"Would run {len(todo)} of {plan.total} "
                        f"({plan.skipped} already done, skipped)")
    for col in ("#", "id", "model", "category", "run name", "status", "action"):
        table.add_column(col)
    for e in plan.experiments:
        status = plan.statuses.get(e.id)
        skip = "skip (pruned)" if status == Status.PRUNED else "skip (done)"
        table.add_row(str(e.index), e.id, e.model, e.category, e.run_name, status_text(status),
                      Text("run") if e.id in todo else Text(skip, style="dim"))
    screen.console.print(table)
    for model, path in plan.launch.items():
        screen.console.print(f"launch: {model}: {path}", soft_wrap=True)
    if plan.estimate_s is not None:
        screen.console.print(f"estimated time: {fmt_duration(plan.estimate_s)} on "
                      f"{plan.slots} slot(s)")
    elif plan.slots is None and plan.unknown < len(plan.to_run):  # durations known, slots not
        screen.console.print("estimated time: unknown (the Ray cluster decides how many run "
                             "at once)")
    if plan.estimate_max_s is not None:
        screen.console.print(f"up to {fmt_duration(plan.estimate_max_s)} if every option "
                             "needs max seeds")
    if plan.seeds:
        screen.console.print(f"seeds: {plan.seeds}", soft_wrap=True)


def print_search_plan(plan: SearchPlan) -> None:
    """--search NAME --dry-run: the trials each study would run, on how many slots, how long."""
    screen.console.print(f"Would run {plan.trials} trial(s) of {plan.search} on {plan.slots} "
                         "slot(s)", soft_wrap=True)
    for model, left in plan.left.items():
        screen.console.print(f"  {plan.search}/{model}: {left} trial(s) left", soft_wrap=True)
    if plan.estimate_s is not None:
        screen.console.print(f"estimated time: {fmt_duration(plan.estimate_s)}")


RESUME_HINT = "run the same command again to resume"


def resume_hint(rerun: bool) -> str:
    """How to resume a stopped run: the same command again, unless it had --rerun, which
    would redo what is done by now too."""
    return "run it again without --rerun to resume" if rerun else RESUME_HINT


def print_run_result(result: RunResult, resume_hint: str = RESUME_HINT) -> None:
    """One line of counts; after Ctrl-C, how to resume (the menu words it for its own use)."""
    if not (result.outcomes or result.interrupted or result.busy_elsewhere
            or result.done_elsewhere):
        screen.console.print(Text(f"nothing to run: {result.skipped_done} skipped (already done)",
                           style="green"))
        return
    parts = [f"{result.count(Status.DONE)} done"]
    if result.count(Status.PRUNED):
        parts.append(f"{result.count(Status.PRUNED)} pruned")
    parts += [f"{result.count(Status.FAILED)} failed", f"{result.count(Status.TIMEOUT)} timed out"]
    if result.count(Status.INTERRUPTED):
        parts.append(f"{result.count(Status.INTERRUPTED)} interrupted")
    if result.skipped_done:
        parts.append(f"{result.skipped_done} skipped (already done)")
    if result.done_elsewhere:
        parts.append(f"{result.done_elsewhere} done elsewhere (by another runner)")
    if result.busy_elsewhere:
        parts.append(f"{result.busy_elsewhere} running under another runner")
    style = "red" if result.count(Status.FAILED) + result.count(Status.TIMEOUT) else "green"
    screen.console.print(Text("run finished: " + ", ".join(parts), style=style))
    if result.interrupted:
        screen.console.print(Text(f"interrupted: stopped experiments are marked interrupted; "
                           f"{resume_hint}", style="yellow"))
    if result.over_budget:
        screen.console.print(Text(f"budget: {result.over_budget} seed(s) the race wanted were "
                                  "not launched (their estimated end passed execution.budget)",
                                  style="yellow"))
    for line in result.undecided:
        screen.console.print(Text(line, style="yellow"), soft_wrap=True)



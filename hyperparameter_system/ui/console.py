"""All rich output lives here: errors, tables, the live progress display, the summary."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from hyperparameter_system.core.text import printable
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.report.format import fmt_duration, fmt_metric
from hyperparameter_system.run.launcher import tail

if TYPE_CHECKING:
    from hyperparameter_system.app.api import RunPlan
    from hyperparameter_system.app.search import StudyStatus
    from hyperparameter_system.config.settings import Settings
    from hyperparameter_system.matrix.combine import Plan as CombinedPlan
    from hyperparameter_system.matrix.experiments import Experiment
    from hyperparameter_system.report.summary import Summary
    from hyperparameter_system.report.tables import ReportTable
    from hyperparameter_system.run.executor import RunResult
    from hyperparameter_system.run.launcher import Outcome

# Not a terminal (CI logs, pipes, `make demo | tee`): wide enough that run names are never cut.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False)

MATRIX_TABLE_ROWS = 300  # a model with more runs is listed as plain lines (fast), not a Table
STATUS_STYLE = {"done": "green", "failed": "red", "timeout": "red", "interrupted": "yellow",
                "running": "cyan", "pending": "dim"}


def error(message: str) -> None:
    """The one-line bad-input message (no traceback)."""
    err_console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def status_text(status: str | None) -> Text:
    status = status or "new"
    return Text(status, style=STATUS_STYLE.get(status, "dim"))


def print_matrix(settings: Settings, experiments: Sequence[Experiment],
                 statuses: Mapping[str, str], estimates: Mapping[str, float | None],
                 slots: int | None = None) -> None:
    """Models x categories with option counts, then each model's project and its runs; the
    estimate spreads over `slots`, the run's real slot count (None: unknown, as on a Ray
    cluster that decides)."""
    models = list(dict.fromkeys(e.model for e in experiments))
    cats = list(dict.fromkeys(e.category for e in experiments))
    grid = Table(title=f"Experiment matrix: {settings.path.name}", show_lines=False)
    grid.add_column("model")
    for cat in cats:
        grid.add_column(cat, justify="right")
    grid.add_column("total", justify="right", style="bold")
    for model in models:
        counts = Counter(e.category for e in experiments if e.model == model)
        grid.add_row(model, *(str(counts.get(c, 0)) for c in cats), str(sum(counts.values())))
    console.print(grid)
    header = ("#", "id", "category", "run name", "status", "estimate")
    for model in models:
        mine = [e for e in experiments if e.model == model]
        title = f"Project: {mine[0].project} ({len(mine)} runs)"
        if len(mine) > MATRIX_TABLE_ROWS:
            _plain_table(title, header, [
                (str(e.index), e.id, e.category, e.run_name, statuses.get(e.id) or "new",
                 fmt_duration(estimates.get(e.id))) for e in mine])
            continue
        table = Table(title=title, title_justify="left")
        for col in header:
            table.add_column(col)
        for e in mine:
            table.add_row(str(e.index), e.id, e.category, e.run_name,
                          status_text(statuses.get(e.id)), fmt_duration(estimates.get(e.id)))
        console.print(table)
    total_est = [estimates.get(e.id) for e in experiments if statuses.get(e.id) != "done"]
    known = [t for t in total_est if t is not None]
    done = sum(1 for e in experiments if statuses.get(e.id) == "done")
    line = f"Total: {len(experiments)} experiments, {done} done, {len(experiments) - done} to run"
    if known and slots:
        unknown = len(total_est) - len(known)
        line += f"; estimated {fmt_duration(sum(known) / slots)} on {slots} slot(s)"
        line += f" ({unknown} without an estimate)" if unknown else ""
    elif known:
        line += "; time unknown (the Ray cluster decides how many run at once)"
    elif total_est:
        line += "; no time estimate yet (nothing like them has run)"
    console.print(line)


def _plain_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned plain lines: rich takes seconds to lay out a table of thousands of rows."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in (header, *rows)]
    console.out("\n".join([title, *lines]), highlight=False)


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
            console=console, transient=False)
        self.task = self.progress.add_task("experiments", total=max(total, 1), counts="",
                                           eta="")
        self.live = Live(self._render(), console=console, refresh_per_second=4,
                         transient=False, redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> RunDisplay:
        if not self.total:  # nothing to run: no empty bar; print_run_result tells the skips
            return self
        if self.skipped:
            console.print(f"skipping {self.skipped} experiment(s) already done")
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if not self.total:
            return
        self.live.update(self._render())
        self.live.__exit__(*exc)

    def started(self, experiment: Experiment, run_dir: str, slot: str) -> None:
        self.running[experiment.id] = (experiment, time.time(), f"{slot}|{run_dir}")
        self.refresh()

    def finished(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None:
        """One attempt ended; only the final one counts (retries don't overshoot), and a
        stopped one is no failure: the bar advances only for what is done or failed."""
        self.running.pop(experiment.id, None)
        if final:
            status = outcome.status  # a timeout is counted as such, as the final line does
            self.counts[status] += 1
            if status != "interrupted":
                self.durations.append(outcome.duration_s or 0.0)
                self.progress.advance(self.task)
        style = STATUS_STYLE.get(outcome.status, "")
        # a success's note: OOM halving; an error may quote the log (core.text: made printable)
        detail = printable(outcome.error or getattr(outcome, "note", None))
        reason = f" ({detail})" if detail else ""
        reason += "" if final else ", retrying"
        value = headline(outcome.result or {}, self.metric) if self.metric else None
        if outcome.status == "done" and value is not None:
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
        if self.counts["interrupted"]:
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
        counts = f"[green]{self.counts['done']} done[/] [red]{self.counts['failed']} failed[/]"
        if self.counts["timeout"]:
            counts += f" [red]{self.counts['timeout']} timed out[/]"
        if self.counts["interrupted"]:
            counts += f" [yellow]{self.counts['interrupted']} interrupted[/]"
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
    """--dry-run: every selected experiment, whether it would run or be skipped as done."""
    todo = {e.id for e in plan.to_run}
    table = Table(title=f"Would run {len(todo)} of {plan.total} "
                        f"({plan.skipped} already done, skipped)")
    for col in ("#", "id", "model", "category", "run name", "status", "action"):
        table.add_column(col)
    for e in plan.experiments:
        table.add_row(str(e.index), e.id, e.model, e.category, e.run_name,
                      status_text(plan.statuses.get(e.id)),
                      Text("run") if e.id in todo else Text("skip (done)", style="dim"))
    console.print(table)
    if plan.estimate_s is not None:
        console.print(f"estimated time: {fmt_duration(plan.estimate_s)} on "
                      f"{plan.slots} slot(s)")
    elif plan.slots is None and plan.unknown < len(plan.to_run):  # durations known, slots not
        console.print("estimated time: unknown (the Ray cluster decides how many run at once)")


RESUME_HINT = "run the same command again to resume"


def resume_hint(rerun: bool) -> str:
    """How to resume a stopped run: the same command again, unless it had --rerun, which
    would redo what is done by now too."""
    return "run it again without --rerun to resume" if rerun else RESUME_HINT


def print_run_result(result: RunResult, resume_hint: str = RESUME_HINT) -> None:
    """One line of counts; after Ctrl-C, how to resume (the menu words it for its own use)."""
    if not (result.outcomes or result.interrupted or result.busy_elsewhere
            or result.done_elsewhere):
        console.print(Text(f"nothing to run: {result.skipped_done} skipped (already done)",
                           style="green"))
        return
    parts = [f"{result.count('done')} done", f"{result.count('failed')} failed",
             f"{result.count('timeout')} timed out"]
    if result.count("interrupted"):
        parts.append(f"{result.count('interrupted')} interrupted")
    if result.skipped_done:
        parts.append(f"{result.skipped_done} skipped (already done)")
    if result.done_elsewhere:
        parts.append(f"{result.done_elsewhere} done elsewhere (by another runner)")
    if result.busy_elsewhere:
        parts.append(f"{result.busy_elsewhere} running under another runner")
    style = "red" if result.count("failed") + result.count("timeout") else "green"
    console.print(Text("run finished: " + ", ".join(parts), style=style))
    if result.interrupted:
        console.print(Text(f"interrupted: stopped experiments are marked interrupted; "
                           f"{resume_hint}", style="yellow"))


# -- the summary (report.py computes it; this only renders it) -------------------------------

TERMINAL_SKIP: tuple[str, ...] = ()  # every column shows: the run name is what W&B shows
PATH_COLUMNS = ("log", "run folder", "W&B", "config")  # folded, never cut: they get copied
NAME_COLUMNS = ("option", "run name", "winner", "category", "model")  # folded, never cut
# left out, in this order, while a table is wider than the terminal (the exports keep them)
OPTIONAL_COLUMNS = ("epochs", "time", "significant", "std", "runs", "attempts", "of models")


class PathText(Text):
    """A path that wraps after a `/` (or a space) when it must wrap: never mid-name unless one
    name is wider than its column."""

    def wrap(self, console, width, *, justify=None, overflow=None, tab_size=8,  # noqa: ANN001
             no_wrap=None):
        from rich.containers import Lines

        text = self.plain
        if width <= 0 or len(text) <= width or "\n" in text:
            return super().wrap(console, width, justify=justify, overflow=overflow,
                                tab_size=tab_size, no_wrap=no_wrap)
        offsets, start = [], 0
        while len(text) - start > width:
            cut = max(text.rfind("/", start, start + width), text.rfind(" ", start, start + width))
            cut = cut + 1 if cut >= start and cut + 1 > start + 1 else start + width
            offsets.append(cut)
            start = cut
        return Lines(self.divide(offsets))


def _fits(t: ReportTable, keep: list[int], width: int) -> bool:
    """Whether the columns `keep` of `t`, at their natural widths, fit `width` (SIMPLE_HEAD:
    one space of padding each side)."""
    need = sum(max([len(t.headers[i]), *(len(printable(r[i])) for r in t.rows)]) + 2
               for i in keep)
    return need <= width


def _shown(t: ReportTable) -> bool:
    """A category table none of whose options has run (no ledger row, or one still pending):
    nothing of it ran, so it is
    named on one line (print_summary), not drawn as a table of "not run" rows."""
    if t.key != "ranking" or "status" not in t.headers:
        return True
    at = t.headers.index("status")
    return any(row[at] not in ("not run", "pending") for row in t.rows)


def print_tables(tables: Sequence[ReportTable]) -> None:
    """report.ReportTable rows: winners bold, deltas green when better and red when worse.
    Columns with nothing in them (std and significance without repeats) are left out, and the
    optional ones while the table is wider than the terminal (named in the caption); a table's
    note (why a category has no winner) is its caption, and its title a line above it (a
    table's own title wraps to the table's width). Names and paths fold, never cut. Every cell
    is made printable (a failure's reason and log tail quote the log: no escape sequence
    reaches the terminal)."""
    from rich import box

    for t in tables:
        keep = [i for i, h in enumerate(t.headers) if h not in TERMINAL_SKIP
                and any(row[i] not in ("", "-") for row in t.rows)]
        dropped = []
        for name in OPTIONAL_COLUMNS:
            if _fits(t, keep, console.width):
                break
            if name in t.headers and t.headers.index(name) in keep:
                keep.remove(t.headers.index(name))
                dropped.append(name)
        notes = [printable(t.note)] if t.note else []
        if dropped:
            notes.append(f"left out to fit {console.width} columns: {', '.join(dropped)} "
                         "(--export csv has every column)")
        console.print(Text(printable(t.title), style="bold"))  # wraps at the terminal only
        table = Table(box=box.SIMPLE_HEAD, caption="; ".join(notes) or None,
                      caption_justify="left")
        for i in keep:
            folded = t.headers[i] in PATH_COLUMNS or t.headers[i] in NAME_COLUMNS
            table.add_column(t.headers[i], overflow="fold" if folded else "ellipsis")
        for row, (winner, better) in zip(t.rows, t.tones, strict=True):
            tone = {True: "green", False: "red"}.get(better, "")
            table.add_row(*((PathText if t.headers[i] in PATH_COLUMNS else Text)(
                printable(row[i]), style=tone if t.toned(t.headers[i]) else
                "red" if "not honoured" in row[i] else "")
                for i in keep), style="bold" if winner else None)
        console.print(table)


def other_configs_line(summary: Summary, shown_any: bool) -> str | None:
    """Rows of another config (other --set values) in the ledger: how many, and the command
    that shows them. None when there are none."""
    others = summary.other_configs
    if not others:
        return None
    total = sum(o.count for o in others)
    lead = "no runs of this config yet; " if not shown_any else "also in the ledger: "
    parts = []
    for o in others[:3]:
        parts.append(f"{o.count} with {o.flags}" if o.sets else
                     f"{o.count} of an older base config (no --set tells it apart)")
    more = f" and {len(others) - 3} more config(s)" if len(others) > 3 else ""
    line = f"{lead}{total} run(s) of another config: {'; '.join(parts)}{more}"
    with_sets = [o for o in others if o.sets]
    if with_sets:
        line += f"; show them with --summary {with_sets[0].flags}"
    return line


def print_summary(summary: Summary, tables: Sequence[ReportTable]) -> None:
    """`--summary`: what ran (a category nothing of which ran is one line, not a table), then
    the best run and where to see it in W&B; runs of another --set config are told, with the
    --set that shows them."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "no runs yet"
    console.print(Text(f"Summary: headline metric {summary.metric} ({summary.metric_mode}); "
                       f"runs: {counts}", style="bold"), soft_wrap=True)
    others = other_configs_line(summary, bool(summary.counts))
    if others:
        console.print(Text(others, style="yellow"), soft_wrap=True)
    if summary.repeats > 1:
        console.print(f"{summary.repeats} runs per option: mean and std shown; 'n.s.' marks a "
                      "delta within two combined standard errors (not significant)",
                      soft_wrap=True)
    if not summary.counts:
        return
    unrun = [t for t in tables if not _shown(t)]
    print_tables([t for t in tables if _shown(t) and t.rows])
    if unrun:
        names = list(dict.fromkeys(t.category for t in unrun))
        console.print(Text(f"not run yet: {len(unrun)} category table(s) "
                           f"({', '.join(names)})", style="dim"), soft_wrap=True)
    if summary.unsynced:
        warn(f"W&B was unreachable for {len(summary.unsynced)} online run(s); they were logged "
             f"offline; upload them with: wandb sync {' '.join(summary.unsynced)}")
    best = summary.best
    if best is None:
        return
    named = best.label if best.label == best.run_name or not best.run_name else (
        f"{best.label} (run {best.run_name})")
    console.print(Text(printable(f"Best run: {best.model} / {best.category} / {named} = "
                                 f"{fmt_metric(best.metric)}"), style="bold green"),
                  soft_wrap=True)
    if best.link:
        console.print(f"  W&B: {best.link}", soft_wrap=True)
    elif best.sync_command:
        console.print(f"  offline W&B run in {best.run_dir}; upload it with: "
                      f"{best.sync_command}", soft_wrap=True)
    else:
        console.print(f"  W&B {best.wandb_mode}; outputs in {best.run_dir}", soft_wrap=True)


def print_combined_plans(plans: Sequence[CombinedPlan]) -> None:
    """What `--combine-best` applies per model, which key conflicts it settled, where it saved."""
    for p in plans:
        console.print(Text(f"combined winners for {p.model}", style="bold"))
        for pick in p.applied:
            console.print(f"  {pick.category}: {pick.label}", soft_wrap=True)
        for category, why in p.skipped:
            console.print(Text(f"  {category}: not applied ({why})", style="dim"), soft_wrap=True)
        for c in p.conflicts:
            console.print(Text(f"  conflict on {c.key}: {c.kept_category} keeps {c.kept_value!r}"
                               f" over {c.dropped_category}'s {c.dropped_value!r}",
                               style="yellow"), soft_wrap=True)
        console.print(f"  config: {p.config_path} (train: python codes/train.py --config "
                      f"{p.config_path})", soft_wrap=True)


def print_studies(studies: Sequence[StudyStatus]) -> None:
    """Per Optuna study: its trial counts, the best trial (or the Pareto front) with its
    params and experiment, the parameter importances and the best value over the trials."""
    for s in studies:
        counts = ", ".join(f"{n} {k}" for k, n in s.counts.items())
        console.print(Text(f"Study {s.study_name}: {counts}", style="bold"), soft_wrap=True)
        if not s.best:
            console.print("  no complete trial yet", style="dim")
            continue
        title = "Pareto front" if len(s.objectives) > 1 else "best trial"
        table = Table(title=f"{s.study_name}: {title}")
        for col in ("trial", *s.objectives, "params", "experiment"):
            table.add_column(col, overflow="fold")
        for t in s.best:
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in t.params.items())
            table.add_row(str(t.number), *(f"{v:.4f}" for v in t.values or []), params,
                          t.experiment_id or "-")
        console.print(table)
        if s.importances:
            console.print("  importance: " + ", ".join(
                f"{k} {v:.2f}" for k, v in s.importances.items()), soft_wrap=True)
        if s.history:
            shown = s.history[-8:]
            console.print("  best so far: " + "  ".join(f"t{n}={v:.4f}" for n, v in shown),
                          soft_wrap=True)

"""The summary on the terminal: its tables, the best run, the combined winners, the studies.

The report layer computes all of it; this only renders it. It prints through ui/screen.py's
Console, looked up when it prints (tests swap it for a recording one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from hyperparameter_system.core.states import Status
from hyperparameter_system.core.text import printable
from hyperparameter_system.report.format import fmt_metric
from hyperparameter_system.ui import screen

if TYPE_CHECKING:
    from hyperparameter_system.app.search_api import StudyStatus, TrialView
    from hyperparameter_system.matrix.combine import Plan as CombinedPlan
    from hyperparameter_system.report.summary import Summary
    from hyperparameter_system.report.tables import ReportTable


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
    return any(row[at] not in ("not run", Status.PENDING) for row in t.rows)


def print_tables(tables: Sequence[ReportTable]) -> None:
    """report.ReportTable rows: winners bold, deltas green when better and red when worse.
    Columns with nothing in them (std and significance without repeats) are left out, and the
    optional ones while the table is wider than the terminal (named in the caption); a table's
    note (why a category has no winner) is its caption, and its title a line above it (a
    table's own title wraps to the table's width). Names and paths fold, never cut. Every cell
    is made printable (a failure's reason and log tail quote the log: no escape sequence
    reaches the terminal)."""
    out = screen.console  # as it is now: a test may have swapped it
    from rich import box

    for t in tables:
        keep = [i for i, h in enumerate(t.headers) if h not in TERMINAL_SKIP
                and any(row[i] not in ("", "-") for row in t.rows)]
        dropped = []
        for name in OPTIONAL_COLUMNS:
            if _fits(t, keep, out.width):
                break
            if name in t.headers and t.headers.index(name) in keep:
                keep.remove(t.headers.index(name))
                dropped.append(name)
        notes = [printable(t.note)] if t.note else []
        if dropped:
            notes.append(f"left out to fit {out.width} columns: {', '.join(dropped)} "
                         "(--export csv has every column)")
        out.print(Text(printable(t.title), style="bold"))  # wraps at the terminal only
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
        out.print(table)


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
    out = screen.console  # as it is now: a test may have swapped it
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "no runs yet"
    out.print(Text(f"Summary: headline metric {summary.metric} ({summary.metric_mode}); "
                       f"runs: {counts}", style="bold"), soft_wrap=True)
    others = other_configs_line(summary, bool(summary.counts))
    if others:
        out.print(Text(others, style="yellow"), soft_wrap=True)
    if summary.counts:
        out.print(Text(summary.method, style="yellow" if not summary.raced else ""))
    if not summary.counts:
        return
    unrun = [t for t in tables if not _shown(t)]
    print_tables([t for t in tables if _shown(t) and t.rows])
    if unrun:
        names = list(dict.fromkeys(t.category for t in unrun))
        out.print(Text(f"not run yet: {len(unrun)} category table(s) "
                           f"({', '.join(names)})", style="dim"), soft_wrap=True)
    if summary.unsynced:
        screen.warn(f"W&B was unreachable for {len(summary.unsynced)} online run(s); they were "
                    f"logged offline; upload them with: wandb sync {' '.join(summary.unsynced)}")
    best = summary.best
    if best is None:
        return
    named = best.label if best.label == best.run_name or not best.run_name else (
        f"{best.label} (run {best.run_name})")
    out.print(Text(printable(f"Best run: {best.model} / {best.category} / {named} = "
                                 f"{fmt_metric(best.metric)}"), style="bold green"),
                  soft_wrap=True)
    if best.link:
        out.print(f"  W&B: {best.link}", soft_wrap=True)
    elif best.sync_command:
        out.print(f"  offline W&B run in {best.run_dir}; upload it with: "
                      f"{best.sync_command}", soft_wrap=True)
    else:
        out.print(f"  W&B {best.wandb_mode}; outputs in {best.run_dir}", soft_wrap=True)


def print_combined_plans(plans: Sequence[CombinedPlan]) -> None:
    """What `--combine-best` applies per model, which key conflicts it settled, where it saved."""
    out = screen.console  # as it is now: a test may have swapped it
    for p in plans:
        out.print(Text(f"combined winners for {p.model}", style="bold"))
        for pick in p.applied:
            out.print(f"  {pick.category}: {pick.label}", soft_wrap=True)
        for category, why in p.skipped:
            out.print(Text(f"  {category}: not applied ({why})", style="dim"), soft_wrap=True)
        for c in p.conflicts:
            out.print(Text(f"  conflict on {c.key}: {c.kept_category} keeps {c.kept_value!r}"
                               f" over {c.dropped_category}'s {c.dropped_value!r}",
                               style="yellow"), soft_wrap=True)
        out.print(f"  config: {p.config_path} (train: python codes/train.py --config "
                      f"{p.config_path})", soft_wrap=True)


def print_studies(studies: Sequence[StudyStatus]) -> None:
    """Per Optuna study: its trial counts, the best trial (or the Pareto front) with its
    params and W&B run, the parameter importances and the best value over the trials."""
    out = screen.console  # as it is now: a test may have swapped it
    for s in studies:
        counts = ", ".join(f"{n} {k}" for k, n in s.counts.items())
        out.print(Text(f"Study {s.study_name}: {counts}", style="bold"), soft_wrap=True)
        if not s.best:
            out.print("  no complete trial yet", style="dim")
            continue
        title = "Pareto front" if len(s.objectives) > 1 else "best trial"
        table = Table(title=f"{s.study_name}: {title}")
        for col in ("trial", *s.objectives, "params", "W&B run"):
            table.add_column(col, overflow="fold")
        for t in s.best:
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in t.params.items())
            table.add_row(str(t.number), *(f"{v:.4f}" for v in t.values or []), params,
                          printable(_trial_run(t)))
        out.print(table)
        if s.importances:
            out.print("  importance: " + ", ".join(
                f"{k} {v:.2f}" for k, v in s.importances.items()), soft_wrap=True)
        if s.history:
            shown = s.history[-8:]
            out.print("  best so far: " + "  ".join(f"t{n}={v:.4f}" for n, v in shown),
                          soft_wrap=True)


def _trial_run(trial: TrialView) -> str:
    """`project/run id` as the trial's result.json recorded it; else its experiment id (no
    result yet), or "-" for a trial added by hand."""
    if trial.wandb:
        return trial.wandb
    return f"experiment {trial.experiment_id}" if trial.experiment_id else "-"

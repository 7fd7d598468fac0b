"""The summary as plain tables of strings, in reading order: what the console renders and the
exports write, so every view shows the same rows. Wherever an option is named, its run name
(what the W&B run carries) is a column of its own, next to its description ("option")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperparameter_system.core.durations import fmt_duration
from hyperparameter_system.matrix import combine
from hyperparameter_system.matrix.experiments import COMBINED
from hyperparameter_system.matrix.ranking import is_number
from hyperparameter_system.report.format import (
    fmt_delta,
    fmt_interval,
    fmt_metric,
    fmt_number,
    fmt_significant,
)
from hyperparameter_system.report.summary import CategoryTable, ModelReport, OptionStat, Summary

DELTA_COLUMNS = ("delta", "mean delta", "combined - winner")


@dataclass
class ReportTable:
    """A plain table (strings) every renderer shares; `tones` marks winner rows and deltas."""

    key: str
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    tones: list[tuple[bool, bool | None]] = field(default_factory=list)  # (winner, better)
    model: str = ""
    category: str = ""
    note: str = ""  # a line under the table: why a category has no winner

    def add(self, cells: Sequence[Any], winner: bool = False, better: bool | None = None) -> None:
        self.rows.append([str(c) for c in cells])
        self.tones.append((winner, better))

    @staticmethod
    def toned(header: str) -> bool:
        """Whether a column takes its row's better/worse colour (the deltas), in every view."""
        return header in DELTA_COLUMNS


RANK_HEADERS = ["#", "option", "run name", "runs", "metric", "std", "delta", "significant",
                "time", "epochs", "status", "verdict"]


def tables(summary: Summary) -> list[ReportTable]:
    """Every table of the summary, in reading order."""
    out: list[ReportTable] = []
    for report in summary.models:
        out.append(_model_table(summary, report))
        out.extend(_ranking_table(summary, report, table) for table in report.categories)
    out.append(_cross_table(summary))
    compute = compute_table(summary)
    if compute is not None:
        out.append(compute)
    out.extend(_combined_tables(summary))
    if summary.failures:
        out.extend(_failure_tables(summary))
    if summary.jobs:
        out.append(_jobs_table(summary))
    if summary.best is not None:
        out.append(_best_table(summary))
    return out


def _model_table(summary: Summary, report: ModelReport) -> ReportTable:
    """A model's head table: its baseline, and its combined winners where they ran."""
    head = ReportTable("model", f"{report.model} (W&B project {report.project})",
                       ["run", "runs", "metric", "std", "delta", "significant", "status"],
                       model=report.model)
    for name, stat in (("baseline", report.baseline),
                       ("combined", report.combined.stat if report.combined else None)):
        if stat is not None:
            head.add([name, stat.n, fmt_metric(stat.mean), fmt_metric(stat.std),
                      fmt_delta(stat.delta) if name != "baseline" else "",
                      fmt_significant(stat.significant) if name != "baseline" else "",
                      _status(stat, report.combined.plan if report.combined else None)],
                     better=summary.better(stat.delta))
    return head


def _ranking_table(summary: Summary, report: ModelReport, table: CategoryTable) -> ReportTable:
    """One category of one model, its options ranked."""
    t = ReportTable("ranking", f"{report.model} / {table.category}", RANK_HEADERS,
                    model=report.model, category=table.category, note=_note(table))
    for rank, o in enumerate(table.options, 1):
        t.add([rank if is_number(o.mean) else "-", o.description, o.run_name, o.n,
               fmt_metric(o.mean), fmt_metric(o.std),
               fmt_delta(o.delta) + fmt_interval(o.half_width),
               fmt_significant(o.significant), fmt_duration(o.duration_s),
               fmt_number(o.epochs_run), o.status, _verdict(o)],
              winner=o.winner, better=summary.better(o.delta))
    return t


def _cross_table(summary: Summary) -> ReportTable:
    """Across models: which option wins each category."""
    cross = ReportTable("cross_model", "Across models: which option wins each category "
                        "(a win beats every other option and the baseline"
                        + (", sure at the race's confidence)" if summary.raced else ")"),
                        ["category", "option", "run name", "wins", "of models", "mean delta"])
    for e in summary.cross:
        cross.add([e.category, _description(e.label, e.run_name), e.run_name, e.wins, e.models,
                   fmt_delta(e.mean_delta)],
                  winner=e.wins > 0, better=summary.better(e.mean_delta))
    return cross


def _failure_tables(summary: Summary) -> list[ReportTable]:
    """The failures, and the tails of their logs where any were kept."""
    fail = ReportTable("failures", "Failures", ["model", "category", "option", "run name",
                                                "status", "attempts", "reason", "log"])
    tails = ReportTable("failure_logs", "Failures: the last lines of their logs",
                        ["model", "category", "option", "run name", "log tail"])
    for f in summary.failures:
        named = [_description(f.label, f.run_name), f.run_name or f.label]
        fail.add([f.model, f.category, *named, f.status, f.attempts, f.reason,
                  f.log_path or "-"])
        if f.tail:
            tails.add([f.model, f.category, *named, f.tail])
    return [fail, tails] if tails.rows else [fail]


def _jobs_table(summary: Summary) -> ReportTable:
    """Where each run last ran as a Slurm job (job id, node)."""
    jobs = ReportTable("jobs", "Slurm jobs (the last of each run)",
                       ["model", "category", "run name", "status", "job", "node"])
    for j in summary.jobs:
        jobs.add([j.model, j.category, j.run_name, j.status, j.job, j.node])
    return jobs


def _best_table(summary: Summary) -> ReportTable:
    """The best run overall, with where to find it (W&B, the run folder)."""
    b = summary.best
    best = ReportTable("best", "Best run overall", ["model", "category", "option",
                                                    "run name", "metric", "W&B",
                                                    "run folder"])
    where = b.link or b.sync_command or f"W&B {b.wandb_mode}"
    best.add([b.model, b.category, _description(b.label, b.run_name), b.run_name or b.label,
              fmt_metric(b.metric), where, b.run_dir or "-"],
             winner=True)
    return best


def compute_table(summary: Summary) -> ReportTable | None:
    """Per model, epochs run / epochs planned and the compute pruning saved; None when no run
    was pruned (every finished run then trained all its epochs)."""
    if not any(m.compute.pruned for m in summary.models):
        return None
    t = ReportTable("compute", "Compute: epochs trained against epochs planned (pruning)",
                    ["model", "finished runs", "pruned", "epochs run / planned",
                     "compute saved"])
    for m in summary.models:
        c = m.compute
        saved = f"{c.saved:.0%}" if c.saved is not None else "-"
        t.add([m.model, c.runs, c.pruned, f"{c.epochs_run} / {c.epochs_planned}", saved])
    return t


def _verdict(stat: OptionStat) -> str:
    return stat.verdict or ("winner" if stat.winner else "tie" if stat.tied
                            else "leading" if stat.leading else "")


def _description(label: str, run_name: str) -> str:
    """A label that is the run name itself says nothing more: the option column stays empty."""
    return "" if label == run_name else label


def _note(table: CategoryTable) -> str:
    """Why a category has no winner, when that is not plain from its verdicts."""
    best = table.best_not_winning
    if best is not None:
        return (f"no option beat the baseline; best: {best.run_name}"
                + (f" ({best.description})" if best.description else "")
                + f", delta {fmt_delta(best.delta)}")
    if table.options and not any(is_number(o.mean) for o in table.options) and any(
            o.mean is not None for o in table.options):
        return "no finished option: every metric is NaN"
    return ""


def _status(stat: OptionStat, plan: combine.Plan | None = None) -> str:
    if stat.category == COMBINED and not stat.rows:
        if plan is not None and not plan.applied:
            return "nothing to combine: no winner beat the baseline"
        return "not run (--combine-best runs it)"
    return stat.status


def _combined_tables(summary: Summary) -> list[ReportTable]:
    out = []
    for report in summary.models:
        c = report.combined
        if c is None:
            continue
        saved = f" -> {c.plan.config_path}" if c.plan.applied else ""  # none without winners
        t = ReportTable("combined", f"{report.model} / combined winners{saved}",
                        ["category", "winner", "run name", "winner metric", "combined - winner",
                         "significant"], model=report.model, category=COMBINED)
        for v in c.versus:
            t.add([v.category, _description(v.label, v.run_name), v.run_name,
                   fmt_metric(v.winner_mean), fmt_delta(v.diff),
                   fmt_significant(v.significant)], better=summary.better(v.diff))
        for cat, why in c.plan.skipped:
            t.add([cat, f"not applied: {why}", "", "", "", ""])
        t.add(["combined", _status(c.stat, c.plan), c.stat.run_name, fmt_metric(c.stat.mean),
               f"vs baseline {fmt_delta(c.stat.delta)}", fmt_significant(c.stat.significant)],
              winner=True, better=summary.better(c.stat.delta))
        out.append(t)
        if c.plan.conflicts:
            k = ReportTable("conflicts", f"{report.model} / combined: keys set by two winners "
                            "(the better winner keeps the key)",
                            ["key", "kept from", "kept value", "dropped from", "dropped value"],
                            model=report.model, category=COMBINED)
            for x in c.plan.conflicts:
                k.add([x.key, x.kept_category, json.dumps(x.kept_value), x.dropped_category,
                       json.dumps(x.dropped_value)])
            out.append(k)
    return out

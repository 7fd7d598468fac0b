"""The summary of a matrix, computed from the ledger: per model and category every option ranked
by the headline metric, its delta against that model's baseline and the winner; the cross-model
view; the combined winners; failures; the best run. Then the same as plain tables of strings
(`tables()`), which console.print_tables renders and exports writes. Nothing here prints or
writes files: api.report and api.combine_best do.

Only the rows of the current matrix count (ids depend on the resolved config), so a ledger that
also holds runs of an older base config never mixes them in.

Noise: with `execution.repeats: N` an option's runs (same model, category and option, distinct
seeds) are pooled into a mean and a sample standard deviation. A delta is *not significant* when
|delta| <= 2 * sqrt(s_a^2/n_a + s_b^2/n_b) (two combined standard errors, about a 95% band); a
side with a single run borrows the other side's deviation. With one run on both sides the noise
is unknown and nothing is marked.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, stdev
from typing import Any

from hyperparameter_system import combine
from hyperparameter_system.configdict import get_dotted
from hyperparameter_system.console import fmt_duration
from hyperparameter_system.executor import headline
from hyperparameter_system.hyperparameter_configs import (
    BASELINE,
    COMBINED,
    Experiment,
    build_matrix,
)
from hyperparameter_system.ledger import Ledger, Row, open_ledger
from hyperparameter_system.settings import Settings

FAILED = ("failed", "timeout", "interrupted")
UNFINISHED = ("pending", "running", "interrupted")
SIGMAS = 2.0
_SEED = re.compile(r"_seed\d+$")


@dataclass
class OptionStat:
    """One option of one model (all its repeats), or the baseline, or the combined run."""

    model: str
    category: str
    option: dict[str, Any]
    option_json: str
    label: str
    run_name: str
    changes: dict[str, Any]
    order: int
    rows: list[Row] = field(default_factory=list, repr=False)
    values: list[float] = field(default_factory=list)
    delta: float | None = None
    significant: bool | None = None
    winner: bool = False
    tied: bool = False  # shares the best metric with another option: no winner
    leading: bool = False  # best so far, while another option of its category may still run

    @property
    def unfinished(self) -> bool:
        """Not run yet, running, or stopped and resumable: its metric may still come."""
        return not self.rows or any(r.status in UNFINISHED for r in self.rows)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return stdev(self.values) if len(self.values) > 1 else None

    @property
    def done_rows(self) -> list[Row]:
        return [r for r in self.rows if r.status == "done"]

    @property
    def duration_s(self) -> float | None:
        times = [r.duration_s for r in self.done_rows if r.duration_s is not None]
        return fmean(times) if times else None

    @property
    def epochs_run(self) -> float | None:
        epochs = [get_dotted(r.result, "metrics.epochs_run", None) for r in self.done_rows]
        epochs = [e for e in epochs if isinstance(e, int | float)]
        return fmean(epochs) if epochs else None

    @property
    def status(self) -> str:
        if not self.rows:
            return "not run"
        counts = Counter(r.status for r in self.rows)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{n} {s}" for s, n in counts.most_common())


@dataclass
class CategoryTable:
    category: str
    options: list[OptionStat]  # ranked, best first; options without a metric last

    @property
    def winner(self) -> OptionStat | None:
        return next((o for o in self.options if o.winner), None)


@dataclass
class VersusWinner:
    category: str
    label: str
    winner_mean: float | None
    diff: float | None  # combined - winner
    significant: bool | None


@dataclass
class CombinedReport:
    plan: combine.Plan
    stat: OptionStat
    versus: list[VersusWinner]


@dataclass
class ModelReport:
    model: str
    project: str
    baseline: OptionStat | None
    categories: list[CategoryTable]
    combined: CombinedReport | None = None


@dataclass
class CrossEntry:
    category: str
    label: str
    option_json: str
    wins: int
    models: int
    mean_delta: float | None


@dataclass
class Failure:
    model: str
    category: str
    label: str
    status: str
    reason: str
    log_path: str | None
    attempts: int
    tail: str = ""  # the last lines of its train.log, so the cause shows without opening it


@dataclass
class BestRun:
    model: str
    category: str
    label: str
    metric: float
    run_dir: str | None
    wandb_mode: str
    link: str | None  # online: the run's URL, or `project/run_id` when the entity is unknown
    sync_command: str | None  # offline: how to upload it


@dataclass
class Summary:
    metric: str
    metric_mode: str
    repeats: int
    models: list[ModelReport]
    cross: list[CrossEntry]
    failures: list[Failure]
    best: BestRun | None
    counts: dict[str, int]
    unsynced: list[str] = field(default_factory=list)  # W&B dirs of online runs logged offline
    metric_missing: str | None = None  # why no run has a value: the key is in no result

    def better(self, delta: float | None) -> bool | None:
        """Whether a signed delta is an improvement under metric_mode; one that prints as
        +0.0000 (float noise, e.g. the mean of +0.05 and -0.05) is neither, so not coloured."""
        if delta is None or abs(delta) < 0.5e-4:
            return None
        return delta > 0 if self.metric_mode == "max" else delta < 0


# -- computing -------------------------------------------------------------------------------

def score(value: float, mode: str) -> float:
    """Larger is better, whatever metric_mode says."""
    return value if mode == "max" else -value


def noise_test(a: OptionStat, b: OptionStat) -> tuple[float | None, bool | None]:
    """(a.mean - b.mean, significant) by the module's 2-standard-error rule."""
    if a.mean is None or b.mean is None:
        return None, None
    delta = a.mean - b.mean
    sa, sb = a.std, b.std
    if sa is None and sb is None:
        return delta, None
    sa = sb if sa is None else sa
    sb = sa if sb is None else sb
    se = math.sqrt(sa * sa / a.n + sb * sb / b.n)
    return delta, abs(delta) > SIGMAS * se


def _value(row: Row, metric: str) -> float | None:
    """The configured metric from the row's result.json, not the ledger's `metric` column:
    that holds whatever `system.metric` was when the run ended, maybe another key."""
    return headline(row.result, metric) if row.status == "done" else None


def numeric_keys(result: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of a result that hold numbers: what `system.metric` could name."""
    out = []
    for key, value in result.items():
        if isinstance(value, Mapping):
            out += numeric_keys(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append(f"{prefix}{key}")
    return out


def missing_metric(rows: Sequence[Row], metric: str, shown: int = 5) -> str | None:
    """Why no finished run has a number, when the configured key is in none of their results
    (a renamed or mistyped `system.metric`), with a few keys that are there; else None."""
    done = [r for r in rows if r.status == "done"]
    if not done or any(_value(r, metric) is not None for r in done):
        return None
    keys = list(dict.fromkeys(k for r in done for k in numeric_keys(r.result)))
    known = ", ".join(keys[:shown]) + (" ..." if len(keys) > shown else "")
    return (f"system.metric {metric} is in none of the {len(done)} finished result(s); "
            f"keys they have: {known or 'none'}")


def group(experiments: Sequence[Experiment], rows: Mapping[str, Row],
          metric: str) -> dict[tuple[str, str, str], OptionStat]:
    """Experiments of the same model, category and option (the repeats) into one stat."""
    out: dict[tuple[str, str, str], OptionStat] = {}
    for order, exp in enumerate(experiments):
        key = (exp.model, exp.category, exp.option_json)
        stat = out.get(key)
        if stat is None:
            name = _SEED.sub("", exp.run_name)  # repeats add `_seed<N>`; the option is one
            label = str(exp.option.get("description") or name)
            stat = out[key] = OptionStat(exp.model, exp.category, dict(exp.option),
                                         exp.option_json, label, name, dict(exp.changes), order)
        row = rows.get(exp.id)
        if row is None:
            continue
        stat.rows.append(row)
        value = _value(row, metric)
        if value is not None:
            stat.values.append(value)
    return out


def _rank(options: list[OptionStat], mode: str) -> list[OptionStat]:
    return sorted(options, key=lambda o: (o.mean is None,
                                          -score(o.mean, mode) if o.mean is not None else 0,
                                          o.order))


def _crown(ranked: list[OptionStat], mode: str) -> None:
    """The winner must beat every other option strictly; options sharing the best metric are
    marked tied instead (e.g. two early-stopping patiences that never trigger). While an option
    of the category may still run, the best so far is only leading."""
    scored = [o for o in ranked if o.mean is not None]
    if not scored:
        return
    best = score(scored[0].mean, mode)
    top = [o for o in scored if score(o.mean, mode) == best]
    if len(top) == 1:
        if any(o.unfinished for o in ranked):
            top[0].leading = True
        else:
            top[0].winner = True
        return
    for o in top:
        o.tied = True


def seen_matrix(settings: Settings, rows: Sequence[Row]) -> list[Experiment]:
    """The enabled matrix, plus the disabled models and categories these rows ran: a user may
    run a disabled entry by naming it, and its runs still count."""
    seen_models = {r.model for r in rows}
    seen_cats = {r.category for r in rows}
    models = [m.name for m in settings.models if m.enabled or m.name in seen_models]
    cats = [c.name for c in settings.categories if c.enabled or c.name in seen_cats]
    return build_matrix(settings, models, cats or None, strict=False) if models else []


def collect(settings: Settings, ledger: Ledger | None = None) -> Summary:
    """The whole summary of the current matrix, from the ledger."""
    book = ledger or open_ledger(settings)
    all_rows = book.rows()
    by_id = {r.id: r for r in all_rows}
    metric, mode = settings.system.metric, settings.system.metric_mode
    experiments = seen_matrix(settings, all_rows)
    stats = group(experiments, by_id, metric)
    cat_order = [c.name for c in settings.categories]
    models: list[ModelReport] = []
    for name in dict.fromkeys(e.model for e in experiments):
        mine = [s for s in stats.values() if s.model == name]
        baseline = next((s for s in mine if s.category == BASELINE), None)
        tables = []
        for cat in dict.fromkeys(s.category for s in mine if s.category != BASELINE):
            ranked = _rank([s for s in mine if s.category == cat], mode)
            for stat in ranked:
                if baseline is not None:
                    stat.delta, stat.significant = noise_test(stat, baseline)
            _crown(ranked, mode)
            tables.append(CategoryTable(cat, ranked))
        tables.sort(key=lambda t: cat_order.index(t.category) if t.category in cat_order else 99)
        report = ModelReport(name, next(e.project for e in experiments if e.model == name),
                             baseline, tables)
        # numbered after the matrix, each model's repeats in turn (the temp config's NNN_)
        first = len(experiments) + 1 + len(models) * settings.execution.repeats
        report.combined = _combined(settings, report, by_id, first_index=first)
        models.append(report)
    combined_rows = [r for m in models if m.combined for r in m.combined.stat.rows]
    chosen = [r for s in stats.values() for r in s.rows] + combined_rows
    return Summary(metric, mode, settings.execution.repeats, models, _cross(models, mode),
                   _failures(chosen), _best(settings, chosen),
                   dict(Counter(r.status for r in chosen)), _unsynced(chosen),
                   missing_metric(chosen, metric))


def _unsynced(rows: Sequence[Row]) -> list[str]:
    """Runs launched online whose trainer found W&B unreachable and logged offline instead."""
    out = []
    for r in rows:
        wandb = r.result.get("wandb") or {}
        if r.wandb_mode == "online" and wandb.get("mode") == "offline" and wandb.get("dir"):
            out.append(str(wandb["dir"]))
    return out


def _picks(report: ModelReport, mode: str
           ) -> tuple[list[combine.Pick], list[tuple[str, str]]]:
    """Each category's winner as a pick; a category without one is (category, why)."""
    picks, missing = [], []
    for table in report.categories:
        win = table.winner
        if win is None:
            tied = [o.label for o in table.options if o.tied]
            leading = [o.label for o in table.options if o.leading]
            missing.append((table.category, f"no winner (tie: {', '.join(tied)})" if tied
                            else f"not finished ({leading[0]} leads so far)" if leading
                            else "no finished option"))
            continue
        base = report.baseline.mean if report.baseline else None
        beats = base is None or score(win.mean, mode) > score(base, mode)
        option = {k: v for k, v in win.option.items() if k != "description"}
        picks.append(combine.Pick(table.category, win.label, option, win.changes,
                                  score(win.mean, mode), beats))
    return picks, missing


def _combined(settings: Settings, report: ModelReport, rows: Mapping[str, Row],
              first_index: int) -> CombinedReport | None:
    """The plan for the model's combined winners and how its runs (if any) did."""
    picks, missing = _picks(report, settings.system.metric_mode)
    if not any(o.mean is not None for t in report.categories for o in t.options):
        return None  # nothing finished: nothing to plan yet
    plan = combine.plan(settings.model(report.model), picks, missing,
                        settings.system.reports_dir, settings.execution.repeats, first_index)
    stat = group(plan.experiments, rows, settings.system.metric)[
        (report.model, COMBINED, plan.experiments[0].option_json)]
    if report.baseline is not None:
        stat.delta, stat.significant = noise_test(stat, report.baseline)
    winners = {t.category: t.winner for t in report.categories}
    versus = []
    for pick in plan.applied:
        win = winners[pick.category]
        diff, sig = noise_test(stat, win)
        versus.append(VersusWinner(pick.category, pick.label, win.mean, diff, sig))
    return CombinedReport(plan, stat, versus)


def _cross(models: Sequence[ModelReport], mode: str) -> list[CrossEntry]:
    """Per category, each option: for how many models it wins, and its mean delta."""
    entries: dict[tuple[str, str], CrossEntry] = {}
    deltas: dict[tuple[str, str], list[float]] = {}
    for report in models:
        for table in report.categories:
            for stat in table.options:
                key = (table.category, stat.option_json)
                entry = entries.setdefault(key, CrossEntry(table.category, stat.label,
                                                           stat.option_json, 0, 0, None))
                if stat.mean is not None:
                    entry.models += 1
                entry.wins += stat.winner
                if stat.delta is not None:
                    deltas.setdefault(key, []).append(stat.delta)
    for key, entry in entries.items():
        if deltas.get(key):
            entry.mean_delta = fmean(deltas[key])
    cats = list(dict.fromkeys(e.category for e in entries.values()))
    return sorted(entries.values(), key=lambda e: (
        cats.index(e.category), -e.wins,
        -score(e.mean_delta, mode) if e.mean_delta is not None else math.inf))


def _failures(rows: Sequence[Row]) -> list[Failure]:
    out = []
    for r in rows:
        if r.status in FAILED:
            reason = r.error or (r.log_tail or "").strip().splitlines()[-1:] or ["unknown"]
            out.append(Failure(r.model, r.category, r.label or r.run_name, r.status,
                               reason if isinstance(reason, str) else reason[0], r.log_path,
                               r.attempts or 0, _tail(r.log_tail)))
    return out


def _tail(text: str | None, lines: int = 3, width: int = 160) -> str:
    """The last non-empty lines of a log tail, each cut to `width` characters."""
    kept = [line.rstrip()[:width] for line in (text or "").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _best(settings: Settings, rows: Sequence[Row]) -> BestRun | None:
    metric, mode = settings.system.metric, settings.system.metric_mode
    scored = [(v, r) for r in rows if (v := _value(r, metric)) is not None]
    if not scored:
        return None
    value, row = max(scored, key=lambda vr: score(vr[0], mode))
    return BestRun(row.model, row.category, row.label or row.run_name, value, row.run_dir,
                   *wandb_pointer(row, settings.system.wandb_entity))


def wandb_pointer(row: Row, entity: str | None) -> tuple[str, str | None, str | None]:
    """(mode, link, sync command) for one run: a URL online, `wandb sync DIR` offline."""
    block = row.result.get("wandb") or {}
    mode = block.get("mode") or row.wandb_mode or "unknown"
    project = block.get("project") or row.wandb_project
    run_id = block.get("run_id") or row.wandb_run_id
    entity = entity or block.get("entity") or get_dotted(row.config, "wandb.entity", None)
    if mode == "online":
        link = (f"https://wandb.ai/{entity}/{project}/runs/{run_id}" if entity
                else f"project {project}, run id {run_id}")
        return mode, link, None
    if mode == "offline":
        folder = block.get("dir") or row.wandb_dir or (
            f"{row.run_dir}/wandb/offline-run-*" if row.run_dir else None)
        return mode, None, f"wandb sync {folder}" if folder else None
    return mode, None, None


# -- formatting shared by the console and the exports ----------------------------------------

def fmt_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def fmt_delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def fmt_significant(significant: bool | None) -> str:
    return {True: "yes", False: "n.s."}.get(significant, "")


def fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


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

    def add(self, cells: Sequence[Any], winner: bool = False, better: bool | None = None) -> None:
        self.rows.append([str(c) for c in cells])
        self.tones.append((winner, better))

    @staticmethod
    def toned(header: str) -> bool:
        """Whether a column takes its row's better/worse colour (the deltas), in every view."""
        return header in DELTA_COLUMNS


RANK_HEADERS = ["#", "option", "run name", "runs", "metric", "std", "delta", "significant",
                "time", "epochs", "status", "winner"]


def tables(summary: Summary) -> list[ReportTable]:
    """Every table of the summary, in reading order."""
    out: list[ReportTable] = []
    for report in summary.models:
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
        out.append(head)
        for table in report.categories:
            t = ReportTable("ranking", f"{report.model} / {table.category}", RANK_HEADERS,
                            model=report.model, category=table.category)
            for rank, o in enumerate(table.options, 1):
                t.add([rank if o.mean is not None else "-", o.label, o.run_name, o.n,
                       fmt_metric(o.mean), fmt_metric(o.std), fmt_delta(o.delta),
                       fmt_significant(o.significant), fmt_duration(o.duration_s),
                       fmt_number(o.epochs_run), o.status, _verdict(o)],
                      winner=o.winner, better=summary.better(o.delta))
            out.append(t)
    cross = ReportTable("cross_model", "Across models: which option wins each category",
                        ["category", "option", "wins", "of models", "mean delta"])
    for e in summary.cross:
        cross.add([e.category, e.label, e.wins, e.models, fmt_delta(e.mean_delta)],
                  winner=e.wins > 0, better=summary.better(e.mean_delta))
    out.append(cross)
    out.extend(_combined_tables(summary))
    if summary.failures:
        fail = ReportTable("failures", "Failures", ["model", "category", "option", "status",
                                                    "attempts", "reason", "log"])
        tails = ReportTable("failure_logs", "Failures: the last lines of their logs",
                            ["model", "category", "option", "log tail"])
        for f in summary.failures:
            fail.add([f.model, f.category, f.label, f.status, f.attempts, f.reason,
                      f.log_path or "-"])
            if f.tail:
                tails.add([f.model, f.category, f.label, f.tail])
        out += [fail, tails] if tails.rows else [fail]
    if summary.best is not None:
        b = summary.best
        best = ReportTable("best", "Best run overall", ["model", "category", "option", "metric",
                                                        "W&B", "run folder"])
        where = b.link or b.sync_command or f"W&B {b.wandb_mode}"
        best.add([b.model, b.category, b.label, fmt_metric(b.metric), where, b.run_dir or "-"],
                 winner=True)
        out.append(best)
    return out


def _verdict(stat: OptionStat) -> str:
    return ("winner" if stat.winner else "tie" if stat.tied else "leading" if stat.leading
            else "")


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
                        ["category", "winner", "winner metric", "combined - winner",
                         "significant"], model=report.model, category=COMBINED)
        for v in c.versus:
            t.add([v.category, v.label, fmt_metric(v.winner_mean), fmt_delta(v.diff),
                   fmt_significant(v.significant)], better=summary.better(v.diff))
        for cat, why in c.plan.skipped:
            t.add([cat, f"not applied: {why}", "", "", ""])
        t.add(["combined", _status(c.stat, c.plan), fmt_metric(c.stat.mean),
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

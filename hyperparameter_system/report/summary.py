"""The summary of a matrix, computed from the ledger: per model and category every option ranked
by the headline metric, its delta against that model's baseline and the winner (only an option
that beats the baseline wins; else the best is named as such); the cross-model
view; the combined winners; failures; the best run. report.tables turns it into plain
tables of strings. Nothing here prints or
writes files: api.report and api.combine_best do.

Only the rows of the current matrix count (ids depend on the resolved config), so a ledger that
also holds runs of an older base config never mixes them in.
The ranking rules (score, noise test, winner) are matrix.ranking's.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

from hyperparameter_system.config.racing import RaceRule
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.configdict import get_dotted
from hyperparameter_system.core.states import STOPPED, Direction, Status
from hyperparameter_system.core.text import printable
from hyperparameter_system.matrix import combine
from hyperparameter_system.matrix.experiments import (
    BASELINE,
    COMBINED,
    Experiment,
    build_matrix,
)
from hyperparameter_system.matrix.racing import UNDECIDED
from hyperparameter_system.matrix.ranking import (
    LEADING,
    TIE,
    WINNER,
    crown,
    is_number,
    noise_test,
    ranking,
    score,
)
from hyperparameter_system.report.format import fmt_delta, fmt_interval
from hyperparameter_system.report.others import other_configs
from hyperparameter_system.report.records import (  # noqa: E402 - re-exported
    BestRun,
    CategoryTable,
    CombinedReport,
    Compute,
    CrossEntry,
    Failure,
    JobLine,
    ModelReport,
    OptionStat,
    Summary,
    VersusWinner,
    _value,
    epochs_of,
)
from hyperparameter_system.run.race import RacedPool, judge_pools
from hyperparameter_system.store.ledger import Ledger, open_ledger
from hyperparameter_system.store.row import Row, row_problems

_SEED = re.compile(r"_seed\d+$")


def compute_of(stats: Sequence[OptionStat], experiments: Mapping[str, Experiment]) -> Compute:
    """Epochs run / epochs planned over the finished runs of one model's matrix."""
    out = Compute()
    for row in (r for s in stats for r in s.ran_rows):
        exp = experiments.get(row.id)
        planned = (exp.config if exp is not None else row.config).get("epochs")
        planned = planned if isinstance(planned, int) and not isinstance(planned, bool) else None
        ran = epochs_of(row, planned)
        if planned is None or ran is None:
            continue
        out.runs += 1
        out.pruned += row.status == Status.PRUNED
        out.epochs_run += min(ran, planned)
        out.epochs_planned += planned
    return out


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
    done = [r for r in rows if r.status == Status.DONE]
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


def _crown(ranked: list[OptionStat], baseline: OptionStat | None, mode: str) -> None:
    """matrix.ranking.crown's verdicts; a baseline that may still run keeps the crown back."""
    unfinished = any(o.unfinished for o in ranked) or bool(baseline and baseline.unfinished)
    verdicts = crown(ranked, unfinished, mode, baseline, [o.pruned for o in ranked])
    for stat, verdict in zip(ranked, verdicts, strict=True):
        stat.verdict = verdict
        stat.winner, stat.tied, stat.leading = (verdict == WINNER, verdict == TIE,
                                                verdict == LEADING)


def race_rule(settings: Settings) -> RaceRule | None:
    """The rule verdicts are judged by: the race's; with fixed repeats, one look at all their
    seeds; None for single runs (no noise to judge with: matrix.ranking.crown's verdicts)."""
    execution = settings.execution
    if execution.race is not None:
        return execution.race
    n = execution.repeats
    return RaceRule(n, n) if n > 1 else None


def _race_verdicts(ranked: Sequence[OptionStat], raced: RacedPool | None, mode: str) -> None:
    """matrix.racing's verdicts, paired deltas and intervals on each option of one pool."""
    judgements = raced.pool.judgements if raced is not None else {}
    sign = Direction(mode).score(1.0)  # score units back to the metric's
    for stat in ranked:
        j = judgements.get(stat.option_json)
        if j is None or not stat.rows:
            continue
        stat.verdict, stat.seeds, stat.half_width = j.verdict, j.seeds, j.half_width
        if j.delta is not None and j.seeds:
            stat.delta = sign * j.delta
        stat.significant = (None if j.half_width is None or stat.delta is None
                            else abs(stat.delta) > j.half_width)
        stat.winner, stat.tied, stat.leading = j.verdict == WINNER, False, j.verdict == LEADING


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
    ledger = ledger or open_ledger(settings)
    all_rows = ledger.rows()
    by_id = {r.id: r for r in all_rows}
    metric, mode = settings.system.metric, settings.system.metric_mode
    experiments = seen_matrix(settings, all_rows)
    stats = group(experiments, by_id, metric)
    by_experiment = {e.id: e for e in experiments}
    cat_order = [c.name for c in settings.categories]
    rule = race_rule(settings)
    raced = judge_pools(experiments, by_id, metric, mode, rule) if rule is not None else {}
    models: list[ModelReport] = []
    for name in dict.fromkeys(e.model for e in experiments):
        mine = [s for s in stats.values() if s.model == name]
        baseline = next((s for s in mine if s.category == BASELINE), None)
        tables = []
        for cat in dict.fromkeys(s.category for s in mine if s.category != BASELINE):
            options = [s for s in mine if s.category == cat]
            ranked = [options[i] for i in ranking([o.mean for o in options], mode)]
            for stat in ranked:
                if baseline is not None:
                    stat.delta, stat.significant = noise_test(stat, baseline)
            if rule is None:
                _crown(ranked, baseline, mode)
            else:
                _race_verdicts(ranked, raced.get((name, cat)), mode)
            tables.append(CategoryTable(cat, ranked))
        tables.sort(key=lambda t: cat_order.index(t.category) if t.category in cat_order else 99)
        report = ModelReport(name, next(e.project for e in experiments if e.model == name),
                             baseline, tables, compute=compute_of(mine, by_experiment))
        # numbered after the matrix, each model's repeats in turn (the temp config's NNN_)
        first = len(experiments) + 1 + len(models) * settings.execution.combined_seeds
        report.combined = _combined(settings, report, by_id, first_index=first)
        models.append(report)
    combined_rows = [r for m in models if m.combined for r in m.combined.stat.rows]
    chosen = [r for s in stats.values() for r in s.rows] + combined_rows
    return Summary(metric, mode, settings.execution.repeats, models, _cross(models, mode),
                   _failures(chosen), _best(settings, chosen),
                   dict(Counter(r.status for r in chosen)), _unsynced(chosen),
                   missing_metric(chosen, metric), row_problems(chosen),
                   other_configs(all_rows, experiments,
                                 (COMBINED, *(s.name for s in settings.searches))),
                   raced=rule is not None,
                   race=(f"{rule.min_seeds} to {rule.max_seeds} seeds"
                         if settings.execution.race else ""),
                   confidence=rule.confidence if rule is not None else 0.95,
                   jobs=[JobLine(r.model, r.category, r.run_name, r.status, r.job,
                                 r.node or "") for r in chosen if r.job])


def _unsynced(rows: Sequence[Row]) -> list[str]:
    """Runs launched online whose trainer found W&B unreachable and logged offline instead."""
    out = []
    for r in rows:
        wandb = r.result.get("wandb") or {}
        if r.wandb_mode == "online" and wandb.get("mode") == "offline" and wandb.get("dir"):
            out.append(str(wandb["dir"]))
    return out


def _picks(report: ModelReport, mode: str, leaders: bool = False
           ) -> tuple[list[combine.Pick], list[tuple[str, str]]]:
    """Each category's sure winner as a pick; a category without one is (category, why).
    `leaders` (execution.combine_leaders): a race's leader not yet sure is picked too,
    labelled so."""
    picks, missing = [], []
    for table in report.categories:
        win = table.winner
        lead = next((o for o in table.options if o.verdict in (LEADING, UNDECIDED)
                     and o.seeds and o is table.options[0]), None)
        if win is None and lead is not None:
            interval = f"{fmt_delta(lead.delta)}{fmt_interval(lead.half_width)}"
            if leaders and not lead.pruned:
                option = {k: v for k, v in lead.option.items() if k != "description"}
                picks.append(combine.Pick(table.category, f"{lead.label} ({lead.verdict}, not "
                                          f"sure: {interval})", option, lead.changes,
                                          score(lead.mean, mode), True, ran_to_end=True))
            else:
                missing.append((table.category, f"no sure winner: {lead.label} {lead.verdict} "
                                f"at {interval} after {lead.seeds} seed(s)"))
            continue
        if win is None:
            tied = [o.label for o in table.options if o.tied]
            leading = [o.label for o in table.options if o.leading]
            judged = [o.verdict for o in table.options if o.seeds]  # paired seeds' verdicts
            missing.append((table.category, f"no winner (tie: {', '.join(tied)})" if tied
                            else f"not finished ({leading[0]} leads so far)" if leading
                            else "no option beat the baseline" if table.best_not_winning
                            else "no option beat the baseline (" + ", ".join(
                                f"{n} {v}" for v, n in Counter(judged).items()) + ")"
                            if judged else "no finished option"))
            continue
        # a winner beat the baseline and ran to the end already (matrix.ranking.crown)
        option = {k: v for k, v in win.option.items() if k != "description"}
        picks.append(combine.Pick(table.category, win.label, option, win.changes,
                                  score(win.mean, mode), True, ran_to_end=not win.pruned))
    return picks, missing


def _combined(settings: Settings, report: ModelReport, rows: Mapping[str, Row],
              first_index: int) -> CombinedReport | None:
    """The plan for the model's combined winners and how its runs (if any) did."""
    picks, missing = _picks(report, settings.system.metric_mode,
                            settings.execution.combine_leaders)
    if not any(o.mean is not None for t in report.categories for o in t.options):
        return None  # nothing finished: nothing to plan yet
    plan = combine.plan(settings.model(report.model), picks, missing,
                        settings.system.reports_dir, settings.execution.combined_seeds, first_index)
    stat = group(plan.experiments, rows, settings.system.metric)[
        (report.model, COMBINED, plan.experiments[0].option_json)]
    if report.baseline is not None:
        stat.delta, stat.significant = noise_test(stat, report.baseline)
    # a sure winner, or (execution.combine_leaders) the leader, which ranks first
    winners = {t.category: t.winner or t.options[0] for t in report.categories if t.options}
    versus = []
    for pick in plan.applied:
        win = winners[pick.category]
        diff, sig = noise_test(stat, win)
        versus.append(VersusWinner(pick.category, pick.label, win.mean, diff, sig,
                                   win.run_name))
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
                                                           stat.option_json, 0, 0, None,
                                                           stat.run_name))
                if is_number(stat.mean):
                    entry.models += 1
                entry.wins += stat.winner
                if is_number(stat.delta):
                    deltas.setdefault(key, []).append(stat.delta)
    for key, entry in entries.items():
        if deltas.get(key):
            entry.mean_delta = fmean(deltas[key])
    cats = list(dict.fromkeys(e.category for e in entries.values()))
    return sorted(entries.values(), key=lambda e: (
        cats.index(e.category), -e.wins,
        -score(e.mean_delta, mode) if is_number(e.mean_delta) else math.inf))


def _failures(rows: Sequence[Row]) -> list[Failure]:
    """Each stopped run with its reason and log tail, made printable (core.text: no escape
    sequences, only what a progress bar's last carriage return left)."""
    out = []
    for r in rows:
        if r.status in STOPPED:
            log = printable(r.log_tail)
            reason = printable(r.error).strip() or next(
                (line.strip() for line in reversed(log.splitlines()) if line.strip()),
                "unknown")
            out.append(Failure(r.model, r.category, r.label or r.run_name, r.status,
                               reason, r.log_path, r.attempts or 0, _tail(log), r.run_name))
    return out


def _tail(text: str | None, lines: int = 3, width: int = 160) -> str:
    """The last non-empty lines of a log tail, each cut to `width` characters."""
    kept = [line.rstrip()[:width] for line in (text or "").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _best(settings: Settings, rows: Sequence[Row]) -> BestRun | None:
    metric, mode = settings.system.metric, settings.system.metric_mode
    # the best run overall ran to the end: a pruned run's metric is of an earlier epoch
    scored = [(v, r) for r in rows if r.status == Status.DONE
              and is_number(v := _value(r, metric))]
    if not scored:
        return None
    value, row = max(scored, key=lambda vr: score(vr[0], mode))
    return BestRun(row.model, row.category, row.label or row.run_name, value, row.run_dir,
                   *wandb_pointer(row, settings.system.wandb_entity), run_name=row.run_name)


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

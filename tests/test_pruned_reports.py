"""Pruned runs in the reports: a pruned option is ranked by its metric at
the last epoch it ran (result.json, else the last metrics.jsonl line), marked `pruned @k`,
never a category's winner, never in --combine-best; --summary says epochs run / planned and
the compute saved per model; the estimates use the ledger's pruned share."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from report_helpers import settings_for

from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix import combine
from hyperparameter_system.matrix.experiments import Experiment, build_matrix
from hyperparameter_system.matrix.ranking import PRUNED, WINNER, crown
from hyperparameter_system.report.summary import collect
from hyperparameter_system.report.tables import tables
from hyperparameter_system.store.estimates import estimate_durations
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.store.row import Row

# a YAML category; the base config plans 2 epochs
CATEGORIES = {"tuning": [{"lr": 0.01, "description": "fast"},
                         {"lr": 0.0001, "description": "slow"},
                         {"weight_decay": 0.01, "description": "decayed"}]}

Curve = tuple[str, Sequence[float], bool]  # (status, val_f1 per epoch, write result.json)


def fill(settings, curve_of: Callable[[Experiment], Curve | None], duration: float = 40.0
         ) -> list[Experiment]:
    """Record each experiment done or pruned with the curve `curve_of` gives (its metrics.jsonl;
    result.json's best_val_f1 is the curve's best, omitted when the flag is false)."""
    experiments = build_matrix(settings)
    ledger = Ledger(settings.system.ledger)
    ledger.sync(experiments)
    now = time.time()
    for e in experiments:
        spec = curve_of(e)
        if spec is None:
            continue
        status, curve, with_result = spec
        run_dir = Path(settings.system.runs_dir) / e.id
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "metrics.jsonl").open("w") as fh:
            for epoch, value in enumerate(curve, 1):
                fh.write(json.dumps({"epoch": epoch, "val_f1": value}) + "\n")
        result = {"metrics": {"best_val_f1": max(curve), "epochs_run": len(curve)},
                  "status": status} if with_result else None
        extra = {"pruned_epoch": len(curve)} if status == Status.PRUNED else {}
        ledger.finish(e.id, Outcome(e.id, status, now, now + duration * len(curve) / 2,
                                    exit_code=0, result=result, run_dir=str(run_dir),
                                    note="epoch 2: below the pool's best" if extra else None,
                                    extra=extra), max(curve))
    return experiments


def _curves(e: Experiment) -> Curve:
    if e.category == "baseline":
        return Status.DONE, [0.5, 0.7], True
    return {"fast": (Status.DONE, [0.6, 0.75], True),
            # stopped at 1, its metric there is above everything: ranked, never the winner
            "slow": (Status.PRUNED, [0.9], True),
            # ended after the grace period: no result.json, its metric is metrics.jsonl's last
            "decayed": (Status.PRUNED, [0.4, 0.45], False)}[e.label]


@pytest.fixture
def pruned(tmp_path):
    settings = settings_for(tmp_path, CATEGORIES)
    fill(settings, _curves)
    return settings, collect(settings)


def test_a_pruned_option_is_ranked_by_its_last_epoch_and_never_wins(pruned):
    _, summary = pruned
    table = summary.models[0].categories[0]
    ranked = [(o.label, o.mean, o.verdict) for o in table.options]
    assert ranked == [("slow", 0.9, PRUNED), ("fast", 0.75, WINNER),
                      ("decayed", 0.45, PRUNED)]
    assert table.winner.label == "fast"
    assert [o.status for o in table.options] == ["pruned @1", "done", "pruned @2"]
    assert summary.best.label == "fast"  # the best run overall ran to the end


def test_the_tables_mark_pruned_at_k_and_show_the_compute_saved(pruned):
    _, summary = pruned
    by_key = {t.key: t for t in tables(summary)}
    ranking = by_key["ranking"]
    status = ranking.headers.index("status")
    assert [r[status] for r in ranking.rows] == ["pruned @1", "done", "pruned @2"]
    verdict = ranking.headers.index("verdict")
    assert [r[verdict] for r in ranking.rows] == [PRUNED, "winner", PRUNED]
    compute = by_key["compute"]
    assert compute.headers == ["model", "finished runs", "pruned", "epochs run / planned",
                               "compute saved"]
    # 4 runs of 2 planned epochs: baseline 2 + fast 2 + slow 1 + decayed 2 = 7 of 8
    assert compute.rows == [["m1", "4", "2", "7 / 8", "12%"]]


def test_no_compute_table_without_pruned_runs(tmp_path):
    settings = settings_for(tmp_path, CATEGORIES)
    fill(settings, lambda e: (Status.DONE, [0.5, 0.6], True))
    assert "compute" not in {t.key for t in tables(collect(settings))}


def test_crown_never_gives_a_pruned_option_the_win():
    assert crown([0.9, 0.8], False, "max", None, pruned=[True, False]) == [PRUNED, WINNER]
    assert crown([0.9], False, "max", None, pruned=[True]) == [PRUNED]
    assert crown([0.1, 0.2], False, "min", None, pruned=[False, True]) == [WINNER, PRUNED]


def test_combine_best_uses_only_options_that_ran_to_the_end(pruned, tmp_path):
    settings, summary = pruned
    plan = summary.models[0].combined.plan
    assert [p.label for p in plan.applied] == ["fast"]
    pick = combine.Pick("tuning", "slow", {"lr": 0.0001}, {"lr": 0.0001}, 0.9,
                        ran_to_end=False)
    skipped = combine.plan(settings.model("m1"), [pick], [], tmp_path, 1)
    assert skipped.applied == [] and skipped.skipped == [
        ("tuning", "its best slow was pruned (did not run to the end)")]


def _row(exp, status, duration, pruned_epoch=None):
    return Row(id=exp.id, model=exp.model, category=exp.category, status=status,
               duration_s=duration, pruned_epoch=pruned_epoch,
               config_json=json.dumps(dict(exp.config)))


def test_estimates_use_the_pruned_share(tmp_path):
    settings = settings_for(tmp_path, CATEGORIES)
    exps = {e.label: e for e in build_matrix(settings)}
    rows = [_row(exps["baseline"], "done", 200.0), _row(exps["fast"], "done", 200.0),
            _row(exps["slow"], "pruned", 100.0, pruned_epoch=1)]
    est = estimate_durations(rows, list(exps.values()))
    # a full run of the shape: 200 s (slow's 100 s at 1 of 2 epochs scales to 200 s);
    # one of two finished options pruned after half its epochs: 200 * (0.5 + 0.5 * 0.5)
    assert est[exps["decayed"].id] == pytest.approx(150.0)
    assert est[exps["slow"].id] == pytest.approx(150.0)  # its pruned time is no estimate
    assert est[exps["fast"].id] == 200.0  # its own full run
    assert est[exps["baseline"].id] == 200.0  # a baseline is never pruned
    assert estimate_durations(rows, list(exps.values()), pruning=False)[
        exps["decayed"].id] == pytest.approx(200.0)
    assert estimate_durations(rows[:2], list(exps.values()))[exps["decayed"].id] == 200.0


def test_a_pruned_options_time_is_the_ledgers_not_unknown(pruned):
    """The ranking's time of a pruned run was "?" though the ledger holds it."""
    _, summary = pruned
    table = summary.models[0].categories[0]
    assert [o.duration_s for o in table.options] == [20.0, 40.0, 40.0]

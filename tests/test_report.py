"""The summary on a ledger filled with known metrics: winners, deltas, cross-model counts,
noise marks, the combined config and its conflict rule, failures and the best run."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest
from report_helpers import fill_ledger, settings_for

from hyperparameter_system.app import api
from hyperparameter_system.matrix import combine
from hyperparameter_system.matrix.ranking import noise_test
from hyperparameter_system.report.summary import OptionStat, collect, wandb_pointer
from hyperparameter_system.report.tables import ReportTable, tables
from hyperparameter_system.store.row import Row
from hyperparameter_system.ui import commands

CATEGORIES = {
    "lr_cat": [{"lr": 0.01, "description": "fast"}, {"lr": 0.0001, "description": "slow"}],
    "size": [{"image_size": 64, "batch_size": 32, "description": "big"},
             {"image_size": 48, "description": "mid"}],
    "batch": [{"batch_size": 16, "description": "b16"}, {"batch_size": 128, "description": "b128"}],
}
METRICS = {
    "m1": {"baseline": 0.50, "fast": 0.60, "slow": 0.40, "big": 0.55, "mid": 0.52, "b16": 0.58,
           "b128": 0.45},
    "m2": {"baseline": 0.70, "fast": 0.65, "slow": 0.72, "big": 0.69, "mid": "exit code 1",
           "b16": 0.71, "b128": 0.75},
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def filled(tmp_path):
    settings = settings_for(tmp_path, CATEGORIES, models=("m1", "m2"))
    fill_ledger(settings, lambda e: METRICS[e.model][e.label])
    return settings, collect(settings)


def _model(summary, name):
    return next(m for m in summary.models if m.model == name)


def _table(summary, model, category):
    return next(t for t in _model(summary, model).categories if t.category == category)


def test_ranking_winners_and_deltas(filled):
    _, summary = filled
    lr = _table(summary, "m1", "lr_cat")
    assert [o.label for o in lr.options] == ["fast", "slow"]
    assert lr.winner.label == "fast"
    assert [o.delta for o in lr.options] == pytest.approx([0.10, -0.10])
    assert [o.significant for o in lr.options] == [None, None]  # one run each: noise unknown
    assert {m.model: {t.category: t.winner and t.winner.label for t in m.categories}
            for m in summary.models} == {
        "m1": {"lr_cat": "fast", "size": "big", "batch": "b16"},
        "m2": {"lr_cat": "slow", "size": None, "batch": "b128"}}  # big 0.69 < baseline 0.70
    below = _table(summary, "m2", "size").best_not_winning
    assert (below.label, below.verdict, below.winner) == ("big", "best, below baseline", False)
    mid = _table(summary, "m2", "size").options[-1]
    assert (mid.label, mid.mean, mid.status, mid.winner) == ("mid", None, "failed", False)
    fast = lr.options[0]
    assert (fast.duration_s, fast.epochs_run, fast.n) == (10.0, 2, 1)


def test_cross_model_view(filled):
    _, summary = filled
    view = [(e.category, e.label, e.wins, e.models, round(e.mean_delta, 6))
            for e in summary.cross]
    assert view == [
        ("lr_cat", "fast", 1, 2, 0.025), ("lr_cat", "slow", 1, 2, -0.04),
        ("size", "big", 1, 2, 0.02), ("size", "mid", 0, 1, 0.02),
        ("batch", "b16", 1, 2, 0.045), ("batch", "b128", 1, 2, 0.0),
    ]
    b128 = next(e for e in summary.cross if e.label == "b128")  # -0.05 and +0.05: no colour
    assert summary.better(b128.mean_delta) is None and summary.better(0.045) is True


def test_combined_config_and_conflict_rule(filled):
    settings, summary = filled
    m1 = _model(summary, "m1").combined.plan
    assert [p.category for p in m1.applied] == ["lr_cat", "size", "batch"]
    assert m1.changes == {"lr": 0.01, "image_size": 64, "batch_size": 16}
    assert [(c.key, c.kept_category, c.kept_value, c.dropped_category, c.dropped_value)
            for c in m1.conflicts] == [("batch_size", "batch", 16, "size", 32)]
    config = m1.experiments[0].config
    assert (config["lr"], config["image_size"], config["batch_size"]) == (0.01, 64, 16)
    assert m1.config_path == settings.system.reports_dir / "combined" / "m1.yaml"
    m2 = _model(summary, "m2").combined.plan
    assert m2.changes == {"lr": 0.0001, "batch_size": 128}
    assert m2.conflicts == []
    assert m2.skipped == [("size", "no option beat the baseline")]


def test_merge_tie_goes_to_the_earlier_category():
    a = combine.Pick("first", "a", {}, {"k": 1, "x": 0}, 0.5)
    b = combine.Pick("second", "b", {}, {"k": 2, "x": 0}, 0.5)
    changes, conflicts = combine.merge([a, b])
    assert changes == {"k": 1, "x": 0}
    assert [(c.key, c.kept_category) for c in conflicts] == [("k", "first")]
    changes, _ = combine.merge([a, combine.Pick("second", "b", {}, {"k": 2}, 0.6)])
    assert changes["k"] == 2


def test_failures_and_best_run(filled):
    _, summary = filled
    assert [(f.model, f.category, f.label, f.status, f.reason) for f in summary.failures] == [
        ("m2", "size", "mid", "failed", "exit code 1")]
    assert summary.failures[0].log_path.endswith("train.log")
    best = summary.best
    assert (best.model, best.category, best.label, best.metric) == ("m2", "batch", "b128", 0.75)
    assert best.wandb_mode == "offline"
    assert best.sync_command.startswith("wandb sync ") and best.sync_command.endswith(
        "offline-run-x")
    assert summary.counts == {"done": 13, "failed": 1}


def test_min_mode_ranks_lowest_first(tmp_path):
    settings = settings_for(tmp_path, {"lr_cat": CATEGORIES["lr_cat"]}, metric_mode="min")
    fill_ledger(settings, lambda e: METRICS["m1"][e.label])
    table = collect(settings).models[0].categories[0]
    assert [o.label for o in table.options] == ["slow", "fast"]
    assert table.winner.label == "slow"
    assert summary_better(settings, table.winner.delta) is True


def summary_better(settings, delta):
    return collect(settings).better(delta)


def test_repeats_mean_std_and_not_significant_marks(tmp_path):
    settings = settings_for(tmp_path, {"opt": [{"lr": 0.01, "description": "A"},
                                               {"lr": 0.02, "description": "B"}]}, repeats=3)
    values = {"baseline": [0.50, 0.52, 0.48], "A": [0.60, 0.61, 0.59], "B": [0.51, 0.53, 0.49]}
    experiments = fill_ledger(settings, lambda e: values[e.label.split("_seed")[0]][e.repeat])
    assert len(experiments) == 9 and {e.repeat for e in experiments} == {0, 1, 2}
    model = collect(settings).models[0]
    assert model.baseline.n == 3 and model.baseline.std == pytest.approx(0.02)
    a, b = model.categories[0].options
    assert (a.label, a.n, a.delta, a.significant) == ("A", 3, pytest.approx(0.10), True)
    assert (b.label, b.n, b.delta, b.significant) == ("B", 3, pytest.approx(0.01), False)
    assert b.std == pytest.approx(0.02)
    rendered = {t.key: t for t in tables(collect(settings))}
    ranking = rendered["ranking"]
    assert [row[7] for row in ranking.rows] == ["yes", "n.s."]


def test_noise_test_rule():
    def stat(values):
        s = OptionStat("m", "c", {}, "{}", "x", "x", {}, 0)
        s.values = list(values)
        return s

    base = stat([0.5, 0.5])
    assert noise_test(stat([0.6]), stat([0.5])) == (pytest.approx(0.1), None)
    assert noise_test(stat([0.6, 0.6]), base)[1] is True  # no spread: any delta counts
    # a single run borrows the other side's deviation: s = 0.01414, 2 se = 2 s sqrt(1 + 1/2)
    assert noise_test(stat([0.54]), stat([0.49, 0.51]))[1] is True  # 0.04 > 0.0346
    assert noise_test(stat([0.53]), stat([0.49, 0.51]))[1] is False  # 0.03 <= 0.0346


def test_wandb_pointer_online_and_offline():
    row = Row(id="x", result_json='{"wandb": {"mode": "online", "project": "p", "run_id": "r1"}}',
              wandb_mode=None, wandb_project=None, wandb_run_id=None,
              wandb_dir=None, run_dir="/runs/x", config_json="{}")
    assert wandb_pointer(row, "team") == ("online", "https://wandb.ai/team/p/runs/r1",
                                                 None)
    assert wandb_pointer(row, None) == ("online", "project p, run id r1", None)
    offline = replace(row, result_json='{"wandb": {"mode": "offline"}}',
                      wandb_dir="/runs/x/wandb/offline-run-1")
    assert wandb_pointer(offline, None) == ("offline", None,
                                                   "wandb sync /runs/x/wandb/offline-run-1")
    bare = replace(offline, wandb_dir=None)
    assert wandb_pointer(bare, None)[2] == "wandb sync /runs/x/wandb/offline-run-*"


def test_exports_csv_md_and_plots(filled, tmp_path):
    from hyperparameter_system.report import exports

    _, summary = filled
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(summary))))
    first = next(r for r in rows if r["table"] == "ranking")
    assert (first["model"], first["category"], first["#"], first["option"], first["delta"],
            first["verdict"]) == ("m1", "lr_cat", "1", "fast", "+0.1000", "winner")
    assert {r["table"] for r in rows} == {"model", "ranking", "cross_model", "combined",
                                          "conflicts", "failures", "best"}
    md = exports.to_markdown(summary)
    assert "## m2 / batch" in md and "| **1** | **b128** |" in md
    written = exports.write_plots(summary, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == ["curves_m1.png", "curves_m2.png", "deltas_batch.png", "deltas_lr_cat.png",
                     "deltas_size.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_unknown_export_format_is_a_clear_error(filled, tmp_path):
    from hyperparameter_system.core.errors import HpsysError
    from hyperparameter_system.report import exports

    with pytest.raises(HpsysError, match="expected one of csv, md, html"):
        exports.export(filled[1], "pdf", tmp_path / "x.pdf")


def test_summary_prints(filled, capsys):
    settings, _ = filled
    commands.report(settings, summary=True)
    out = capsys.readouterr().out
    assert "m1 / lr_cat" in out and "Best run: m2 / batch / b128" in out
    assert "wandb sync" in out


def test_empty_ledger_reports_nothing_without_crashing(tmp_path, capsys):
    from hyperparameter_system.report import exports

    settings = settings_for(tmp_path, CATEGORIES)
    summary = commands.report(settings, summary=True, export=("html", str(tmp_path / "r.html")))
    assert summary.best is None and summary.cross[0].wins == 0
    assert all(m.combined is None for m in summary.models)
    assert "runs: no runs yet" in capsys.readouterr().out
    assert exports.write_plots(summary, tmp_path / "plots") == []
    assert "<table>" in (tmp_path / "r.html").read_text()


def test_combine_best_runs_nothing_when_nothing_beats_the_baseline(tmp_path, capsys):
    """Not an error (make demo must still write its report): the base config stays the best."""
    from hyperparameter_system.core.errors import HpsysError

    (tmp_path / "empty").mkdir()
    empty = settings_for(tmp_path / "empty", {"lr_cat": CATEGORIES["lr_cat"]})
    with pytest.raises(HpsysError, match="run the matrix first"):
        commands.combine_best(empty, view=commands.CombineView(live=False))
    settings = settings_for(tmp_path, {"lr_cat": CATEGORIES["lr_cat"]})
    fill_ledger(settings, lambda e: 0.9 if e.category == "baseline" else 0.1)
    plan = collect(settings).models[0].combined.plan
    assert plan.applied == [] and plan.changes == {}
    result = commands.combine_best(settings, view=commands.CombineView(live=False))
    assert result.outcomes == [] and not result.interrupted
    assert "nothing to combine" in capsys.readouterr().err
    statuses = {row[-1] for t in tables(collect(settings)) if t.key == "model"
                for row in t.rows}
    assert "nothing to combine: no winner beat the baseline" in statuses


def test_combine_best_reruns_only_when_asked(tmp_path):
    """--combine-best --rerun runs a done combination again; without --rerun it is skipped."""
    settings = settings_for(tmp_path, {"lr_cat": CATEGORIES["lr_cat"]})
    fill_ledger(settings, lambda e: {"baseline": 0.5, "fast": 0.6, "slow": 0.4}[e.label])
    first = commands.combine_best(settings, view=commands.CombineView(live=False))
    assert first.count("done") == 1
    again = commands.combine_best(settings, view=commands.CombineView(live=False))
    assert again.skipped_done == 1 and again.outcomes == []
    rerun = commands.combine_best(settings, view=commands.CombineView(live=False), rerun=True)
    assert rerun.count("done") == 1 and rerun.skipped_done == 0


def test_the_combined_temp_configs_are_numbered_after_the_matrix(filled):
    settings, summary = filled
    combined = [e.index for m in summary.models for e in m.combined.plan.experiments]
    assert combined == [15, 16]  # 2 models x 7 experiments, then one combined each


def test_every_view_colours_the_same_delta_columns():
    """The html export colours what the terminal colours, "combined - winner" included."""
    from hyperparameter_system.report import exports

    table = ReportTable("combined", "t", ["winner metric", "combined - winner"])
    table.add(["0.5000", "+0.1000"], better=True)
    assert '<td>0.5000</td><td class="better">+0.1000</td>' in exports._html_table(table)


def test_a_changed_metric_is_read_from_each_result_not_the_ledger(tmp_path, capsys):
    """Runs recorded under best_val_f1 (max), then system.metric switched to final_val_loss
    (min): the summary, combine and the best run rank the new key, the ledger keeps its own."""
    quality = {"quality": [{"fake.metric": 0.9, "description": "good"},
                           {"fake.metric": 0.2, "description": "poor"}]}
    ran = settings_for(tmp_path, quality)
    assert api.run(ran, api.select(ran)).count("done") == 3
    settings = settings_for(tmp_path, quality, metric="metrics.final_val_loss",
                            metric_mode="min")
    summary = collect(settings)
    table = summary.models[0].categories[0]
    assert [(o.label, o.mean) for o in table.options] == [("good", pytest.approx(0.1)),
                                                          ("poor", pytest.approx(0.8))]
    assert table.winner.label == "good" and summary.best.label == "good"
    assert summary.models[0].combined.plan.applied[0].label == "good"
    assert summary.metric_missing is None
    assert sorted(r.metric for r in api.open_ledger(settings).rows()) == pytest.approx([0.2, 0.5,
                                                                                        0.9])


def test_a_metric_no_result_has_is_one_warning_naming_what_is(tmp_path, capsys):
    settings = settings_for(tmp_path, {"lr_cat": CATEGORIES["lr_cat"]})
    fill_ledger(settings, lambda e: METRICS["m1"][e.label])
    renamed = settings_for(tmp_path, {"lr_cat": CATEGORIES["lr_cat"]}, metric="metrics.val_f1")
    summary = commands.report(renamed, summary=True)
    assert summary.best is None and summary.models[0].categories[0].winner is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "system.metric metrics.val_f1" in err
    assert "metrics.best_val_f1" in err and "metrics.epochs_run" in err
    assert collect(settings).metric_missing is None


def test_a_tie_at_the_top_is_no_winner(tmp_path):
    """Two patiences that never trigger end alike: both marked tie, no win counted, and
    combine leaves the category out rather than pick the first one listed."""
    cats = {"patience": [{"patience": 5, "description": "p5"},
                         {"patience": 7, "description": "p7"},
                         {"patience": 1, "description": "p1"}],
            "lr_cat": CATEGORIES["lr_cat"]}
    values = {"baseline": 0.5, "p5": 0.6, "p7": 0.6, "p1": 0.4, "fast": 0.7, "slow": 0.4}
    settings = settings_for(tmp_path, cats)
    fill_ledger(settings, lambda e: values[e.label])
    summary = collect(settings)
    model = summary.models[0]
    patience = next(t for t in model.categories if t.category == "patience")
    assert patience.winner is None
    assert [(o.label, o.tied) for o in patience.options] == [("p5", True), ("p7", True),
                                                             ("p1", False)]
    ranking = next(t for t in tables(summary) if t.category == "patience")
    assert [row[-1] for row in ranking.rows] == ["tie", "tie", ""]
    assert not any(winner for winner, _ in ranking.tones)
    assert {e.label: e.wins for e in summary.cross if e.category == "patience"} == {
        "p5": 0, "p7": 0, "p1": 0}
    plan = model.combined.plan
    assert [p.category for p in plan.applied] == ["lr_cat"]
    assert plan.skipped == [("patience", "no winner (tie: p5, p7)")]


def test_the_best_so_far_only_leads_while_an_option_may_still_run(tmp_path):
    """A pending option could still beat it: no winner, no win counted, nothing combined for
    that category until it has run (a failed option does not hold the crown back)."""
    cats = {"lr_cat": CATEGORIES["lr_cat"] + [{"lr": 0.001, "description": "mid"},
                                              {"lr": 0.002, "description": "broken"}]}
    settings = settings_for(tmp_path, cats)
    values = {"baseline": 0.5, "fast": 0.7, "slow": 0.4, "mid": None, "broken": "boom"}
    fill_ledger(settings, lambda e: values[e.label])
    summary = collect(settings)
    table = summary.models[0].categories[0]
    assert table.winner is None and [o.label for o in table.options if o.leading] == ["fast"]
    ranking = next(t for t in tables(summary) if t.category == "lr_cat")
    assert ranking.rows[0][-1] == "leading" and not any(w for w, _ in ranking.tones)
    assert {e.label: e.wins for e in summary.cross}["fast"] == 0
    assert summary.models[0].combined.plan.skipped == [
        ("lr_cat", "not finished (fast leads so far)")]
    values["mid"] = 0.6  # now every option has ended: the leader is the winner
    fill_ledger(settings, lambda e: values[e.label])
    assert collect(settings).models[0].categories[0].winner.label == "fast"


def test_a_tie_below_the_top_keeps_the_winner(tmp_path):
    settings = settings_for(tmp_path, {"lr_cat": CATEGORIES["lr_cat"] + [
        {"lr": 0.001, "description": "mid"}]})
    fill_ledger(settings, lambda e: {"baseline": 0.5, "fast": 0.7}.get(e.label, 0.4))
    table = collect(settings).models[0].categories[0]
    assert table.winner.label == "fast" and not any(o.tied for o in table.options)


def test_path_columns_fold_instead_of_being_cut(monkeypatch):
    """A narrow terminal wraps a failure's log path onto more lines, never cuts it with an
    ellipsis: the whole path can be copied."""
    from rich.console import Console

    from hyperparameter_system.ui import console
    from hyperparameter_system.ui import screen as ui_screen

    screen = Console(width=60, file=io.StringIO(), highlight=False)
    monkeypatch.setattr(ui_screen, "console", screen)
    log = "/runs/" + "very_long_project_name/" * 4 + "run_0123456789abcdef/train.log"
    table = ReportTable("failures", "Failures", ["model", "reason", "log"])
    table.add(["m1", "exit code 1 after a long and winding explanation", log])
    console.print_tables([table])
    lines = screen.file.getvalue().splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("model"))
    at = lines[header].index("log")
    assert "".join(line[at:].strip() for line in lines[header + 2:]) == log

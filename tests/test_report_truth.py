"""Reports that tell the truth (issue 15, 11-15): a winner beats the baseline, the run name is
always shown, NaN ranks last and numbers keep a sane width, log text cannot drive the terminal,
and the exports cannot be made to run anything."""

from __future__ import annotations

import csv
import io
import json
import math
import time

import pytest
from report_helpers import fill_ledger, settings_for
from rich.console import Console

from hyperparameter_system.core.text import printable
from hyperparameter_system.matrix.experiments import build_matrix
from hyperparameter_system.matrix.racing import UNDECIDED
from hyperparameter_system.matrix.ranking import (
    BELOW,
    LEADING,
    LEVEL,
    TIE,
    WINNER,
    WITHIN_NOISE,
    Point,
    crown,
    ranking,
)
from hyperparameter_system.report import exports
from hyperparameter_system.report.format import fmt_delta, fmt_metric, fmt_number
from hyperparameter_system.report.summary import OptionStat, collect
from hyperparameter_system.report.tables import tables
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.ui import commands
from hyperparameter_system.ui import console as ui_console
from hyperparameter_system.ui import screen as ui_screen

NAN = float("nan")
QUICKSTART = {"image": [{"image_size": 16, "batch_size": 64, "description": "img16_batch64"},
                        {"image_size": 8, "batch_size": 64}]}


@pytest.fixture
def screen(monkeypatch):
    """The console's output, as a terminal would get it (colour codes and all)."""
    out = Console(width=200, file=io.StringIO(), force_terminal=True, highlight=False)
    monkeypatch.setattr(ui_screen, "console", out)
    return out.file


def _stat(values):
    s = OptionStat("m", "c", {}, "{}", "x", "x", {}, 0)
    s.values = list(values)
    return s


def _ranking_table(summary, category):
    return next(t for t in tables(summary) if t.key == "ranking" and t.category == category)


# -- 11: the winner beats the baseline --------------------------------------------------------

def test_crown_needs_the_baseline_beaten():
    base = Point(0.80)
    assert crown([0.7291, 0.70], False, "max", base) == [BELOW, ""]
    assert crown([0.80, 0.70], False, "max", base) == [LEVEL, ""]
    assert crown([0.81, 0.70], False, "max", base) == [WINNER, ""]
    assert crown([0.81, 0.70], True, "max", base) == [LEADING, ""]
    assert crown([0.81, 0.70], False, "max") == [WINNER, ""]  # no baseline: best of options
    assert crown([0.81, 0.70], False, "max", Point(None)) == [WINNER, ""]  # baseline failed
    assert crown([0.7, 0.7, 0.6], False, "max", base) == [BELOW, BELOW, ""]  # a tie below it
    assert crown([0.9, 0.9, 0.6], False, "max", base) == [TIE, TIE, ""]
    assert crown([0.7291, 0.90], False, "min", base) == [WINNER, ""]  # lower loss beats 0.80
    # repeats: better on the mean but within two standard errors is no win
    baseline = _stat([0.50, 0.52, 0.48])
    assert crown([_stat([0.51, 0.53, 0.49]), _stat([0.40])], False, "max",
                 baseline) == [WITHIN_NOISE, ""]
    assert crown([_stat([0.60, 0.61, 0.59])], False, "max", baseline) == [WINNER]


def test_the_best_below_the_baseline_is_no_winner_anywhere(tmp_path, screen):
    """The quickstart: img16_batch64's delta is -0.0709, so no win, no cross-model win, and
    --combine-best leaves the category out, saying why."""
    settings = settings_for(tmp_path, QUICKSTART, models=("m1", "m2"))
    values = {("m1", "baseline"): 0.80, ("m1", "img16_batch64"): 0.7291,
              ("m2", "baseline"): 0.60, ("m2", "img16_batch64"): 0.62}
    fill_ledger(settings, lambda e: values.get((e.model, e.label), 0.5))
    summary = collect(settings)
    m1, m2 = summary.models
    table = m1.categories[0]
    assert table.winner is None
    best = table.best_not_winning
    assert (best.label, best.verdict, best.winner) == ("img16_batch64", BELOW, False)
    assert best.delta == pytest.approx(-0.0709)
    assert m2.categories[0].winner.label == "img16_batch64"
    cross = {e.label: (e.wins, e.models) for e in summary.cross}
    assert cross["img16_batch64"] == (1, 2)  # wins only where it beat the baseline
    rendered = _ranking_table(summary, "image")
    assert rendered.rows[0][-1] == "best, below baseline" and not rendered.tones[0][0]
    assert "no option beat the baseline" in rendered.note
    assert "img16_batch64" in rendered.note and "-0.0709" in rendered.note
    assert m1.combined.plan.skipped == [("image", "no option beat the baseline")]
    assert [p.label for p in m2.combined.plan.applied] == ["img16_batch64"]
    combined = next(t for t in tables(summary) if t.key == "combined" and t.model == "m1")
    assert combined.rows[0][:2] == ["image", "not applied: no option beat the baseline"]
    commands.report(settings, summary=True)
    text = screen.getvalue()
    assert "best, below baseline" in text and "no option beat the baseline" in text


def test_within_noise_of_the_baseline_is_no_win(tmp_path):
    settings = settings_for(tmp_path, {"opt": [{"lr": 0.01, "description": "A"},
                                               {"lr": 0.02, "description": "B"}]}, repeats=3)
    values = {"baseline": [0.50, 0.52, 0.48], "A": [0.51, 0.53, 0.49], "B": [0.40, 0.41, 0.39]}
    fill_ledger(settings, lambda e: values[e.label.split("_seed")[0]][e.repeat])
    summary = collect(settings)
    table = summary.models[0].categories[0]
    # paired seeds (matrix.racing): A's +0.01 on each seed is no sure gain at 3 seeds
    assert table.winner is None and table.options[0].verdict == UNDECIDED
    assert table.options[0].half_width > abs(table.options[0].delta)
    assert {e.label: e.wins for e in summary.cross} == {"A": 0, "B": 0}
    assert summary.models[0].combined.plan.applied == []


def test_a_baseline_that_may_still_run_holds_the_crown_back(tmp_path):
    settings = settings_for(tmp_path, QUICKSTART)
    fill_ledger(settings, lambda e: None if e.category == "baseline" else 0.7)
    table = collect(settings).models[0].categories[0]
    assert table.winner is None
    fill_ledger(settings, lambda e: {"baseline": 0.6, "img16_batch64": 0.7}.get(e.label, 0.5))
    assert collect(settings).models[0].categories[0].winner.label == "img16_batch64"


# -- 12: the run name is always shown ---------------------------------------------------------

def test_every_table_shows_the_run_name_beside_the_description(tmp_path, screen):
    settings = settings_for(tmp_path, {"opt": [{"lr": 0.001, "description": "AdamW, small lr"},
                                               {"lr": 0.1, "description": "broken"}]})
    fill_ledger(settings, lambda e: {"baseline": 0.5, "AdamW, small lr": 0.6}.get(
        e.label, "exit code 1"))
    summary = collect(settings)
    run_name = summary.models[0].categories[0].options[0].run_name
    assert run_name == "opt_lr0.001"
    for t in tables(summary):
        if t.key in ("ranking", "cross_model", "combined", "failures", "failure_logs", "best"):
            assert "run name" in t.headers, t.key
            col = t.headers.index("run name")
            assert any(row[col].startswith("opt_lr") for row in t.rows), t.key
    commands.report(settings, summary=True)
    lines = printable(screen.getvalue()).splitlines()
    row = next(line for line in lines if "AdamW, small lr" in line and "0.6000" in line)
    assert run_name in row
    assert any("opt_lr0.1" in line and "broken" in line for line in lines)  # the failure
    assert f"AdamW, small lr (run {run_name})" in printable(screen.getvalue())  # best run


def test_an_option_without_a_description_shows_its_run_name_once(tmp_path):
    settings = settings_for(tmp_path, QUICKSTART)
    fill_ledger(settings, lambda e: 0.5)
    t = _ranking_table(collect(settings), "image")
    undescribed = next(row for row in t.rows if row[2] == "image_image_size8_batch_size64")
    assert undescribed[1] == ""


# -- 13: NaN ranks last; numbers keep a sane width --------------------------------------------

def test_ranking_puts_nan_after_numbers_and_none_last():
    means = [NAN, 0.4, None, 0.6]
    assert ranking(means, "max") == [3, 1, 0, 2]
    assert ranking(means, "min") == [1, 3, 0, 2]
    assert crown([means[i] for i in ranking(means, "max")], False, "max") == [WINNER, "", "",
                                                                              ""]
    assert crown([NAN, NAN], False, "max") == ["", ""]


@pytest.mark.parametrize("mode", ["max", "min"])
def test_a_nan_metric_ranks_last_in_both_modes(tmp_path, mode):
    cats = {"lr_cat": [{"lr": 0.01, "description": "diverged"},
                       {"lr": 0.001, "description": "fine"}]}
    settings = settings_for(tmp_path, cats, metric_mode=mode)
    base = 0.9 if mode == "min" else 0.1
    fill_ledger(settings, lambda e: {"baseline": base, "diverged": NAN, "fine": 0.5}[e.label])
    summary = collect(settings)
    table = summary.models[0].categories[0]
    assert [o.label for o in table.options] == ["fine", "diverged"]
    assert table.winner.label == "fine" and math.isnan(table.options[1].mean)
    assert summary.models[0].combined.plan.skipped == []
    assert summary.best.label == "fine"
    row = _ranking_table(summary, "lr_cat").rows[1]
    assert (row[0], row[1], row[4], row[6]) == ("-", "diverged", "nan", "nan")
    assert {e.label: e.wins for e in summary.cross} == {"fine": 1, "diverged": 0}


def test_every_option_nan_says_so(tmp_path):
    settings = settings_for(tmp_path, QUICKSTART)
    fill_ledger(settings, lambda e: 0.5 if e.category == "baseline" else NAN)
    summary = collect(settings)
    assert summary.models[0].categories[0].winner is None
    assert "NaN" in _ranking_table(summary, "image").note
    assert summary.models[0].combined.plan.skipped == [("image", "no finished option")]


def test_numbers_keep_a_sane_width():
    assert fmt_metric(1e308) == "1e+308" and fmt_delta(-1e308) == "-1e+308"
    assert fmt_metric(NAN) == fmt_delta(NAN) == "nan"
    assert fmt_metric(float("inf")) == "inf" and fmt_delta(float("inf")) == "+inf"
    assert fmt_metric(0.0709) == "0.0709" and fmt_delta(-0.0709) == "-0.0709"
    assert fmt_metric(3e-6) == "3e-06"  # not 0.0000
    assert fmt_delta(2.5e-17) == "+0.0000"  # float noise stays zero
    assert fmt_metric(1234567.0) == "1.235e+06"
    assert fmt_number(1e308) == "1e+308" and fmt_number(2) == "2"
    assert max(len(fmt_metric(v)) for v in (1e308, -1e-308, 1e-300, 123456.78)) <= 12


def test_a_huge_metric_prints_short(tmp_path, screen):
    settings = settings_for(tmp_path, QUICKSTART)
    fill_ledger(settings, lambda e: 1e308 if e.label == "img16_batch64" else 0.5)
    commands.report(settings, summary=True)
    text = screen.getvalue()
    assert "1e+308" in text and "0" * 30 not in text


# -- 14: log text cannot drive the terminal ---------------------------------------------------

EVIL = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]2;again\x1b\\\x1b[31mCUDA error\x1b[0m\x07\x08\x9b1m"


def test_printable_strips_escapes_and_keeps_the_last_carriage_return():
    assert printable(EVIL) == "CUDA error"
    assert printable("ep 10%|#  |\rep 50%|## |\rep 100%|###|\nnext\tline\r\n") == (
        "ep 100%|###|\nnext\tline\n")
    assert printable("\x1b]0;unterminated title\nkept") == "\nkept"
    assert printable("é 日本 █") == "é 日本 █" and printable(None) == ""


def _failed_ledger(tmp_path, error, log_tail):
    settings = settings_for(tmp_path, QUICKSTART)
    experiments = build_matrix(settings)
    ledger = Ledger(settings.system.ledger)
    ledger.sync(experiments)
    now = time.time()
    for e in experiments:
        ledger.finish(e.id, Outcome(e.id, "failed", now, now + 1, exit_code=1, error=error,
                                    log_tail=log_tail, run_dir=str(tmp_path),
                                    log_path=str(tmp_path / "train.log")), None)
    return settings


def test_failure_reasons_and_log_tails_reach_the_terminal_clean(tmp_path, screen):
    tqdm = "epoch 1:  10%|#  | 1/10\repoch 1:  50%|## | 5/10\repoch 1: 100%|###| 10/10"
    settings = _failed_ledger(tmp_path, None, f"{EVIL}\n{tqdm}\nTraceback\n{EVIL}\n")
    summary = collect(settings)
    failure = summary.failures[0]
    assert failure.reason == "CUDA error"
    assert failure.tail == "epoch 1: 100%|###| 10/10\nTraceback\nCUDA error"
    commands.report(settings, summary=True)
    raw = screen.getvalue()
    assert "pwned" not in raw and "\x1b[2J" not in raw and "\x1b]" not in raw
    assert "\x07" not in raw and "\r" not in raw and "CUDA error" in raw
    assert "10/10" in raw and "5/10" not in raw


def test_an_error_quoting_the_log_is_clean_in_the_live_display(tmp_path, screen):
    settings = settings_for(tmp_path, QUICKSTART)
    exp = build_matrix(settings)[0]
    display = ui_console.RunDisplay(total=1, skipped=0)
    now = time.time()
    display.finished(exp, Outcome(exp.id, "failed", now, now + 1, exit_code=1, error=EVIL))
    assert "CUDA error" in screen.getvalue() and "pwned" not in screen.getvalue()
    assert "\x1b[2J" not in screen.getvalue()
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": "\x1b]0;t\x073"}) + "\n")
    assert ui_console.latest_epoch(str(tmp_path)) == "epoch 3"


# -- 15: exports run nothing ------------------------------------------------------------------

def test_csv_cells_that_would_be_formulas_get_a_quote():
    cell = exports.csv_cell
    assert cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    for risky in ("+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-inf", "=1"):
        assert cell(risky) == "'" + risky
    for plain in ("-0.0709", "+0.1000", "0.5", "-", "1e+308", "+1e+308", "-3e-06", "text"):
        assert cell(plain) == plain


HOSTILE = [{"lr": 0.01, "description": '=HYPERLINK("http://evil","click")'},
           {"lr": 0.001, "description": "<script>alert(1)</script> a|b & c"}]


@pytest.fixture
def hostile(tmp_path):
    settings = settings_for(tmp_path, {"lr_cat": HOSTILE})
    fill_ledger(settings, lambda e: {"baseline": 0.5}.get(e.label, 0.6 if "HYPER" in e.label
                                                          else "<img src=x onerror=alert(1)>"))
    return collect(settings)


def test_csv_export_neutralises_formulas_and_keeps_numbers(hostile):
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(hostile))))
    cells = [c for r in rows for c in r.values()]
    assert not any(c.startswith(("=", "@")) for c in cells)
    assert '\'=HYPERLINK("http://evil","click")' in cells
    ranking = next(r for r in rows if r["table"] == "ranking")
    assert ranking["delta"] == "+0.1000" and ranking["metric"] == "0.6000"


def test_markdown_export_escapes_html_and_pipes(hostile):
    md = exports.to_markdown(hostile)
    assert "<script>" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a\\|b &amp; c" in md
    for line in md.splitlines():
        if line.startswith("| ") and "script" in line:
            assert line.count(" | ") + 2 == line.count("|") - line.count("\\|")


def test_html_export_escapes_every_cell(hostile):
    page = exports.to_html(hostile)
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a|b &amp; c" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page

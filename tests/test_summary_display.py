"""How the summary reads in a terminal: runs of another --set config are told with the --set
that shows them (item 17); only what ran is drawn, once, titles on one line, paths wrapped at a
`/`, names never cut at 80 columns (item 18)."""

from __future__ import annotations

import io
import re

from report_helpers import fill_ledger, settings_for, write_master
from rich.console import Console

from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.report.tables import ReportTable
from hyperparameter_system.ui import commands, console
from hyperparameter_system.ui import screen as ui_screen

CATEGORIES = {
    "lr_cat": [{"lr": 0.01, "description": "fast"}, {"lr": 0.0001, "description": "slow"}],
    "size": [{"image_size": 64, "description": "big"}],
    "batch": [{"batch_size": 16, "description": "b16"}],
}


def screen(monkeypatch, width: int) -> Console:
    out = Console(width=width, file=io.StringIO(), highlight=False)
    monkeypatch.setattr(ui_screen, "console", out)
    return out


def test_runs_of_another_set_config_are_told_with_the_set_that_shows_them(tmp_path,
                                                                           monkeypatch):
    path = write_master(tmp_path, CATEGORIES)
    with_set = load_settings(path, ["epochs=3"])
    fill_ledger(with_set, lambda e: 0.5)
    out = screen(monkeypatch, 160)
    summary = commands.report(load_settings(path), summary=True)
    text = out.file.getvalue()
    assert not summary.counts  # the plain config has no runs of its own
    assert "no runs of this config yet; 5 run(s) of another config: 5 with --set epochs=3" in text
    assert "show them with --summary --set epochs=3" in text
    out.file.truncate(0)
    again = commands.report(with_set, summary=True)  # the same --set shows them
    assert again.counts == {"done": 5} and not again.other_configs
    assert "another config" not in out.file.getvalue()


def test_only_categories_that_ran_are_drawn(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, CATEGORIES)
    fill_ledger(settings, lambda e: 0.6 if e.category in ("baseline", "lr_cat") else None)
    out = screen(monkeypatch, 160)
    commands.report(settings, summary=True)
    text = out.file.getvalue()
    assert "m1 / lr_cat" in text and "not run yet: 2 category table(s) (size, batch)" in text
    assert "m1 / size" not in text and "m1 / batch" not in text
    assert "not run  " not in text  # no table of "not run" rows


def test_titles_are_one_line_and_names_fold_at_80_columns(tmp_path, monkeypatch):
    long_name = {"lr": 0.01, "weight_decay": 0.0005, "description": "a rather long description"}
    settings = settings_for(tmp_path, {"optimizer_with_a_long_name": [long_name]})
    fill_ledger(settings, lambda e: 0.6)
    run_name = next(t for t in commands.api.report(settings).tables
                    if t.key == "ranking").rows[0][2]
    out = screen(monkeypatch, 80)
    commands.report(settings, summary=True)
    lines = out.file.getvalue().splitlines()
    tables = lines[:next(i for i, line in enumerate(lines) if line.startswith("Best run:"))]
    assert not any(len(line) > 80 for line in tables)  # (the W&B sync line is soft-wrapped)
    assert "…" not in out.file.getvalue()  # nothing cut with an ellipsis
    title = "Across models: which option wins each category"
    assert any(line.startswith(title) for line in lines)  # wrapped by words at 80, not 20
    cells = "".join(re.sub(r"\s+", "", line) for line in lines)
    assert run_name in cells  # folded over lines, whole


def test_a_wide_title_stays_on_one_line_at_160(monkeypatch):
    out = screen(monkeypatch, 160)
    title = "Across models: which option wins each category (a win beats every other option)"
    table = ReportTable("cross_model", title, ["category", "wins"])
    table.add(["lr", 1])
    console.print_tables([table])
    assert title in out.file.getvalue().splitlines()


def test_paths_wrap_after_a_slash_not_mid_name(monkeypatch):
    out = screen(monkeypatch, 70)
    log = "/runs/" + "project_name/" * 5 + "run_0123456789abcdef/train.log"
    table = ReportTable("failures", "Failures", ["model", "reason", "log"])
    table.add(["m1", "exit code 1 after a long and winding explanation", log])
    console.print_tables([table])
    lines = out.file.getvalue().splitlines()
    at = next(line.index(" log") + 1 for line in lines if " log" in line)
    pieces = [cell for cell in (line[at:].strip() for line in lines) if cell not in ("", "log")]
    pieces = [p for p in pieces if not p.startswith("─")]
    assert "".join(pieces) == log and len(pieces) > 1, pieces
    assert all(p.endswith("/") for p in pieces[:-1])  # every break right after a slash


def test_combine_best_with_summary_prints_the_combined_tables_once(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, CATEGORIES)
    fill_ledger(settings, lambda e: {"fast": 0.7}.get(e.label, 0.5))
    monkeypatch.setattr(commands.api, "run_combined", lambda *a, **k: commands.RunResult())
    out = screen(monkeypatch, 160)
    commands.combine_best(settings, view=commands.CombineView(live=False, tables=False))
    commands.report(settings, summary=True)
    assert out.file.getvalue().count("m1 / combined winners") == 1


def test_combined_runs_are_not_another_config(tmp_path, monkeypatch):
    """Issue 20 item 4: after --combine-best the first demo said "2 run(s) of another config:
    2 with --set patience=5" (the combined runs, compared with the model's last experiment);
    combined runs and search trials are the matrix's own runs."""
    import time

    from hyperparameter_system.app import api
    from hyperparameter_system.store.ledger import Ledger
    from hyperparameter_system.store.outcomes import Outcome

    settings = settings_for(tmp_path, CATEGORIES)
    fill_ledger(settings, lambda e: {"fast": 0.7, "big": 0.65}.get(e.label, 0.5))
    plans = api.combine_plans(settings).plans
    ledger = Ledger(settings.system.ledger)
    for e in (e for p in plans for e in p.experiments):
        ledger.sync([e])
        now = time.time()
        ledger.finish(e.id, Outcome(e.id, "done", now, now + 1, exit_code=0,
                                    result={"metrics": {"best_val_f1": 0.8}}), 0.8)
    out = screen(monkeypatch, 160)
    summary = commands.report(settings, summary=True)
    assert summary.counts["done"] == 6 and summary.models[0].combined is not None
    assert not summary.other_configs and "another config" not in out.file.getvalue()

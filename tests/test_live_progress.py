"""The live progress view: a "done" line shows the headline metric, the epoch its total, and
the bar counts timeouts as timed out, as the final line does (item 19)."""

from __future__ import annotations

import io
import json

from report_helpers import settings_for
from rich.console import Console

from hyperparameter_system.matrix.experiments import build_matrix
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.ui import console
from hyperparameter_system.ui import screen as ui_screen


def test_done_lines_metric_epoch_total_and_timeouts(tmp_path, monkeypatch):
    screen = Console(width=160, file=io.StringIO(), highlight=False, force_terminal=False)
    monkeypatch.setattr(ui_screen, "console", screen)
    settings = settings_for(tmp_path, {"lr_cat": [{"lr": 0.01}]})
    first, second = build_matrix(settings)
    view = console.RunDisplay(2, 0, None, 1, "metrics.best_val_f1")
    with view:
        run_dir = tmp_path / "r"
        run_dir.mkdir()
        (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_f1": 0.5}) + "\n")
        assert console.latest_epoch(str(run_dir), first.config["epochs"]) == (
            f"epoch 1/{first.config['epochs']} val_f1 0.5000")
        view.finished(first, Outcome(first.id, "done", 0, 5, exit_code=0,
                                     result={"metrics": {"best_val_f1": 0.8123}}))
        view.finished(second, Outcome(second.id, "timeout", 0, 9, error="timed out"))
        bar = view._render()
    text = screen.file.getvalue()
    assert "metrics.best_val_f1 0.8123" in text
    assert view.counts == {"done": 1, "timeout": 1}
    assert "1 timed out" in str(view.progress.tasks[0].fields["counts"])
    assert "0 failed" in str(view.progress.tasks[0].fields["counts"])
    assert bar is not None and view.progress.tasks[0].completed == 2


def test_pruned_runs_are_counted_in_the_bar_and_the_last_line(tmp_path, monkeypatch):
    """A pruned run is final and no failure: the bar and the final line count it as pruned
    (only when there are any)."""
    from hyperparameter_system.core.states import Status
    from hyperparameter_system.run.tally import RunResult

    screen = Console(width=160, file=io.StringIO(), highlight=False, force_terminal=False)
    monkeypatch.setattr(ui_screen, "console", screen)
    settings = settings_for(tmp_path, {"lr_cat": [{"lr": 0.01}]})
    first, second = build_matrix(settings)
    done = Outcome(first.id, Status.DONE, 0, 5, exit_code=0)
    pruned = Outcome(second.id, Status.PRUNED, 0, 2, exit_code=0)
    view = console.RunDisplay(2, 0, None, 1)
    with view:
        view.finished(first, done)
        view.finished(second, pruned)
        view._render()
    counts = str(view.progress.tasks[0].fields["counts"])
    assert "1 pruned" in counts and "0 failed" in counts
    assert view.progress.tasks[0].completed == 2
    console.print_run_result(RunResult(outcomes=[done, pruned]))
    assert "run finished: 1 done, 1 pruned, 0 failed, 0 timed out" in screen.file.getvalue()
    screen.file.seek(0)
    screen.file.truncate(0)
    console.print_run_result(RunResult(outcomes=[done]))
    assert "pruned" not in screen.file.getvalue()

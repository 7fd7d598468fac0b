"""Duration estimates: the experiment's own past run, else the same model, image size, batch
size and epochs, else the model's mean, else none; and the progress display's ETA line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from report_helpers import settings_for

from hyperparameter_system.matrix.experiments import build_matrix
from hyperparameter_system.store.estimates import estimate_durations, spread
from hyperparameter_system.store.row import Row
from hyperparameter_system.ui import console

CATEGORIES = {"size": [{"image_size": 64, "description": "A"},
                       {"image_size": 64, "lr": 0.1, "description": "B"},
                       {"image_size": 48, "description": "C"}]}


def _row(exp, status, duration):
    return Row(id=exp.id, model=exp.model, status=status, duration_s=duration,
               config_json=json.dumps(dict(exp.config)))


def test_estimate_tiers(tmp_path):
    settings = settings_for(tmp_path, CATEGORIES, models=("m1", "m2"))
    exps = {(e.model, e.label): e for e in build_matrix(settings)}
    rows = [_row(exps["m1", "baseline"], "done", 100.0), _row(exps["m1", "A"], "done", 300.0),
            _row(exps["m1", "C"], "failed", 5.0)]
    est = estimate_durations(rows, list(exps.values()))
    assert est[exps["m1", "A"].id] == 300.0  # its own run
    assert est[exps["m1", "B"].id] == 300.0  # same model, image size, batch size and epochs
    assert est[exps["m1", "C"].id] == pytest.approx(200.0)  # the model's mean (failures ignored)
    assert est[exps["m2", "A"].id] is None  # nothing seen for that model


def _eta(display) -> str:
    display._render()
    return display.progress.tasks[0].fields["eta"]


def test_run_display_eta_from_past_then_from_this_run(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(console.time, "time", lambda: now[0])
    display = console.RunDisplay(total=4, skipped=0, eta_s=125.0, slots=2)
    assert _eta(display) == "ETA 2m05s (from past durations)"
    assert _eta(console.RunDisplay(total=1, skipped=0)) == "ETA ?"
    a, b, c = (SimpleNamespace(id=i, describe=lambda: "m / c / o") for i in "abc")
    display.started(a, "/nowhere", "cpu0")
    display.started(b, "/nowhere", "cpu1")
    now[0] += 40
    display.finished(a, SimpleNamespace(status="done", duration_s=40.0, error=None))
    display.started(c, "/nowhere", "cpu0")
    now[0] += 10  # b 50 s in, c 10 s in, one queued: (0 + 30 + 40) s of work on 2 slots
    assert _eta(display) == "ETA 35s"


def test_run_display_counts_a_stopped_experiment_apart(monkeypatch):
    display = console.RunDisplay(total=3, skipped=0)
    exps = [SimpleNamespace(id=i, describe=lambda: "m / c / o") for i in "abc"]
    for exp, status in zip(exps, ("done", "timeout", "interrupted"), strict=True):
        display.finished(exp, SimpleNamespace(status=status, duration_s=1.0, error=None))
    display._render()
    task = display.progress.tasks[0]
    assert task.completed == 2  # the stopped one is not finished: it resumes next time
    assert "1 done" in task.fields["counts"] and "1 timed out" in task.fields["counts"]
    assert "1 interrupted" in task.fields["counts"] and task.fields["eta"].startswith("stopped")


def test_spread_is_the_known_durations_over_the_slots():
    """The one estimate of a plan's wall time the API's plans and the console's line share."""
    assert spread([10.0, None, 20.0], 2) == 15.0
    assert spread([None, None], 2) is None
    assert spread([5.0], None) is None

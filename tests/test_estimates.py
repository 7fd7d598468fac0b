"""Duration estimates: the experiment's own past run, else the same model, image size, batch
size and epochs, else the model's mean, else none; and the progress display's ETA line."""

from __future__ import annotations

import json

import pytest
from report_helpers import settings_for

from hyperparameter_system import console
from hyperparameter_system.estimates import estimate_durations
from hyperparameter_system.hyperparameter_configs import build_matrix
from hyperparameter_system.ledger import Row

CATEGORIES = {"size": [{"image_size": 64, "description": "A"},
                       {"image_size": 64, "lr": 0.1, "description": "B"},
                       {"image_size": 48, "description": "C"}]}


def _row(exp, status, duration):
    return Row({"id": exp.id, "model": exp.model, "status": status, "duration_s": duration,
                "config_json": json.dumps(dict(exp.config))})


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


def test_run_display_shows_the_eta():
    display = console.RunDisplay(total=3, skipped=0, eta_s=125.0)
    rendered = display._render()
    assert any("estimated 2m0" in str(getattr(r, "plain", "")) for r in rendered.renderables)
    assert len(console.RunDisplay(total=1, skipped=0)._render().renderables) == 2

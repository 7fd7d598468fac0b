"""`--export json` (typed tables and the models' numbers, for scripts and notebooks) and
`--forget` (delete the selection's ledger rows, never a live runner's, never the file)."""

from __future__ import annotations

import json
import time

import pytest
from report_helpers import fill_ledger, settings_for

from hyperparameter_system import experiment_runner
from hyperparameter_system.app import api
from hyperparameter_system.report.jsonexport import typed
from hyperparameter_system.store.ledger import Ledger, runner_identity

CATEGORIES = {
    "lr_cat": [{"lr": 0.01, "description": "fast"}, {"lr": 0.0001, "description": "slow"}],
    "batch": [{"batch_size": 16, "description": "b16"}],
}
METRICS = {"baseline": 0.5, "fast": 0.6, "slow": "exit code 1", "b16": float("nan")}


@pytest.fixture
def settings(tmp_path):
    s = settings_for(tmp_path, CATEGORIES, models=("m1", "m2"))
    fill_ledger(s, lambda e: METRICS[e.label])
    return s


def test_typed_cells():
    assert typed("3") == 3 and typed("+0.1000") == 0.1 and typed("-") is None
    assert typed("") is None and typed("done") == "done" and typed("1e-05") == 1e-05


def test_json_export_has_typed_tables_and_the_models_numbers(settings, tmp_path):
    path = tmp_path / "summary.json"
    code = experiment_runner.main(["--config", str(settings.path), "--export", "json",
                                   str(path)])
    assert code == 0
    doc = json.loads(path.read_text())  # strict JSON: NaN is null, not NaN
    assert doc["metric"] == "metrics.best_val_f1" and doc["counts"]["done"] == 6
    m1 = next(m for m in doc["models"] if m["model"] == "m1")
    assert m1["baseline"]["mean"] == 0.5
    lr = next(c for c in m1["categories"] if c["category"] == "lr_cat")
    fast = next(o for o in lr["options"] if o["description"] == "fast")
    assert fast["values"] == [0.6] and fast["delta"] == pytest.approx(0.1)
    assert fast["winner"] is True and lr["winner"] == fast["run_name"]
    b16 = m1["categories"][1]["options"][0]
    assert b16["mean"] is None  # NaN
    ranking = next(t for t in doc["tables"] if t["key"] == "ranking")
    row = ranking["rows"][0]
    assert isinstance(row["metric"], float) and isinstance(row["runs"], int)
    assert row["run name"] == fast["run_name"] and ranking["winner_rows"] == [0]


def test_forget_deletes_the_selection_and_keeps_the_file(settings, capsys):
    book = Ledger(settings.system.ledger)
    before = len(book.rows())
    code = experiment_runner.main(["--config", str(settings.path), "--forget",
                                   "--models", "m2", "--categories", "lr_cat"])
    assert code == 0 and "forgot 2 ledger row(s)" in capsys.readouterr().out
    rows = book.rows()
    assert len(rows) == before - 2 and settings.system.ledger.exists()
    assert not any(r.model == "m2" and r.category == "lr_cat" for r in rows)


def test_forget_failed_and_a_live_runner_keeps_its_row(settings, capsys):
    book = Ledger(settings.system.ledger)
    m1 = [r for r in book.rows() if r.model == "m1"]
    live = next(r for r in m1 if r.label == "fast")
    with book._tx() as db:  # failed before, running again now under this (live) process
        db.execute("UPDATE experiments SET status='running', owner=?, heartbeat=?,"
                   " started_at=? WHERE id=?",
                   (runner_identity(), time.time(), time.time(), live.id))
    code = experiment_runner.main(["--config", str(settings.path), "--forget", "failed"])
    out = capsys.readouterr().out
    assert code == 0 and "forgot 2 ledger row(s)" in out  # the two "slow" failures
    assert {r.status for r in book.rows()} == {"done", "running"}
    done, running = book.forget([live.id])
    assert (done, running) == (0, 1) and book.statuses([live.id])[live.id] == "running"
    # a runner that is gone (its heartbeat stale on another host) does not keep its row
    with book._tx() as db:
        db.execute("UPDATE experiments SET owner='elsewhere:1', heartbeat=? WHERE id=?",
                   (time.time() - 3600, live.id))
    assert book.forget([live.id], stale_after=30) == (1, 0)


def test_forget_without_a_selection_is_bad_input(settings, capsys):
    assert experiment_runner.main(["--config", str(settings.path), "--forget"]) == 2
    assert "--forget" in capsys.readouterr().err
    assert len(api.ledger(settings).rows()) == 8

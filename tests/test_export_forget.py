"""`--export json` (typed tables and the models' numbers, for scripts and notebooks) and
`--forget` (delete the selection's ledger rows, never a live runner's, never the file)."""

from __future__ import annotations

import json
import os
import socket
import stat
import time

import pytest
from report_helpers import fill_ledger, settings_for

from hyperparameter_system import experiment_runner
from hyperparameter_system.app import api
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.writable import file_target
from hyperparameter_system.matrix import combine
from hyperparameter_system.report.jsonexport import typed
from hyperparameter_system.store.claims import runner_identity
from hyperparameter_system.store.ledger import Ledger

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
    ledger = Ledger(settings.system.ledger)
    before = len(ledger.rows())
    code = experiment_runner.main(["--config", str(settings.path), "--forget",
                                   "--models", "m2", "--categories", "lr_cat"])
    assert code == 0 and "forgot 2 ledger row(s)" in capsys.readouterr().out
    rows = ledger.rows()
    assert len(rows) == before - 2 and settings.system.ledger.exists()
    assert not any(r.model == "m2" and r.category == "lr_cat" for r in rows)


def test_forget_failed_and_a_live_runner_keeps_its_row(settings, capsys):
    ledger = Ledger(settings.system.ledger)
    m1 = [r for r in ledger.rows() if r.model == "m1"]
    live = next(r for r in m1 if r.label == "fast")
    with ledger._tx() as db:  # failed before, running again now under this (live) process
        db.execute("UPDATE experiments SET status='running', owner=?, heartbeat=?,"
                   " started_at=? WHERE id=?",
                   (runner_identity(), time.time(), time.time(), live.id))
    code = experiment_runner.main(["--config", str(settings.path), "--forget", "failed"])
    out = capsys.readouterr().out
    assert code == 0 and "forgot 2 ledger row(s)" in out  # the two "slow" failures
    assert {r.status for r in ledger.rows()} == {"done", "running"}
    done, running = ledger.forget([live.id])
    assert (done, running) == (0, 1) and ledger.statuses([live.id])[live.id] == "running"
    # a runner that is gone (its heartbeat stale on another host) does not keep its row
    with ledger._tx() as db:
        db.execute("UPDATE experiments SET owner='elsewhere:1', heartbeat=? WHERE id=?",
                   (time.time() - 3600, live.id))
    assert ledger.forget([live.id], stale_after=30) == (1, 0)


def test_forget_without_a_selection_is_bad_input(settings, capsys):
    assert experiment_runner.main(["--config", str(settings.path), "--forget"]) == 2
    assert "--forget" in capsys.readouterr().err
    assert len(api.open_ledger(settings).rows()) == 8


# -- issue 20, item 1: user-given output paths are written through, never replaced ------------
def _export(settings, *argv: str) -> int:
    return experiment_runner.main(["--config", str(settings.path), *argv])


def test_export_writes_through_a_symlink_to_its_target(settings, tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert _export(settings, "--export", "json", str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["counts"]["done"] == 6


def test_export_ledger_and_plots_write_through_symlinks(settings, tmp_path):
    target, link = tmp_path / "rows.csv", tmp_path / "rows-link.csv"
    target.write_text("old")
    link.symlink_to(target)
    real, folder_link = tmp_path / "plots-real", tmp_path / "plots"
    real.mkdir()
    folder_link.symlink_to(real)
    assert _export(settings, "--export-ledger", str(link), "--plots", str(folder_link)) == 0
    assert link.is_symlink() and target.read_text().startswith("experiment_id,")
    assert folder_link.is_symlink() and list(real.glob("*.png"))


@pytest.mark.parametrize("flag", ["--export", "--export-ledger"])
def test_a_fifo_is_refused_before_anything_and_stays_a_fifo(settings, tmp_path, capsys, flag):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    argv = ["--export", "csv", str(fifo)] if flag == "--export" else [flag, str(fifo)]
    assert _export(settings, *argv) == 2  # a write would block forever: it never starts
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a FIFO, not a regular file" in err[0]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_character_device_is_refused_and_left_alone(settings, tmp_path, capsys):
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    except OSError:  # never the real /dev/null: a regression would replace it, as root
        pytest.skip("mknod is not allowed here")
    link = tmp_path / "to-device.html"
    link.symlink_to(device)
    for path in (device, link):
        assert _export(settings, "--export", "html", str(path)) == 2
        err = capsys.readouterr().err
        assert "a character device, not a regular file" in err and "wrote" not in err
        assert stat.S_ISCHR(os.stat(device).st_mode) and link.is_symlink()


def test_a_dash_is_standard_output_and_no_file_named_dash(settings, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _export(settings, "--summary", "--export", "json", "-") == 0
    out = capsys.readouterr().out
    assert json.loads(out)["counts"]["done"] == 6  # stdout is the file alone: the rest on stderr
    assert _export(settings, "--export-ledger", "-") == 0
    assert capsys.readouterr().out.startswith("experiment_id,")
    assert not (tmp_path / "-").exists()
    assert _export(settings, "--export", "json", "-", "--export-ledger", "-") == 2
    assert _export(settings, "--plots", "-") == 2


def test_file_target_kinds(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.sock"))
    try:
        with pytest.raises(HpsysError, match="a socket, not a regular file"):
            file_target("w", tmp_path / "s.sock")
    finally:
        sock.close()
    with pytest.raises(HpsysError, match="expected a file path, got a folder"):
        file_target("w", tmp_path)
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "new" / "made.csv")
    assert file_target("w", dangling) == tmp_path / "new" / "made.csv"


def test_the_combined_config_is_written_through_a_symlink(settings, tmp_path):
    plan = api.combine_plans(settings).plans[0]
    target = tmp_path / "mine.yaml"
    target.write_text("old")
    plan.config_path.parent.mkdir(parents=True, exist_ok=True)
    plan.config_path.symlink_to(target)
    combine.save_config(plan)
    assert plan.config_path.is_symlink() and "Combined winners" in target.read_text()


# -- issue 20, item 2: --forget honours --dry-run ----------------------------------------------
def test_forget_dry_run_lists_and_deletes_nothing(settings, capsys):
    before = {r.id for r in api.open_ledger(settings).rows()}
    code = _export(settings, "--forget", "--models", "m2", "--categories", "lr_cat", "--dry-run")
    out = capsys.readouterr().out
    assert code == 0 and "would forget 2 ledger row(s); nothing deleted" in out
    assert out.count("would forget m2 lr_cat") == 2 and "forgot 2" not in out
    assert {r.id for r in api.open_ledger(settings).rows()} == before

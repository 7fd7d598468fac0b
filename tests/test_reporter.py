"""hpsys_reporter: the training side of the script contract as five calls (start, log,
checkpoint, should_stop, finish), checked file by file against what the runner reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import hpsys_reporter as hpsys

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def runner_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The variables the runner sets for a launch; returns the config file."""
    config = tmp_path / "cfg.yaml"
    config.write_text("epochs: 3\nlr: 0.01\nunread: 1\nnested: {a: 1, b: 2}\n")
    monkeypatch.setenv("EXPERIMENT_CONFIG", str(config))
    monkeypatch.setenv("HPSYS_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("HPSYS_EXPERIMENT_ID", "abc123")
    monkeypatch.setenv("WANDB_PROJECT", "proj")
    monkeypatch.setenv("WANDB_NAME", "opt_x_2601010000")
    monkeypatch.setenv("WANDB_RUN_ID", "abc123")
    return config


def test_it_imports_neither_torch_nor_the_runner() -> None:
    code = ("import sys, hpsys_reporter; "
            "bad = [m for m in ('torch', 'hyperparameter_system', 'trainer', 'lightning', "
            "'numpy') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_writes_what_the_runner_reads(runner_env: Path, tmp_path: Path) -> None:
    run = hpsys.start(argv=[])
    cfg = run.config
    assert run.dir == tmp_path / "run" and run.start_epoch == 1 and run.resume is None
    assert cfg["lr"] == 0.01 and cfg["nested"]["a"] == 1
    for epoch in range(run.start_epoch, cfg["epochs"] + 1):
        run.log(epoch, train_loss=1 / epoch, val_loss=0.5 + abs(epoch - 2), val_f1=epoch / 10,
                lr=SimpleNamespace(item=lambda: 0.01))  # a tensor-like scalar
        (run.dir / "last.pt").write_bytes(b"weights")
        run.checkpoint("last.pt", epoch)
        assert json.loads((run.dir / "resume.json").read_text()) == {
            "checkpoint": str((run.dir / "last.pt").resolve()), "epoch": epoch}
    assert not run.should_stop()
    path = run.finish(metrics={"extra": 7}, effective={"lr": 0.01})
    lines = _lines(run.dir / "metrics.jsonl")
    assert [r["epoch"] for r in lines] == [1, 2, 3] and lines[0]["lr"] == 0.01
    assert all(isinstance(r["seconds"], float) for r in lines)
    result = json.loads(path.read_text())
    assert result["status"] == "done" and result["experiment_id"] == "abc123"
    m = result["metrics"]
    assert m["best_val_f1"] == 0.3 and m["best_epoch"] == 3 and m["epochs_run"] == 3
    assert m["best_val_loss"] == 0.5 and m["final_val_loss"] == 1.5 and m["extra"] == 7
    assert "best_lr" not in m and "best_seconds" not in m
    assert result["unused_keys"] == ["unread", "nested.b"]
    assert result["wandb"]["project"] == "proj" and result["wandb"]["run_id"] == "abc123"
    assert result["effective"] == {"lr": 0.01} and result["duration_s"] >= 0
    assert result["checkpoint"] == str((run.dir / "last.pt").resolve())
    assert "resumed_from_epoch" not in result
    assert not list(run.dir.glob(".*.tmp"))  # the atomic writes left no temp file


def test_config_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("lr: 0.1\nnested: {a: 1}\n")
    (tmp_path / "b.yaml").write_text("lr: 0.2\n")
    monkeypatch.setenv("EXPERIMENT_CONFIG", str(tmp_path / "b.yaml"))
    assert hpsys.start(argv=["--config", "a.yaml"]).config["lr"] == 0.1  # --config first
    assert hpsys.start(argv=["--config=a.yaml"]).config["lr"] == 0.1
    run = hpsys.start(argv=[], defaults={"lr": 1, "epochs": 4, "nested": {"b": 2}})
    assert dict(run.config) == {"lr": 0.2, "epochs": 4, "nested": {"b": 2}}
    given = hpsys.start({"lr": 0.3}, argv=[])  # an app's own config: as is, reads untracked
    assert given.config == {"lr": 0.3}
    assert "unused_keys" not in json.loads(given.finish().read_text())
    monkeypatch.delenv("EXPERIMENT_CONFIG")
    assert hpsys.start(argv=[], defaults="a.yaml").config["lr"] == 0.1
    assert hpsys.start(argv=[]).config == {}


def test_outside_the_runner_it_writes_a_local_folder(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["my_train.py"])
    run = hpsys.start({"epochs": 1})
    run.log(1, val_f1=0.5)
    result = json.loads(run.finish().read_text())
    assert run.dir.parent == Path("outputs") and run.dir.name.startswith("my_train_")
    assert result["status"] == "done" and result["experiment_id"] is None


def test_a_stop_request_ends_the_run_pruned(runner_env: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run = hpsys.start(argv=[])
    run.log(1, val_f1=0.2)
    stop = run.dir / "stop_request.json"
    stop.write_text(json.dumps({"reason": "pruned", "epoch": 1, "detail": "below the top 1/3"}))
    assert run.should_stop() and run.should_stop()
    assert capsys.readouterr().out.count("stop requested (pruned, below the top 1/3)") == 1
    result = json.loads(run.finish().read_text())
    assert result["status"] == "pruned" and result["metrics"]["epochs_run"] == 1
    assert result["stop_request"]["epoch"] == 1


def test_an_earlier_attempts_stop_request_is_ignored(runner_env: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stop = run_dir / "stop_request.json"
    stop.write_text("{}")
    old = time.time() - 3600
    os.utime(stop, (old, old))
    assert not hpsys.start(argv=[]).should_stop()


def test_resume_goes_on_after_the_checkpoint(runner_env: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first = hpsys.start(argv=[])
    for epoch in (1, 2, 3):  # killed after logging epoch 3, before its checkpoint
        first.log(epoch, val_f1=epoch / 10)
        if epoch < 3:
            (first.dir / "last.pt").write_bytes(b"w")
            first.checkpoint("last.pt", epoch)
    monkeypatch.setenv("HPSYS_RESUME", str(first.dir / "last.pt"))
    run = hpsys.start(argv=[])
    assert run.resume == (first.dir / "last.pt").resolve() and run.start_epoch == 3
    assert [r["epoch"] for r in _lines(run.metrics_path)] == [1, 2]
    run.log(3, val_f1=0.25)
    result = json.loads(run.finish().read_text())
    assert result["resumed_from_epoch"] == 2
    assert result["metrics"]["best_val_f1"] == 0.25 and result["metrics"]["epochs_run"] == 3


def test_a_missing_resume_checkpoint_starts_over(runner_env: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HPSYS_RESUME", str(tmp_path / "gone.pt"))
    run = hpsys.start(argv=[])
    assert run.resume is None and run.start_epoch == 1
    assert "training starts over" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="save it before"):
        run.checkpoint("never_saved.pt", 1)


@pytest.mark.parametrize(("text", "said"), [
    (None, "cfg.yaml: cannot read the config"),
    ("lr: [1,\n", "cfg.yaml:2: YAML syntax error"),
    ("- 1\n", "cfg.yaml: expected a mapping of keys"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path: Path, text: str | None, said: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        hpsys.start(argv=["--config", str(path)], run_dir=tmp_path / "run")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert said in err


def test_bad_config_names_file_line_and_key(runner_env: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run = hpsys.start(argv=[])
    with pytest.raises(SystemExit) as exc:
        run.bad_config("nested.b", "expected a positive integer, got 2")
    assert exc.value.code == 2
    assert capsys.readouterr().err == (f"error: {runner_env}:4: nested.b: expected a positive "
                                       "integer, got 2\n")


def test_effective_from_reads_the_objects() -> None:
    opt = SimpleNamespace(param_groups=[{"lr": 0.1, "weight_decay": 0.01, "momentum": 0.9}])

    class CosineAnnealingLR:
        def __init__(self) -> None:
            self.T_max, self.eta_min, self.last_epoch, self._x = 5, 0.0, 3, 1

    got = hpsys.effective_from(optimizer=opt, scheduler=CosineAnnealingLR(),
                               loader=SimpleNamespace(batch_size=32), precision="32")
    assert got == {"optimizer": "SimpleNamespace", "lr": 0.1, "weight_decay": 0.01,
                   "momentum": 0.9, "scheduler": "CosineAnnealingLR",
                   "scheduler_params": {"T_max": 5, "eta_min": 0.0}, "batch_size": 32,
                   "precision": "32"}

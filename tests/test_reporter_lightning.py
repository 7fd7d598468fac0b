"""hpsys_reporter.lightning end to end: a real LightningModule (examples/lightning_tiny, CPU)
launched as the runner launches a model's script (its config, HPSYS_RUN_DIR, its own process
group), SIGKILLed after a checkpoint, relaunched with HPSYS_RESUME (Lightning's ckpt_path), then
asked to stop: every epoch once, the trainer stopped within one epoch, result.json complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("lightning")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "lightning_tiny" / "train.py"


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def epochs(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] \
        if path.exists() else []


def launch(config: Path, run_dir: Path, **env: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HPSYS_", "WANDB_"))}
    full.update(PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), full.get("PYTHONPATH")))),
                EXPERIMENT_CONFIG=str(config), HPSYS_RUN_DIR=str(run_dir),
                HPSYS_EXPERIMENT_ID="light1", WANDB_MODE="disabled", **env)
    log = open(run_dir / "train.log", "ab")  # noqa: SIM115 - the child writes into it
    with log:
        return subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(config)],
                                cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


@pytest.mark.slow
def test_lightning_callback_resumes_and_stops(tmp_path: Path) -> None:
    cfg = yaml.safe_load(SCRIPT.with_name("config.yaml").read_text())
    cfg.update(epochs=6, pause_s=0.6)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    first = launch(config, run_dir)
    point = run_dir / "resume.json"
    assert wait_for(lambda: point.exists() and json.loads(point.read_text())["epoch"] >= 1, 90), \
        (run_dir / "train.log").read_text()
    os.killpg(first.pid, signal.SIGKILL)  # as the runner's end: the whole process group
    first.wait()
    saved = json.loads(point.read_text())
    assert saved["checkpoint"] == str(run_dir / "last.ckpt")

    second = launch(config, run_dir, HPSYS_RESUME=saved["checkpoint"])
    assert wait_for(lambda: len(epochs(run_dir)) > saved["epoch"], 90)
    asked_at = epochs(run_dir)[-1]
    (run_dir / "stop_request.json").write_text(json.dumps(
        {"reason": "pruned", "epoch": asked_at, "detail": "test"}))
    assert second.wait(60) == 0, (run_dir / "train.log").read_text()

    result = json.loads((run_dir / "result.json").read_text())
    done = epochs(run_dir)
    assert done == list(range(1, len(done) + 1))  # every epoch once, in order
    assert result["resumed_from_epoch"] == saved["epoch"]
    assert result["status"] == "pruned" and done[-1] <= asked_at + 1 < cfg["epochs"]
    m = result["metrics"]
    assert m["epochs_run"] == done[-1] and 0 < m["best_val_f1"] <= 1 and "best_epoch" in m
    assert {"final_train_loss", "final_val_loss", "final_val_acc"} <= m.keys()
    eff = result["effective"]
    assert (eff["optimizer"], eff["lr"], eff["batch_size"], eff["max_epochs"]) == \
        ("AdamW", 0.003, 64, 6)
    assert eff["precision"] == "32-true" and eff["model_class"] == "Digits"
    assert result["experiment_id"] == "light1" and result["checkpoint"] == saved["checkpoint"]
    assert result["unused_keys"] == []

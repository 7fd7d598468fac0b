"""Bring your own training code, end to end through the runner CLI: examples/tiny_torch (plain
PyTorch on hpsys_reporter) next to the built-in trainer in the quickstart matrix, pruned by
successive halving, resumed after a SIGKILL of the runner, its `effective` in the summary."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNNER = (sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"))
TINY = "examples/tiny_torch"


def quickstart_with(tmp: Path, models: list[dict[str, Any]],
                    categories: dict[str, Any], **execution: Any) -> Path:
    """examples/quickstart.yaml with its outputs in `tmp`, these models and categories."""
    doc = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    doc["system"].update(project_root=str(ROOT), ledger=str(tmp / "l.db"),
                         runs_dir=str(tmp / "runs"), temp_config_dir=str(tmp / "tc"),
                         reports_dir=str(tmp / "reports"), wandb_mode="disabled",
                         overrides=["epochs=3", "batch_size=32", "limit_samples=300"])
    doc["models"], doc["experiment_categories"] = models, categories
    doc["execution"].update({"repeats": 1, **execution})  # one seed: the names are the options'
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPSYS_", "WANDB_"))}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path, "WANDB_MODE": "disabled", "COLUMNS": "200", **extra}


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*RUNNER, *args], cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def rows(tmp: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Ledger rows keyed (model, run name)."""
    with sqlite3.connect(tmp / "l.db") as db:
        db.row_factory = sqlite3.Row
        return {(r["model"], r["run_name"]): dict(r)
                for r in db.execute("SELECT * FROM experiments")}


def tiny_model(tmp: Path, pause_s: float) -> dict[str, Any]:
    """The example as a model, its epochs slowed by `pause_s` (time for a stopper, a kill)."""
    base = yaml.safe_load((ROOT / TINY / "config.yaml").read_text())
    base["pause_s"] = pause_s
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return {"name": "tiny_torch", "script": f"python {TINY}/train.py", "base_config": str(path)}


@pytest.mark.slow
def test_tiny_torch_is_pruned_resumed_and_read_back(tmp_path: Path) -> None:
    builtin = {"name": "test_resnet.r160_in1k", "script": "python codes/train.py"}
    asked = {"name": "SGD", "lr": 1e-6, "momentum": 0.0, "weight_decay": 0.0}
    config = str(quickstart_with(
        tmp_path, [builtin, tiny_model(tmp_path, 0.5)],
        {"optimizer": {"options": [{"name": "AdamW", "lr": 0.003, "weight_decay": 0.0001},
                                   asked]}},
        pruning={"rule": "successive_halving", "min_epochs": 1}))
    first = subprocess.Popen([*RUNNER, "--config", config, "--all"], cwd=ROOT, env=cli_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
    runs = tmp_path / "runs" / "tiny_torch"

    def checkpointed() -> int:
        point = next(iter(runs.glob("baseline_*/resume.json")), None)
        return json.loads(point.read_text())["epoch"] if point else 0

    assert wait_for(checkpointed, 120), "the example's baseline never saved a checkpoint"
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(1.0)  # its experiments follow it through their lifeline

    again = run_cli("--config", config, "--all")
    assert again.returncode == 0, again.stdout + again.stderr
    ledger = rows(tmp_path)
    baseline = ledger[("tiny_torch", "baseline")]
    result = json.loads(baseline["result_json"])
    epochs = [json.loads(line)["epoch"] for line in
              (Path(baseline["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert baseline["status"] == "done" and result["resumed_from_epoch"] >= 1
    assert epochs == [1, 2, 3]  # each epoch once: the killed attempt's, then the resumed one's
    sgd = ledger[("tiny_torch", "opt_SGD_lr1e-06_mom0_wd0")]
    pruned = json.loads(sgd["result_json"])
    assert sgd["status"] == "pruned" and pruned["status"] == "pruned"  # a graceful stop
    assert pruned["metrics"]["epochs_run"] < 3 and pruned["stop_request"]["reason"]
    assert all(r["status"] in ("done", "pruned") for r in ledger.values()), ledger.keys()
    assert {m for m, _ in ledger} == {"tiny_torch", "test_resnet.r160_in1k"}

    export = tmp_path / "summary.json"
    shown = run_cli("--config", config, "--summary", "--export", "json", str(export))
    assert shown.returncode == 0, shown.stderr
    tiny = next(m for m in json.loads(export.read_text())["models"]
                if m["model"] == "tiny_torch")
    option = next(o for o in tiny["categories"][0]["options"] if o["option"] == asked)
    eff = option["effective"]  # read back from the optimizer that trained
    assert (eff["optimizer"], eff["lr"], eff["momentum"], eff["weight_decay"]) == \
        ("SGD", 1e-6, 0.0, 0.0)
    assert tiny["baseline"]["effective"]["optimizer"] == "AdamW"

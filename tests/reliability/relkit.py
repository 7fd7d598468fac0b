"""Shared by the reliability tests: a master config over the fake trainer in tmp_path, the
runner CLI as a subprocess, the FAKE_EVENTS log, and the processes a test left behind."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNNER = (sys.executable, "-m", "hyperparameter_system.experiment_runner")
FAKE = "python tests/fakes/fake_train.py"


def master_dict(tmp: Path, options: Sequence[dict[str, Any]] = ({"fake.sleep": 0.2},),
                execution: dict[str, Any] | None = None, **system: Any) -> dict[str, Any]:
    """The tests' master config: one fake model, one YAML-only category `fake`."""
    return {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "ledger": str(tmp / "l.db"), "runs_dir": str(tmp / "runs"),
                   "temp_config_dir": str(tmp / "tc"), "wandb_mode": "disabled",
                   "baseline": False, **system},
        "models": [{"name": "m1", "script": FAKE}],
        "experiment_categories": {"fake": {"options": [dict(o) for o in options]}},
        "execution": {"max_parallel": 4, "stale_after_s": 5, "heartbeat_s": 0.5,
                      **(execution or {})},
    }


def write_master(tmp: Path, data: dict[str, Any] | str, name: str = "master.yaml") -> Path:
    path = tmp / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False,
                                                            allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPSYS_", "WANDB_"))}
    return {**env, "FAKE_EVENTS": str(tmp / "events.jsonl"), "WANDB_SILENT": "true",
            "PYTHON": sys.executable,
            "COLUMNS": "200", **extra}


def run_cli(tmp: Path, *args: str, timeout: float = 120, **env: str
            ) -> subprocess.CompletedProcess:
    return subprocess.run([*RUNNER, *args], cwd=ROOT, env=cli_env(tmp, **env), text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_cli(tmp: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([*RUNNER, *args], cwd=ROOT, env=cli_env(tmp, **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def completions(tmp: Path) -> Counter:
    """How many times each experiment id ran to its end (the fake trainer's last act)."""
    path = tmp / "events.jsonl"
    if not path.exists():
        return Counter()
    return Counter(json.loads(line)["id"] for line in path.read_text().splitlines() if line)


def experiment_pids(tmp: Path) -> list[int]:
    """Live processes launched for an experiment whose run folder lies under `tmp`."""
    needle = f"HPSYS_RUN_DIR={tmp}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(item.startswith(needle) for item in env):
            found.append(int(entry.name))
    return found


def describe(pids: Sequence[int]) -> list[str]:
    """`pid: command line` of each, for assertion messages."""
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            out.append(f"{pid}: {cmd.decode(errors='replace')}")
        except OSError:
            out.append(f"{pid}: gone")
    return out


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """The predicate's first truthy value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def ledger_rows(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "l.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM experiments")]


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]

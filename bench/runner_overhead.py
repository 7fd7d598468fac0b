"""The runner's own cost: its added time per experiment against invoking the same trivial script
directly (target: under 20 ms median), and the time to build and print a 10,000-experiment
matrix (target: under 1 s). Prints figures; asserts nothing.

    .venv/bin/python bench/runner_overhead.py [--n 200] [--matrix 10000]

Per experiment, the runner claims a ledger row, writes the temp config, launches the script in
its own process group, waits, reads result.json and records the outcome: the interval between
consecutive completions on one slot is that whole cycle. The direct figure is a plain
subprocess.run of the same script.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperparameter_system.config.settings import load_settings  # noqa: E402
from hyperparameter_system.matrix.experiments import build_matrix  # noqa: E402
from hyperparameter_system.run import devices  # noqa: E402
from hyperparameter_system.run.executor import Executor, local_dispatch  # noqa: E402
from hyperparameter_system.store.ledger import Ledger  # noqa: E402
from hyperparameter_system.ui import console, screen  # noqa: E402

TRIVIAL = """#!/bin/sh
printf '{"metrics": {"best_val_f1": 0.5}}' > "$HPSYS_RUN_DIR/result.json"
"""


class Stamps:
    """A display that only notes when each experiment finished."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def finished(self, experiment: Any, outcome: Any, final: bool = True) -> None:
        self.times.append(time.perf_counter())

    def started(self, *args: Any) -> None: ...

    def refresh(self) -> None: ...

    def message(self, text: str) -> None: ...


def write_master(tmp: Path, models: list[dict[str, Any]], options: list[dict[str, Any]],
                 baseline: bool = False) -> Path:
    doc = {"system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                      "temp_config_dir": str(tmp / "tc"), "ledger": str(tmp / "l.db"),
                      "runs_dir": str(tmp / "runs"), "wandb_mode": "disabled",
                      "baseline": baseline},
           "models": models,
           "experiment_categories": {"early_stopping": {"options": options}},
           "execution": {"max_parallel": 1, "gpus": "none", "heartbeat_s": 5}}
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def overhead(n: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        script = tmp / "trivial.sh"
        script.write_text(TRIVIAL)
        script.chmod(0o755)
        settings = load_settings(write_master(
            tmp, [{"name": "bench", "script": str(script)}],
            [{"patience": i} for i in range(n)]))
        experiments = build_matrix(settings)

        run_dir = tmp / "direct"
        run_dir.mkdir()
        env = {**os.environ, "HPSYS_RUN_DIR": str(run_dir)}

        def direct_runs(count: int) -> list[float]:
            times = []
            for _ in range(count):
                began = time.perf_counter()
                subprocess.run([str(script)], cwd=ROOT, env=env, check=True)
                times.append(time.perf_counter() - began)
            return times

        direct = direct_runs(n // 2)  # half before the runner, half after: load drifts
        stamps = Stamps()
        slots = devices.plan_slots(1, ())
        engine = Executor(settings, Ledger(settings.system.ledger), slots,
                          local_dispatch(settings), display=stamps)
        began = time.perf_counter()
        result = engine.run(experiments)
        wall = time.perf_counter() - began
        direct += direct_runs(n - n // 2)
    if result.count("done") != n:
        raise SystemExit(f"only {result.count('done')} of {n} experiments succeeded")
    cycles = [b - a for a, b in zip([began, *stamps.times], stamps.times, strict=False)]
    d_med, r_med = statistics.median(direct), statistics.median(cycles)
    print(f"runner overhead, N={n} experiments of a trivial script on one slot:")
    print(f"  direct subprocess.run   median {d_med * 1e3:7.2f} ms")
    print(f"  through the runner      median {r_med * 1e3:7.2f} ms  (wall {wall:.2f} s, "
          f"{wall / n * 1e3:.2f} ms mean)")
    print(f"  added per experiment    median {(r_med - d_med) * 1e3:7.2f} ms  (target < 20 ms)")


def matrix(size: int) -> None:
    models = 8
    per_model = size // models - 1
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        fakes = [{"name": f"model_{i}.bench", "script": "tests/fakes/fake_train.sh"}
                 for i in range(models)]
        path = write_master(tmp, fakes,
                            [{"patience": i} for i in range(per_model)], baseline=True)
        began = time.perf_counter()
        settings = load_settings(path)
        experiments = build_matrix(settings)
        built = time.perf_counter()
        screen.console.file = io.StringIO()
        console.print_matrix(settings, experiments, statuses={}, estimates={})
        printed = time.perf_counter()
        script = subprocess.run(
            [sys.executable, "hyperparameter_system/hyperparameter_configs.py", str(path)],
            cwd=ROOT, capture_output=True, text=True, check=True)
        cli = time.perf_counter() - printed
    print(f"matrix of {len(experiments)} experiments ({models} models x {per_model} options "
          f"+ baselines):")
    print(f"  load + build            {built - began:7.3f} s")
    print(f"  print                   {printed - built:7.3f} s")
    print(f"  build and print         {printed - began:7.3f} s  (target < 1 s)")
    print(f"  hyperparameter_configs.py as a command, interpreter start included: {cli:.3f} s "
          f"({len(script.stdout.splitlines())} lines)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="experiments (>= 200)")
    parser.add_argument("--matrix", type=int, default=10_000, help="matrix size")
    args = parser.parse_args()
    overhead(max(args.n, 1))
    matrix(args.matrix)


if __name__ == "__main__":
    main()

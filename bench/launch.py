"""Plain subprocess vs preloaded fork (run/preload.py), side by side in one invocation.

1. 8 experiments (the built-in trainer, test_resnet on the embedded data, 2 optimizers x 4
   learning rates) launched one after another on the same slot: per-experiment wall time
   (median), launch -> first metrics line, the fixed cost (wall minus the epochs' own
   seconds) and the 8 launches' wall time, each as preloaded/plain ratios (target: fixed cost
   cut >= 5x).
2. With --matrix: the quickstart's whole matrix (examples/quickstart.yaml, 26 experiments on
   2 slots) through the runner CLI, with --no-preload and then as configured (preload on),
   each into its own ledger and runs folder: the matrix's wall time and the ratio (target:
   <= 0.4). Its shell-script model (run_b3.sh) starts plain subprocesses either way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hyperparameter_system.config.settings import DEFAULT_PRELOAD  # noqa: E402
from hyperparameter_system.run import launcher, preload  # noqa: E402
from hyperparameter_system.run.launcher import Launch  # noqa: E402

OPTIONS = [{"lr": lr, "optimizer_name": opt} for opt in ("AdamW", "SGD")
           for lr in (0.003, 0.01, 0.03, 0.05)]


def run(mode: str, tmp: Path, server: preload.Server | None) -> dict:
    base = yaml.safe_load((ROOT / "codes" / "config_v2.yaml").read_text())
    base.update(model_name="test_resnet.r160_in1k", image_size=32, batch_size=32, epochs=1,
                limit_samples=160, data_dir=str(ROOT / "data"), cpu_threads=2)
    base.setdefault("wandb", {})["mode"] = "disabled"
    walls, firsts, fixed = [], [], []
    began = time.monotonic()
    for i, option in enumerate(OPTIONS):
        cfg = {**base, **option}
        run_dir = tmp / mode / str(i)
        path = tmp / f"{mode}{i}.yaml"
        env = {"HPSYS_RUN_DIR": str(run_dir), "HPSYS_EXPERIMENT_ID": f"bench{mode}{i}",
               "EXPERIMENT_CONFIG": str(path), "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        launch = Launch(f"bench{mode}{i}", (sys.executable, "codes/train.py", "--config",
                        str(path)), env, str(ROOT), str(path), yaml.safe_dump(cfg),
                        str(run_dir), None, "bench", str(i), str(i), "disabled")
        first: list[float] = []
        start = time.monotonic()
        done = threading.Event()

        def watch(metrics=run_dir / "metrics.jsonl", first=first, start=start, done=done):
            while not done.wait(0.01):
                if metrics.exists() and metrics.stat().st_size:
                    first.append(time.monotonic() - start)
                    return

        threading.Thread(target=watch, daemon=True).start()
        outcome = launcher.execute(launch, server=server)
        wall = time.monotonic() - start
        done.set()
        assert outcome.status == "done", outcome.log_tail
        epochs = sum(json.loads(x).get("seconds", 0) for x in
                     (run_dir / "metrics.jsonl").read_text().splitlines())
        walls.append(wall)
        firsts.append(first[0] if first else wall)
        fixed.append(wall - epochs)
    return {"wall": statistics.median(walls), "first": statistics.median(firsts),
            "fixed": statistics.median(fixed), "matrix": time.monotonic() - began}


def matrix(tmp: Path, preloaded: bool) -> float:
    """The quickstart matrix through the CLI into `tmp`; its wall time in seconds."""
    doc = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    doc["system"].update(project_root=str(ROOT), ledger=str(tmp / "experiments.db"),
                         runs_dir=str(tmp / "runs"), temp_config_dir=str(tmp / "temp"),
                         reports_dir=str(tmp / "reports"), wandb_mode="disabled")
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "quickstart.yaml"
    config.write_text(yaml.safe_dump(doc))
    argv = [sys.executable, str(ROOT / "hyperparameter_system" / "experiment_runner.py"),
            "--config", str(config), "--all", *([] if preloaded else ["--no-preload"])]
    began = time.monotonic()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"})
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", action="store_true",
                        help="also run the quickstart's whole matrix both ways (~4 min)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = run("plain", Path(tmp), None)
        server = preload.Server(DEFAULT_PRELOAD, str(ROOT))
        try:
            forked = run("preloaded", Path(tmp), server)
        finally:
            server.shutdown()
    print(f"{'':28}{'plain':>10}{'preloaded':>12}{'ratio':>8}")
    for key, label in (("wall", "experiment wall (median) s"), ("first", "to 1st metrics (med) s"),
                       ("fixed", "fixed cost (median) s"), ("matrix", "8 launches wall s")):
        print(f"{label:28}{plain[key]:10.2f}{forked[key]:12.2f}{forked[key] / plain[key]:8.2f}")
    print(f"fixed cost cut: {plain['fixed'] / forked['fixed']:.1f}x (target >= 5x); the "
          "preloaded launches include the server's one start")
    if args.matrix:
        with tempfile.TemporaryDirectory() as tmp:
            walls = {mode: matrix(Path(tmp) / mode, mode == "preloaded")
                     for mode in ("plain", "preloaded")}
        print(f"quickstart matrix (26 experiments, 2 slots) wall s: plain {walls['plain']:.1f}, "
              f"preloaded {walls['preloaded']:.1f}, ratio "
              f"{walls['preloaded'] / walls['plain']:.2f} (target <= 0.4)")


if __name__ == "__main__":
    main()

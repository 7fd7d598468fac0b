"""Plain subprocess vs preloaded fork (run/preload.py): 8 quickstart experiments (the built-in
trainer, test_resnet on the embedded data) run twice in one invocation on the same slot.
Prints per-experiment wall time (median), launch -> first metrics line, the matrix's wall time,
and the fixed cost (wall minus the epochs' own seconds), each as preloaded/plain ratios."""

from __future__ import annotations

import json
import statistics
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

OPTIONS = [{"lr": lr, "optimizer": {"name": opt}} for opt in ("AdamW", "SGD")
           for lr in (0.003, 0.01, 0.03, 0.05)]


def run(mode: str, tmp: Path, server: preload.Server | None) -> dict:
    base = yaml.safe_load((ROOT / "codes" / "config_v2.yaml").read_text())
    base.update(model_name="test_resnet.r160_in1k", image_size=32, batch_size=32, epochs=1,
                limit_samples=160, data_dir=str(ROOT / "data"), cpu_threads=2)
    base.setdefault("wandb", {})["mode"] = "disabled"
    walls, firsts, fixed = [], [], []
    began = time.monotonic()
    for i, option in enumerate(OPTIONS):
        cfg = {**base, "lr": option["lr"]}
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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain = run("plain", Path(tmp), None)
        server = preload.Server(DEFAULT_PRELOAD, str(ROOT))
        try:
            forked = run("preloaded", Path(tmp), server)
        finally:
            server.shutdown()
    print(f"{'':28}{'plain':>10}{'preloaded':>12}{'ratio':>8}")
    for key, label in (("wall", "experiment wall (median) s"), ("first", "to 1st metrics (med) s"),
                       ("fixed", "fixed cost (median) s"), ("matrix", "matrix wall s")):
        print(f"{label:28}{plain[key]:10.2f}{forked[key]:12.2f}{forked[key] / plain[key]:8.2f}")
    print(f"fixed cost cut: {plain['fixed'] / forked['fixed']:.1f}x (target >= 5x); the "
          "preloaded matrix includes the server's one start")


if __name__ == "__main__":
    main()

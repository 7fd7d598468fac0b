"""Successive halving against the full matrix, side by side, on the stand-in trainer.

The same matrix (2 models x 2 categories x 4 options, plus a baseline per model; each option a
learning curve) runs twice in one invocation: once in full, once with
execution.pruning.rule = successive_halving. Printed: the winner of each (model, category) in
both runs, the epochs trained with pruning over those of the full matrix, and the wall-clock
ratio. Target: identical winners, epochs ratio <= 0.5.

    .venv/bin/python bench/pruning.py [--epochs 9] [--epoch-s 0.4] [--parallel 2]
    .venv/bin/python bench/pruning.py --real [--epochs 8]   # the built-in trainer, embedded data

With --real the matrix is two tiny timm models x the optimizer category (four options, one of
them a learning rate that trains nothing) on the embedded digits data (prepare it with
`make data`), trained by codes/train.py on the CPU: the honest figure for real curves.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperparameter_system.app import api  # noqa: E402
from hyperparameter_system.core.states import Status  # noqa: E402


def curve(start: float, end: float, epochs: int, bend: float = 1.0) -> list[float]:
    """From `start` to `end`; `bend` > 1 rises late, < 1 early."""
    return [round(start + (end - start) * ((e / (epochs - 1)) ** bend), 4)
            for e in range(epochs)]


def matrix(epochs: int) -> tuple[list[float], dict[str, dict[str, list[float]]]]:
    """A baseline, then per category four options with differing curves: one that beats the
    baseline, one near it, and two clearly below (one of them a late riser that still ends
    below the winner)."""
    baseline = curve(0.40, 0.62, epochs)
    cats = {
        "optim": {"adamw": curve(0.45, 0.74, epochs), "sgd": curve(0.38, 0.60, epochs),
                  "lion": curve(0.20, 0.50, epochs, 2.0), "rmsprop": curve(0.25, 0.40, epochs)},
        "sched": {"cosine": curve(0.35, 0.58, epochs, 0.7), "step": curve(0.30, 0.45, epochs),
                  "onecycle": curve(0.44, 0.70, epochs), "const": curve(0.20, 0.35, epochs)},
    }
    return baseline, cats


def write_master(tmp: Path, epochs: int, epoch_s: float, parallel: int,
                 pruning: dict[str, Any] | None) -> Path:
    baseline, cats = matrix(epochs)
    doc = {
        "system": {"project_root": str(ROOT), "base_config": "tests/fakes/base.yaml",
                   "ledger": str(tmp / "l.db"), "runs_dir": str(tmp / "runs"),
                   "temp_config_dir": str(tmp / "tc"), "wandb_mode": "disabled",
                   "overrides": [f"+fake.curve={json.dumps(baseline)}",
                                 f"+fake.epoch_s={epoch_s}"]},
        "models": [{"name": "net-a", "script": "python tests/fakes/fake_train.py"},
                   {"name": "net-b", "script": "python tests/fakes/fake_train.py"}],
        "experiment_categories": {
            cat: {"options": [{"description": name, "fake.curve": values}
                              for name, values in options.items()]}
            for cat, options in cats.items()},
        "execution": {"gpus": "none", "max_parallel": parallel, "experiment_timeout": 600,
                      **({"pruning": pruning} if pruning else {})},
    }
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


REAL_OPTIONS = [{"name": "AdamW", "lr": 0.003, "description": "adamw_3e-3"},
                {"name": "RAdam", "lr": 0.001, "description": "radam_1e-3"},
                {"name": "AdamW", "lr": 0.00001, "description": "adamw_1e-5"},
                {"name": "SGD", "lr": 1e-7, "momentum": 0.0, "description": "sgd_frozen"}]


def write_real(tmp: Path, epochs: int, parallel: int, pruning: dict[str, Any] | None) -> Path:
    """Two tiny timm models x four optimizers through codes/train.py on the embedded data."""
    doc = {
        "system": {"project_root": str(ROOT), "base_config": "codes/config_v2.yaml",
                   "ledger": str(tmp / "l.db"), "runs_dir": str(tmp / "runs"),
                   "temp_config_dir": str(tmp / "tc"), "wandb_mode": "disabled",
                   "overrides": [f"epochs={epochs}", "image_size=32", "batch_size=32",
                                 "limit_samples=400", "pretrained=false", "num_workers=0",
                                 f"data_dir={ROOT / 'data'}", f"output_dir={tmp / 'out'}",
                                 "patience=100"]},
        "models": [{"name": "test_resnet.r160_in1k", "script": "python codes/train.py"},
                   {"name": "test_efficientnet.r160_in1k", "script": "python codes/train.py"}],
        "experiment_categories": {"optimizer": {"options": REAL_OPTIONS}},
        "execution": {"gpus": "none", "max_parallel": parallel, "experiment_timeout": 1800,
                      "preload": True, **({"pruning": pruning} if pruning else {})},
    }
    path = tmp / "master.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def one_run(epochs: int, epoch_s: float, parallel: int, pruning: dict[str, Any] | None,
            real: bool = False) -> tuple[dict[tuple[str, str], str], int, float,
                                         dict[str, int]]:
    """Winners per (model, category), epochs trained, wall seconds, statuses counted."""
    with tempfile.TemporaryDirectory(prefix="hpsys-bench-pruning-") as tmp:
        path = (write_real(Path(tmp), epochs, parallel, pruning) if real
                else write_master(Path(tmp), epochs, epoch_s, parallel, pruning))
        settings = api.load(path)
        began = time.perf_counter()
        api.run(settings, api.select(settings))
        wall = time.perf_counter() - began
        rows = api.open_ledger(settings).rows()
        trained = sum(len((Path(r.run_dir) / "metrics.jsonl").read_text().splitlines())
                      for r in rows)
        counted: dict[str, int] = {}
        for r in rows:
            counted[r.status] = counted.get(r.status, 0) + 1
        winners = {}
        models = [m.name for m in settings.models]
        for cat in [c.name for c in settings.categories]:
            for model in models:
                done = [r for r in rows if (r.model, r.category) == (model, cat)
                        and r.status == Status.DONE and r.metric is not None]
                base = next(r.metric for r in rows
                            if (r.model, r.category) == (model, "baseline"))
                best = max(done, key=lambda r: r.metric, default=None)
                winners[(model, cat)] = (best.option["description"]
                                         if best is not None and best.metric > base else "none")
        return winners, trained, wall, counted


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--epoch-s", type=float, default=0.4)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--real", action="store_true",
                   help="codes/train.py on the embedded data with tiny timm models")
    args = p.parse_args()
    rule = {"rule": "successive_halving", "min_epochs": 2, "reduction_factor": 3}
    full = one_run(args.epochs, args.epoch_s, args.parallel, None, args.real)
    halving = one_run(args.epochs, args.epoch_s, args.parallel, rule, args.real)
    what = ("2 tiny timm models x 4 optimizers + 2 baselines through codes/train.py, "
            f"{args.epochs} epochs" if args.real else
            f"2 models x 2 categories x 4 options + 2 baselines, {args.epochs} epochs of "
            f"{args.epoch_s:g} s")
    print(f"matrix: {what}, max_parallel {args.parallel}")
    width = max(22, *(len(" / ".join(key)) + 2 for key in full[0]))
    print(f"{'model / category':<{width}}{'full':<12}{'successive_halving':<20}")
    for key in full[0]:
        print(f"{' / '.join(key):<{width}}{full[0][key]:<12}{halving[0][key]:<20}")
    same = full[0] == halving[0]
    print(f"winners identical: {'yes' if same else 'NO'}")
    print(f"statuses: full {full[3]}, successive_halving {halving[3]}")
    print(f"epochs trained: {halving[1]} with pruning / {full[1]} full = "
          f"{halving[1] / full[1]:.2f} (target <= 0.5)")
    print(f"wall clock: {halving[2]:.1f} s / {full[2]:.1f} s = {halving[2] / full[2]:.2f}")
    return 0 if same and halving[1] / full[1] <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())

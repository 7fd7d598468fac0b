"""Copy the best run's checkpoint to checkpoints/final_model.pt (a competition's last step).

    python codes/select_best_model.py [--runs runs] [--metric best_val_f1] [--min]
        [--dest checkpoints/final_model.pt]

Scans every result.json under --runs and ranks the runs by one of their metrics. The default is
the runner's runs folder (`runs/`); pass `--runs outputs` for runs of codes/train.py alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def find_best(runs: Path, metric: str, lower_is_better: bool) -> tuple[Path, float] | None:
    """The best run's result.json path and score, or None when no run has the metric."""
    scored = []
    for path in sorted(runs.rglob("result.json")):
        try:
            value = json.loads(path.read_text())["metrics"][metric]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, int | float):
            scored.append((float(value), path))
    if not scored:
        return None
    value, path = (min if lower_is_better else max)(scored, key=lambda item: item[0])
    return path, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy the best run's checkpoint.")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="default: runs")
    parser.add_argument("--metric", default="best_val_f1")
    parser.add_argument("--min", action="store_true", help="lower is better (e.g. a loss)")
    parser.add_argument("--dest", type=Path, default=Path("checkpoints/final_model.pt"))
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        print(
            f"error: runs folder not found: {args.runs} (expected run folders with result.json)",
            file=sys.stderr,
        )
        return 2
    best = find_best(args.runs, args.metric, args.min)
    if best is None:
        print(f"error: no result.json under {args.runs} has metrics.{args.metric}", file=sys.stderr)
        return 2
    result_path, value = best
    result = json.loads(result_path.read_text())
    source = Path(result["artifacts"]["best_checkpoint"])
    if not source.is_absolute() or not source.exists():
        source = result_path.parent / "checkpoints" / "best_model.pt"
    if not source.is_file():
        print(f"error: {result_path}: its best checkpoint is missing: {source}", file=sys.stderr)
        return 2
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, args.dest)
    print(
        f"best run {result_path.parent} ({args.metric}={value:.4f}): copied {source} to {args.dest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

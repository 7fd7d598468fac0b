"""A run's learning curve from its metrics.jsonl (one JSON line per epoch): what the plots draw
and what ranks a pruned run that wrote no result.json (its metric at the last epoch it ran)."""

from __future__ import annotations

import json
from pathlib import Path

CURVE_FALLBACK = "val_f1"


def curve_key(metric: str) -> str:
    """The per-epoch key behind a headline metric: `metrics.best_val_f1` -> `val_f1`."""
    last = metric.rsplit(".", 1)[-1]
    for prefix in ("best_", "final_"):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last


def read_curve(run_dir: str | None, key: str) -> list[tuple[float, float]]:
    """(epoch, value) pairs from metrics.jsonl; a torn or foreign line is skipped."""
    if not run_dir:
        return []
    points = []
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        value = rec.get(key, rec.get(CURVE_FALLBACK)) if isinstance(rec, dict) else None
        if (isinstance(value, int | float) and not isinstance(value, bool)
                and isinstance(rec.get("epoch"), int | float)):
            points.append((float(rec["epoch"]), float(value)))
    return points


def last_point(run_dir: str | None, metric: str) -> tuple[float, float] | None:
    """(epoch, value) of the last epoch metrics.jsonl holds for `metric`, or None."""
    points = read_curve(run_dir, curve_key(metric))
    return points[-1] if points else None

"""`--export json PATH`: the summary for scripts and notebooks. Every table of report.tables
with its rows as objects (header -> value, numbers as numbers, "-" and "" as null), plus each
model's numbers unformatted (baseline, every option's values, mean, std, delta with its
interval and seeds, verdict, the `effective` its script read back).
`json.load` gives it back; pandas reads a table with `pd.DataFrame(doc["tables"][i]["rows"])`."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hyperparameter_system.report.summary import OptionStat, Summary
from hyperparameter_system.report.tables import tables

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


def typed(cell: str) -> Any:
    """A table cell as a value: an int or float when it is one, None for "-" or "", else the
    text as it is."""
    text = cell.strip()
    if text in ("", "-"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return cell


def _number(value: float | None) -> float | None:
    """A float JSON can hold: NaN and infinities become null (JSON has no such numbers)."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _option(o: OptionStat) -> dict[str, Any]:
    return {"category": o.category, "run_name": o.run_name, "description": o.description,
            "option": o.option, "runs": len(o.rows), "values": [_number(v) for v in o.values],
            "mean": _number(o.mean), "std": _number(o.std), "delta": _number(o.delta),
            "half_width": _number(o.half_width), "seeds": o.seeds,
            "interval": None if o.half_width is None or o.delta is None else
            [_number(o.delta - o.half_width), _number(o.delta + o.half_width)],
            "significant": o.significant, "verdict": o.verdict, "winner": o.winner,
            "status": o.status, "duration_s": _number(o.duration_s),
            "epochs_run": _number(o.epochs_run),
            "effective": o.effective}


def to_json(summary: Summary) -> str:
    models = []
    for m in summary.models:
        models.append({
            "model": m.model, "project": m.project,
            "baseline": _option(m.baseline) if m.baseline else None,
            "combined": _option(m.combined.stat) if m.combined else None,
            "categories": [{"category": c.category,
                            "winner": c.winner.run_name if c.winner else None,
                            "options": [_option(o) for o in c.options]}
                           for c in m.categories]})
    best = summary.best
    doc = {
        "metric": summary.metric, "metric_mode": summary.metric_mode,
        "repeats": summary.repeats, "counts": summary.counts,
        "verdicts": {"paired": summary.raced, "confidence": summary.confidence,
                     "race": summary.race or None, "method": summary.method},
        "best": None if best is None else {
            "model": best.model, "category": best.category, "run_name": best.run_name,
            "label": best.label, "metric": _number(best.metric), "run_dir": best.run_dir,
            "wandb": best.link or best.sync_command},
        "models": models,
        "tables": [{"key": t.key, "title": t.title, "model": t.model or None,
                    "category": t.category or None, "note": t.note or None,
                    "headers": t.headers,
                    "rows": [{h: typed(c) for h, c in zip(t.headers, row, strict=True)}
                             for row in t.rows],
                    "winner_rows": [i for i, (w, _) in enumerate(t.tones) if w]}
                   for t in tables(summary)],
        "other_configs": [{"runs": o.count, "set": list(o.sets)}
                          for o in summary.other_configs],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"

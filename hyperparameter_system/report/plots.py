"""The report's plots as PNG bytes (matplotlib, Agg: no display needed): per category a bar chart
of each option's delta per model; per model the learning curves of its baseline, category
winners and combined run, read from each run's metrics.jsonl."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hyperparameter_system.core.safe_names import safe_name

if TYPE_CHECKING:
    from hyperparameter_system.report.summary import ModelReport, OptionStat, Summary

CURVE_FALLBACK = "val_f1"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def delta_chart(summary: Summary, category: str) -> bytes | None:
    """Grouped bars: x = the category's options, one bar per model, height = delta."""
    tables = [(m.model, t) for m in summary.models for t in m.categories if t.category == category]
    labels = list(dict.fromkeys(o.label for _, t in tables for o in t.options))
    if not labels or not any(o.delta is not None for _, t in tables for o in t.options):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(labels) + 2), 3.6))
    width = 0.8 / max(1, len(tables))
    for i, (model, table) in enumerate(tables):
        deltas = {o.label: o.delta for o in table.options}
        xs = [j + i * width for j in range(len(labels))]
        heights = [deltas.get(label) for label in labels]
        bars = ax.bar(xs, [h or 0.0 for h in heights], width, label=model)
        for bar, height in zip(bars, heights, strict=True):
            if height is None:  # failed or not run: say so rather than draw "no change"
                ax.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0), ha="center",
                            va="bottom", fontsize=7, color="grey")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([j + width * (len(tables) - 1) / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"delta {summary.metric} vs baseline")
    ax.set_title(f"{category}: delta against each model's baseline")
    ax.legend(fontsize=7)
    return _png(fig)


def _curve_key(metric: str) -> str:
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
        if isinstance(value, int | float) and isinstance(rec.get("epoch"), int | float):
            points.append((float(rec["epoch"]), float(value)))
    return points


def _curve_runs(report: ModelReport) -> list[tuple[str, OptionStat]]:
    runs = [("baseline", report.baseline)] if report.baseline else []
    runs += [(f"{t.category}: {t.winner.label}", t.winner) for t in report.categories if t.winner]
    if report.combined:
        runs.append(("combined", report.combined.stat))
    return runs


def learning_curves(summary: Summary, report: ModelReport) -> bytes | None:
    """The model's baseline, winners and combined run, epoch by epoch (first finished repeat)."""
    key = _curve_key(summary.metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    drawn = 0
    for name, stat in _curve_runs(report):
        row = next(iter(stat.done_rows), None)
        points = read_curve(row.run_dir if row else None, key)
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(key)
    ax.set_title(f"{report.model}: learning curves of the winners")
    ax.legend(fontsize=7)
    return _png(fig)


def render_all(summary: Summary) -> dict[str, bytes]:
    """File name -> PNG for every plot that has data."""
    out: dict[str, bytes] = {}
    cats = dict.fromkeys(t.category for m in summary.models for t in m.categories)
    for cat in cats:
        png = delta_chart(summary, cat)
        if png:
            out[f"deltas_{safe_name(cat)}.png"] = png
    for report in summary.models:
        png = learning_curves(summary, report)
        if png:
            out[f"curves_{safe_name(report.model)}.png"] = png
    return out

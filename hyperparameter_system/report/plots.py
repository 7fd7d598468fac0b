"""The report's plots as PNG bytes (matplotlib, Agg: no display needed), each with a caption in
words: per category a horizontal bar chart of each option's delta per model (values written
beside the bars, each delta's interval as an error bar when seeds were paired, the baseline as
the line at zero, a zero delta as a diamond on it, winners starred, the legend below);
per model the learning curves of each pool (category): the baseline and every option epoch by
epoch from its metrics.jsonl, each in its own line style and marker so identical curves stay
visible, a cross where a pruner stopped one, the legend beside the axes, not over the data."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hyperparameter_system.core.safe_names import safe_name
from hyperparameter_system.core.states import Direction, Status
from hyperparameter_system.store.curves import curve_key, read_curve

if TYPE_CHECKING:
    from hyperparameter_system.report.summary import ModelReport, OptionStat, Summary

WIDTH_IN, DPI = 13.0, 100  # 1300 px: the page's width at 1400 px, no scaling down
BETTER, WORSE, LEVEL = "#2e9e5b", "#d0453f", "#8a8a8a"
MODEL_COLOURS = ("#3b6fb6", "#e08a1e", "#7d4fb3", "#2a9d8f", "#c2527a", "#6b8e23")
STYLES = ("--", "-.", ":", (0, (6, 2)), (0, (2, 1, 2, 4)), (0, (8, 2, 1, 2)))
MARKERS = ("s", "^", "v", "D", "P", "X", "<", ">", "h", "*")
STAR = "\u2605"


@dataclass(frozen=True)
class Figure:
    """One plot: its file name (for --plots), a title and a caption in words, the PNG."""

    name: str
    title: str
    caption: str
    png: bytes


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported only when a report draws (the CLI
    starts without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes for the html report; the figure is closed (no leak per plot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def option_name(stat: OptionStat) -> str:
    """The run name, and the description beside it when there is one."""
    return f"{stat.run_name} ({stat.description})" if stat.description else stat.run_name


def _tone(summary: Summary, delta: float | None, model_colour: str | None) -> str:
    if model_colour is not None:
        return model_colour
    better = summary.better(delta)
    return LEVEL if better is None else BETTER if better else WORSE


def delta_chart(summary: Summary, category: str) -> bytes | None:
    """Horizontal bars: one row per option of the category (best first), one bar per model."""
    tables = [(m.model, t) for m in summary.models for t in m.categories if t.category == category]
    order = list(dict.fromkeys(o.option_json for _, t in tables for o in t.options))
    names = {o.option_json: option_name(o) for _, t in tables for o in t.options}
    deltas = [o.delta for _, t in tables for o in t.options if o.delta is not None]
    if not order or not deltas:
        return None
    plt = pyplot()
    models = len(tables)
    tall = max(2.4, (0.42 * models + 0.3) * len(order) + 1.3)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, tall))
    height = 0.8 / models
    _delta_span(ax, [o for _, t in tables for o in t.options])
    for i, (model, table) in enumerate(tables):
        stats = {o.option_json: o for o in table.options}
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)] if models > 1 else None
        who = f"{model}: " if models > 1 else ""
        for j, key in enumerate(order):
            y = j + (i - (models - 1) / 2) * height
            _delta_bar(ax, summary, stats.get(key), (who, colour), (y, height))
    _delta_frame(ax, summary, [names[k] for k in order])
    if models > 1:
        handles = [plt.Rectangle((0, 0), 1, 1, color=MODEL_COLOURS[i % len(MODEL_COLOURS)])
                   for i in range(models)]
        # below the axes: a label beside a long bar can never run under it
        ax.legend(handles, [m for m, _ in tables], loc="upper center",
                  bbox_to_anchor=(0.5, -0.12 - 0.6 / tall),
                  ncol=min(models, 3), fontsize=10, frameon=False, title="model")
    return png_bytes(fig)


def _delta_span(ax: Any, options: list[OptionStat]) -> None:
    """The x range: zero and every delta with its interval, with a margin each side."""
    ends = [e for o in options if o.delta is not None and o.delta == o.delta
            for e in (o.delta - (o.half_width or 0), o.delta + (o.half_width or 0))] or [0.0]
    low, high = min(0.0, *ends), max(0.0, *ends)
    span = (high - low) or max(abs(high), 1e-3)
    ax.set_xlim(low - 0.1 * span, high + 0.1 * span)  # labels may run past: the page widens


def _delta_bar(
    ax: Any,
    summary: Summary,
    stat: OptionStat | None,
    who_colour: tuple[str, str | None],
    y_height: tuple[float, float],
) -> None:
    """One model's bar for one option, with its interval and label; n/a where none ran."""
    (who, colour), (y, height) = who_colour, y_height
    delta = stat.delta if stat is not None else None
    star = f"  {STAR} winner" if stat is not None and stat.winner else ""
    pruned = f"  (pruned @{stat.pruned_at})" if stat is not None and stat.pruned else ""
    if delta is None or delta != delta:  # failed, NaN or not run: say so
        ax.plot([0], [y], marker="o", markersize=9, markerfacecolor="white",
                markeredgecolor=LEVEL, zorder=3)
        ax.annotate(f"{who}n/a ({stat.status if stat else 'not run'}){pruned}", (0, y),
                    xytext=(10, 0), textcoords="offset points", va="center",
                    fontsize=11, color="#555")
        return
    tone = _tone(summary, delta, colour)
    ax.barh([y], [delta], height * 0.9, color=tone, zorder=2,
            edgecolor="black" if star else tone, linewidth=2.2 if star else 0.5)
    if summary.better(delta) is None:  # level with the baseline: a bar of no width
        ax.plot([0], [y], marker="D", markersize=10, color=tone,
                markeredgecolor="black", zorder=3)
    width = stat.half_width if stat is not None else None
    if width:  # the delta's interval: where the truth lies at the race's confidence
        ax.errorbar([delta], [y], xerr=[[width], [width]], fmt="none", ecolor="black",
                    elinewidth=1.4, capsize=4, zorder=5)
    interval = f" ± {width:.4f}" if width is not None else ""
    verdict = (f"  {stat.verdict}" if stat is not None and stat.seeds and stat.verdict
               and not star else "")
    # right of the bar, its interval and the zero line: never over the option names
    ax.annotate(f"{who}{delta:+.4f}{interval}{star}{verdict}{pruned}",
                (max(0.0, delta + (width or 0)), y), xytext=(9, 0),
                textcoords="offset points", ha="left", va="center", fontsize=11,
                fontweight="bold" if star else "normal")


def _delta_frame(ax: Any, summary: Summary, labels: list[str]) -> None:
    """The zero line named 'baseline', the option names best first, the axis and its grid."""
    ax.axvline(0, color="black", linewidth=1.4, zorder=4)
    ax.annotate("baseline", (0, 1), xycoords=("data", "axes fraction"), xytext=(0, 4),
                textcoords="offset points", ha="center", va="bottom", fontsize=10)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=11)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # best first, at the top
    better = "higher" if summary.metric_mode == Direction.MAX else "lower"
    ax.set_xlabel(f"change in {summary.metric} against the model's baseline "
                  f"({better} is better)", fontsize=11)
    ax.tick_params(axis="x", labelsize=10)
    ax.grid(axis="x", color="#e5e5e5", zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _first_ran(stat: OptionStat):
    return next(iter(stat.ran_rows), None)


def _pools(report: ModelReport) -> list[tuple[str, list[tuple[str, OptionStat]]]]:
    """(title, [(name, stat)]) per panel: winners with the combined run when that ran, then
    each category's baseline and options."""
    panels = []
    if report.combined and report.combined.stat.ran_rows:
        runs = [("baseline", report.baseline)] if report.baseline else []
        runs += [(f"{t.category}: {option_name(t.winner)}", t.winner)
                 for t in report.categories if t.winner]
        panels.append(("baseline, category winners and the combined run",
                       [*runs, ("combined winners", report.combined.stat)]))
    for t in report.categories:
        runs = [("baseline", report.baseline)] if report.baseline else []
        panels.append((f"category {t.category}", runs + [(option_name(o), o) for o in t.options]))
    return panels


def _draw_pool(ax, runs: list[tuple[str, OptionStat]], key: str) -> int:
    drawn = 0
    for i, (name, stat) in enumerate(runs):
        row = _first_ran(stat)
        points = read_curve(row.run_dir if row else None, key)
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        base = name == "baseline"
        k = i - 1 if runs and runs[0][0] == "baseline" else i
        label = f"{STAR} {name} (winner)" if stat.winner else name
        # each curve its own dash and hollow marker, shrinking: identical curves stay visible
        ax.plot(xs, ys, color="black" if base else MODEL_COLOURS[k % len(MODEL_COLOURS)],
                linestyle="-" if base else STYLES[k % len(STYLES)],
                linewidth=2.6 if base or stat.winner else 1.8,
                marker="o" if base else MARKERS[k % len(MARKERS)],
                markersize=max(5.0, 11.0 - 1.5 * k) if not base else 7.0,
                markerfacecolor="none" if not base else "black", markeredgewidth=1.6,
                label=label + (f" - pruned @{stat.pruned_at}" if stat.pruned else ""),
                zorder=1 if base else 2 + k)
        if row is not None and row.status == Status.PRUNED:
            ax.plot([xs[-1]], [ys[-1]], marker="X", markersize=15, color=WORSE,
                    markeredgecolor="black", zorder=5, linestyle="none")
            ax.annotate(f"stopped @{int(xs[-1])}", (xs[-1], ys[-1]), xytext=(8, -14),
                        textcoords="offset points", fontsize=10, color=WORSE)
        drawn += 1
    return drawn


def learning_curves(summary: Summary, report: ModelReport) -> bytes | None:
    """The model's pools, one panel each: the baseline and every option, epoch by epoch (the
    first run of each that trained), with the stop points of pruned options marked."""
    key = curve_key(summary.metric)
    panels = _pools(report)
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 3.6 * len(panels)),
                             squeeze=False)
    drawn = 0
    for ax, (title, runs) in zip(axes[:, 0], panels, strict=True):
        got = _draw_pool(ax, runs, key)
        drawn += got
        if not got:
            ax.set_axis_off()
            ax.set_title(f"{report.model} / {title}: no curve recorded", fontsize=12)
            continue
        ax.set_title(f"{report.model} / {title}", fontsize=13, loc="left")
        ax.set_xlabel("epoch", fontsize=11)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(key, fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(color="#e5e5e5")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=10, frameon=False)
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    return png_bytes(fig)


def figures(summary: Summary) -> list[Figure]:
    """Every plot that has data, with its caption."""
    out: list[Figure] = []
    better = ("right of it is better" if summary.metric_mode == Direction.MAX
              else "left of it is better")
    cats = dict.fromkeys(t.category for m in summary.models for t in m.categories)
    for cat in cats:
        png = delta_chart(summary, cat)
        if png:
            out.append(Figure(
                f"deltas_{safe_name(cat)}.png", f"Category {cat}: each option against the "
                "baseline",
                f"Each option of {cat} (best first) as the change in {summary.metric} against "
                f"its model's baseline, the vertical line at zero ({better}); the value is "
                f"written beside each bar, {STAR} marks the category's winner, a diamond on "
                "the line an option level with the baseline, n/a one without a metric.", png))
    key = curve_key(summary.metric)
    for report in summary.models:
        png = learning_curves(summary, report)
        if png:
            out.append(Figure(
                f"curves_{safe_name(report.model)}.png", f"{report.model}: learning curves",
                f"{report.model}, one panel per category: {key} epoch by epoch for the baseline "
                f"(solid black) and each option (its own dashes and marker, so curves that "
                f"coincide stay visible); {STAR} marks a winner, a red cross where a pruner "
                "stopped an option.", png))
    return out


def render_all(summary: Summary) -> dict[str, bytes]:
    """File name -> PNG for every plot that has data."""
    return {f.name: f.png for f in figures(summary)}

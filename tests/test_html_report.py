"""The html report reads at a glance: a models x categories heat map of the
deltas with the winners marked, captions in words (not file names), one option column (run
name with its description beneath), tables that wrap; pruned options marked in the map. The
headless-Chromium screenshot of the page is tests/test_report_e2e.py's."""

from __future__ import annotations

import re

from report_helpers import settings_for
from test_pruned_reports import fill

from hyperparameter_system.core.states import Status
from hyperparameter_system.report import exports
from hyperparameter_system.report.summary import collect

CATEGORIES = {"tuning": [{"lr": 0.01, "description": "fast"},
                         {"lr": 0.0001, "description": "slow"}],
              "early_stopping": [{"patience": 5}, {"patience": 10}]}


def _curve(e):
    if e.category in ("baseline", "early_stopping"):  # level with the baseline: delta 0
        return Status.DONE, [0.5, 0.7], True
    return {"fast": (Status.DONE, [0.6, 0.8], True), "slow": (Status.PRUNED, [0.4], True)}[
        e.label]


def test_the_page_has_the_heat_map_winner_marks_and_worded_captions(tmp_path):
    settings = settings_for(tmp_path, CATEGORIES, models=("m1", "m2"))
    fill(settings, _curve)
    page = exports.to_html(collect(settings))
    heat = page[page.index('<figure id="heatmap"'):page.index("</figure>")]
    assert heat.count("<tr>") == 3  # the header and one row per model
    assert "<th>tuning</th><th>early_stopping</th>" in heat
    assert heat.count('class="winner-mark"') == 2 + 1  # fast wins for both models; the legend
    assert heat.count("pruned @1") == 2
    assert "no option beat the baseline" in heat  # early_stopping is level with the baseline
    captions = re.findall(r"<figcaption><b>(.*?)</b>", page)
    assert captions[0] == "The matrix at a glance"
    assert "Category early_stopping: each option against the baseline" in captions
    assert "m2: learning curves" in captions
    assert not any(".png" in c for c in re.findall(r"<figcaption>(.*?)</figcaption>", page))
    assert page.count("data:image/png;base64,") == 4  # 2 bar charts, 2 models' curves
    ranking = page[page.index("<h3>m1 / tuning</h3>"):]
    head = ranking[:ranking.index("</thead>")]
    assert head.count("<th>option</th>") == 1 and "run name" not in head
    assert '<code>tuning_lr0.01</code><br><span class="desc">fast</span>' in ranking
    assert "overflow-wrap: anywhere" in page and "width: 100%" in page


def _drawn(monkeypatch, draw):
    """The matplotlib figure a plot function drew, instead of its PNG bytes."""
    from hyperparameter_system.report import plots

    seen = []
    monkeypatch.setattr(plots, "png_bytes", lambda fig: seen.append(fig) or b"png")
    assert draw() == b"png"
    return seen[0]


def test_the_bars_carry_values_the_baseline_line_and_a_diamond_for_level(tmp_path, monkeypatch):
    """What the eye needs in a category chart: each bar's value (and the winner's star) beside
    it, the baseline as a line at zero, and a diamond where an option is level with it (a bar
    of no width would be invisible)."""
    from hyperparameter_system.report.plots import delta_chart

    settings = settings_for(tmp_path, CATEGORIES, models=("m1",))
    fill(settings, _curve)
    summary = collect(settings)
    ax = _drawn(monkeypatch, lambda: delta_chart(summary, "tuning")).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("+0.1000") and "\u2605 winner" in t for t in texts), texts
    assert "baseline" in texts
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # the line at zero
    level = _drawn(monkeypatch, lambda: delta_chart(summary, "early_stopping")).axes[0]
    assert [line.get_marker() for line in level.lines].count("D") == 2  # both options level


def test_curves_have_distinct_styles_and_the_legend_beside_the_data(tmp_path, monkeypatch):
    from hyperparameter_system.report.plots import learning_curves

    settings = settings_for(tmp_path, CATEGORIES, models=("m1",))
    fill(settings, _curve)
    summary = collect(settings)
    fig = _drawn(monkeypatch, lambda: learning_curves(summary, summary.models[0]))
    titled = {ax.get_title(loc="left").rsplit("/ ", 1)[-1]: ax for ax in fig.axes}
    panel = titled["category early_stopping"]
    styles = [(line.get_linestyle(), line.get_marker()) for line in panel.lines]
    assert len(styles) == 3 and len(set(styles)) == 3  # baseline + 2 identical curves, apart
    legend = panel.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > panel.bbox.x1 - 1  # outside
    stopped = titled["category tuning"].lines  # the pruner stopped one: a cross
    assert "X" in [line.get_marker() for line in stopped]

"""The html report reads at a glance (issue 15, item 16): a models x categories heat map of the
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

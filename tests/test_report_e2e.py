"""End to end over the fake trainer: run the matrix, `--combine-best`, then the summary and the
html report, which headless Chromium must render with the winners' names on the page."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from report_helpers import write_master

from hyperparameter_system import experiment_runner
from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.report.summary import collect
from hyperparameter_system.ui import commands

CATEGORIES = {
    "quality": [{"fake.metric": 0.9, "lr": 0.01, "description": "good_quality"},
                {"fake.metric": 0.3, "description": "poor_quality"}],
    "length": [{"fake.metric": 0.7, "fake.epochs": 3, "description": "longer_run"}],
}
CHROMIUM = shutil.which("chromium")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The matrix and its combined run, done once for the module."""
    tmp = tmp_path_factory.mktemp("e2e")
    config = write_master(tmp, CATEGORIES)
    html = tmp / "report.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        assert experiment_runner.main(["--config", str(config), "--all"]) == 0
        assert experiment_runner.main(["--config", str(config), "--combine-best", "--summary",
                                       "--export", "html", str(html),
                                       "--plots", str(tmp / "plots")]) == 0
    return load_settings(config), html


def test_combine_best_runs_the_combination_and_saves_its_config(ran):
    settings, _ = ran
    model = collect(settings).models[0]
    combined = model.combined
    assert [p.category for p in combined.plan.applied] == ["quality", "length"]
    assert [(c.key, c.kept_category, c.kept_value) for c in combined.plan.conflicts] == [
        ("fake.metric", "quality", 0.9)]
    assert combined.stat.status == "done" and combined.stat.mean == pytest.approx(0.9)
    assert combined.stat.delta == pytest.approx(0.4)  # baseline's fake.metric is 0.5
    assert [(v.category, round(v.diff, 6)) for v in combined.versus] == [
        ("quality", 0.0), ("length", 0.2)]
    saved = yaml.safe_load(combined.plan.config_path.read_text())
    assert saved["lr"] == 0.01 and saved["fake"] == {"sleep": 0, "metric": 0.9, "exit_code": 0,
                                                      "epochs": 3}
    assert saved["model_name"] == "m1"
    assert combined.stat.epochs_run == 3


def test_combine_best_again_is_resumed_not_rerun(ran):
    settings, _ = ran
    result = commands.combine_best(settings, view=commands.CombineView(live=False))
    assert result.skipped_done == 1 and result.outcomes == []


def test_plots_written(ran):
    _, html = ran
    plots = sorted(p.name for p in (html.parent / "plots").iterdir())
    assert plots == ["curves_m1.png", "deltas_length.png", "deltas_quality.png"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(ran, tmp_path):
    from PIL import Image

    _, html = ran
    text = html.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert text.count("data:image/png;base64,") == 3
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1400,3000",
                    html.as_uri()], check=True, capture_output=True, timeout=60)
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 1
    assert image.getextrema() != ((255, 255), (255, 255), (255, 255))
    import matplotlib.image
    import numpy

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1400) and float(numpy.var(pixels[..., :3])) > 0.01
    assert '<figure id="heatmap"' in text and 'class="winner-mark"' in text
    assert "<b>The matrix at a glance</b>" in text and "<b>m1: learning curves</b>" in text
    assert "<b>Category quality: each option against the baseline</b>" in text
    assert ".png</figcaption>" not in text
    dom = subprocess.run([*common, "--dump-dom", html.as_uri()], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    for name in ("good_quality", "longer_run", "combined winners", "Best run overall",
                 "The matrix at a glance", "\u2605"):
        assert name in dom

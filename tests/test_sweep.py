"""`--sweep key=a,b key2=range(...)`: this invocation's categories in Hydra's sweep syntax, one
factor at a time around each model's base, with the baseline, the ledger and the summary as
for declared categories (the fake trainer, then once with the built-in one)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE = {"name": "fake-net.v1", "script": "python tests/fakes/fake_train.py"}


def _tables(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if line.startswith("fake-net.v1 / ")]


def test_a_sweep_runs_each_key_as_a_category_with_the_baseline(master_config, cli,
                                                                tmp_path) -> None:
    path = master_config(models=[FAKE])
    sweep = ["--sweep", "lr=1e-3,3e-3,1e-2", "patience=range(2,4)"]
    shown = cli("--config", str(path), "--matrix", *sweep)
    assert shown.returncode == 0, shown.stderr
    for name in ("baseline", "lr0.001", "lr0.003", "lr0.01", "patience2", "patience3"):
        assert f" {name} " in shown.stdout, shown.stdout
    assert "es_patience" not in shown.stdout and "opt_SGD" not in shown.stdout  # declared: out
    assert "Total: 6 experiments" in shown.stdout

    res = cli("--config", str(path), *sweep)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "6 done, 0 failed" in res.stdout
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = sorted(db.execute("SELECT category, status FROM experiments").fetchall())
    assert rows == [("baseline", "done")] + [("lr", "done")] * 3 + [("patience", "done")] * 2

    summary = cli("--config", str(path), "--summary", *sweep)
    assert summary.returncode == 0, summary.stderr
    assert "nothing to run: 6 skipped (already done)" in summary.stdout
    assert {"fake-net.v1 / lr", "fake-net.v1 / patience"} <= set(_tables(summary.stdout))


@pytest.mark.parametrize(("sweep", "said"), [
    ("lr=interval(0,1)", "--sweep lr=interval(0,1): is an interval"),
    ("lr=1e-3,abc", "--sweep lr=1e-3,abc: value 2 (lr): expected a number"),
    ("lr=1e-3,0.001", "--sweep lr=1e-3,0.001: a value is listed twice"),
    ("+lr=1,2", "--sweep +lr=1,2: expected key=a,b"),
    ("lr 1,2", "--sweep lr 1,2: expected key=value"),
    ("lrr=1,2", "--sweep lrr=1,2: value 1 (lrr): 'lrr' is not a key of the base config"),
])
def test_a_bad_sweep_is_one_line_and_launches_nothing(master_config, cli, tmp_path, sweep,
                                                      said) -> None:
    res = cli("--config", str(master_config(models=[FAKE])), "--sweep", sweep)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_sweep_trains_with_the_built_in_trainer(master_config, cli, tmp_path,
                                                 data_dir) -> None:
    data = data_dir
    path = master_config(
        system={"base_config": "codes/config_v2.yaml",
                "overrides": ["epochs=1", "limit_samples=120", "image_size=16", "batch_size=32",
                              f"data_dir={data}", f"output_dir={tmp_path / 'outputs'}"]},
        models=[{"name": "test_resnet.r160_in1k", "script": "python codes/train.py"}],
        execution={"max_parallel": 2, "experiment_timeout": 300})
    sweep = ["--sweep", "lr=1e-3,1e-2", "optimizer_name=AdamW,SGD"]
    res = cli("--config", str(path), *sweep, "--summary", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "5 done, 0 failed" in res.stdout
    tables = [line.strip() for line in res.stdout.splitlines()
              if line.startswith("test_resnet.r160_in1k / ")]
    assert {"test_resnet.r160_in1k / lr",
            "test_resnet.r160_in1k / optimizer_name"} <= set(tables), res.stdout

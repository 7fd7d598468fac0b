"""The loop's seams: one Parts object, a list of callbacks, a registry of schedulers."""

from __future__ import annotations

import json
import time

import pytest
import torch
from trainer import registry
from trainer import run as run_module
from trainer.artifacts import RunDir
from trainer.callbacks import Callback
from trainer.data import load_train_set, split_indices
from trainer.device import amp_plan
from trainer.engine import fit
from trainer.parts.assemble import build_parts
from trainer.parts.targets import import_target


class Recorder(Callback):
    """Records the hooks it sees; stops after `stop_at` with `stop_status`."""

    def __init__(self, stop_at: int | None = None, status: str | None = None, start: int = 0):
        self.seen: list[tuple[str, int]] = []
        self.stop_at, self.stop_status, self.start = stop_at, status, start

    def on_fit_start(self, state):
        state.epoch = self.start
        self.seen.append(("start", state.epoch))

    def on_epoch_end(self, state):
        self.seen.append(("epoch", state.epoch))
        return state.epoch == self.stop_at

    def on_fit_end(self, state):
        self.seen.append(("end", state.epoch))


@pytest.fixture
def parts(tiny_cfg):
    data = load_train_set(tiny_cfg)
    split = split_indices(data.labels, tiny_cfg)[0]
    cpu = torch.device("cpu")
    return build_parts(tiny_cfg, data, split, cpu, amp_plan(False, cpu))


def test_a_callback_stops_the_loop_and_names_the_status(parts):
    stopper, watcher = Recorder(stop_at=2, status="pruned"), Recorder()
    result = fit(parts, [stopper, watcher], epochs=4)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.stopped_early is True and result.stop_status == "pruned"
    assert watcher.seen == [("start", 0), ("epoch", 1), ("epoch", 2), ("end", 2)]


def test_on_fit_start_can_resume_after_an_epoch(parts):
    result = fit(parts, [Recorder(start=2)], epochs=3)
    assert [r["epoch"] for r in result.history] == [3]


def test_a_stopping_callback_sets_the_result_status(tiny_cfg, tmp_path, monkeypatch):
    """The slot a stop-request callback will take: one more callback, status in result.json."""
    real = run_module.callbacks_for
    monkeypatch.setattr(
        run_module,
        "callbacks_for",
        lambda setup: [*real(setup), Recorder(stop_at=1, status="pruned")],
    )
    tiny_cfg.update(epochs=3)
    result = run_module.train(tiny_cfg, RunDir(tmp_path / "run"), "t", time.time())
    assert result["status"] == "pruned" and result["metrics"]["epochs_run"] == 1
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["status"] == "pruned"
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("info", registry.SCHEDULERS, ids=lambda info: info.name)
def test_every_scheduler_record_resolves(info):
    cls = import_target(info.target, "scheduler_name")
    assert cls.__name__ == info.name and info.interval in ("epoch", "step", "plateau")

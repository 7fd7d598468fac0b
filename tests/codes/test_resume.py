"""Graceful stops and resumable training: stop_request.json ends a run as pruned (exit 0),
and a run interrupted after epoch 2 and resumed from last.pt (HPSYS_RESUME) ends exactly as
the run that was never interrupted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from trainer import run as run_module
from trainer.artifacts import RunDir
from trainer.callbacks import Callback


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


class Crash(Callback):
    """Dies after epoch `at` (after last.pt is saved: the callbacks before it ran)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, state):
        if state.epoch == self.at:
            raise RuntimeError("killed")


def _train(cfg, run: Path):
    return run_module.train(cfg, RunDir(run), "t", time.time())


@pytest.mark.slow
def test_resumed_run_ends_as_the_uninterrupted_one(tiny_cfg, tmp_path, monkeypatch):
    tiny_cfg.update(epochs=4, patience=3)
    whole = _train(tiny_cfg, tmp_path / "whole")

    real = run_module.callbacks_for
    with monkeypatch.context() as m:
        m.setattr(run_module, "callbacks_for", lambda setup: [*real(setup), Crash(2)])
        with pytest.raises(RuntimeError, match="killed"):
            _train(tiny_cfg, tmp_path / "cut")
    cut = tmp_path / "cut"
    point = json.loads((cut / "resume.json").read_text())
    last = cut / "checkpoints" / "last.pt"
    assert point == {"checkpoint": str(last.resolve()), "epoch": 2}
    assert not (cut / "result.json").exists()

    monkeypatch.setenv("HPSYS_RESUME", point["checkpoint"])
    epochs_trained: list[int] = []

    class Seen(Callback):
        def on_epoch_end(self, state):
            epochs_trained.append(state.epoch)

    monkeypatch.setattr(run_module, "callbacks_for", lambda setup: [*real(setup), Seen()])
    resumed = _train(tiny_cfg, cut)
    assert epochs_trained == [3, 4]  # the resumed process trains epochs 3-4 only
    assert resumed["resumed_from_epoch"] == 2 and "resumed_from_epoch" not in whole
    assert [r["epoch"] for r in _lines(cut)] == [1, 2, 3, 4]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(_lines(cut)) == strip(_lines(tmp_path / "whole"))
    assert resumed["metrics"] == whole["metrics"]  # bit-equal floats: CPU, same seed
    assert resumed["effective"] == whole["effective"]
    a = torch.load(tmp_path / "whole/checkpoints/best_model.pt", weights_only=False)
    b = torch.load(cut / "checkpoints/best_model.pt", weights_only=False)
    assert a["epoch"] == b["epoch"]
    assert all(torch.equal(a["model_state"][k], v) for k, v in b["model_state"].items())
    assert json.loads((cut / "resume.json").read_text())["epoch"] == 4


def test_a_changed_config_starts_over(tiny_cfg, tmp_path, monkeypatch, capsys):
    tiny_cfg.update(epochs=1)
    _train(tiny_cfg, tmp_path / "a")
    monkeypatch.setenv("HPSYS_RESUME", str(tmp_path / "a/checkpoints/last.pt"))
    tiny_cfg.update(lr=tiny_cfg["lr"] * 2)
    result = _train(tiny_cfg, tmp_path / "a")
    assert "resumed_from_epoch" not in result and result["metrics"]["epochs_run"] == 1
    assert "lr" in capsys.readouterr().err


@pytest.mark.slow
def test_stop_request_during_epoch_one_prunes_after_it(tiny_cfg, write_cfg, run_script, tmp_path):
    """A real process: the request appears while epoch 1 trains; the run ends after epoch 1
    with status pruned, exit 0, and its W&B offline run tagged pruned."""
    run = tmp_path / "run"
    tiny_cfg.update(epochs=4, limit_samples=320, batch_size=8)
    tiny_cfg["wandb"].update(mode="offline", project="p")
    stopper = tmp_path / "stop_on_first_batch.py"
    # the request lands in the middle of epoch 1: written from the first training batch
    stopper.write_text(
        "import json, os, runpy, sys\n"
        "import trainer.engine as e\n"
        "real = e.train_step\n"
        "def step(*a, **k):\n"
        "    p = os.path.join(os.environ['HPSYS_RUN_DIR'], 'stop_request.json')\n"
        "    if not os.path.exists(p):\n"
        "        open(p, 'w').write(json.dumps({'reason': 'pruned', 'epoch': 0, 'detail': 'x'}))\n"
        "    return real(*a, **k)\n"
        "e.train_step = step\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    env = {"HPSYS_RUN_DIR": str(run), "WANDB_MODE": "offline", "PYTHONPATH": "codes"}
    done = run_script(
        [str(stopper), "codes/train.py", "--config", str(write_cfg(tiny_cfg))], env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "pruned"
    assert result["metrics"]["epochs_run"] == 1 and result["metrics"]["stopped_early"] is True
    assert [r["epoch"] for r in _lines(run)] == [1]
    assert (run / "checkpoints" / "last.pt").is_file()
    assert json.loads((run / "resume.json").read_text())["epoch"] == 1
    assert "stop requested (pruned, x)" in (run / "train.log").read_text()
    wandb = result["wandb"]
    assert wandb["mode"] == "offline" and "pruned" in wandb["tags"]
    files = list(Path(wandb["dir"]).glob("run-*.wandb"))
    assert files and b"pruned" in files[0].read_bytes()  # the tag is in the offline run


def test_a_request_inside_a_long_epoch_ends_the_run_there(tiny_cfg, tmp_path, monkeypatch):
    """Checked every N batches: the unfinished epoch is discarded, the done ones reported."""
    from trainer.callbacks import StopRequest

    def callbacks(setup):
        found = real(setup)
        stopper = next(cb for cb in found if isinstance(cb, StopRequest))
        stopper.every_batches = 1
        return [*found, Request(stopper.path)]

    class Request(Callback):  # writes the request after the first batch of epoch 2
        def __init__(self, path):
            self.path = path

        def interrupts(self, state):
            if state.epoch == 2 and not self.path.exists():
                self.path.write_text('{"reason": "pruned"}')
            return False

    real = run_module.callbacks_for
    monkeypatch.setattr(run_module, "callbacks_for", callbacks)
    tiny_cfg.update(epochs=3, batch_size=8)
    result = _train(tiny_cfg, tmp_path / "run")
    assert result["status"] == "pruned" and result["metrics"]["epochs_run"] == 1
    assert [r["epoch"] for r in _lines(tmp_path / "run")] == [1]


@pytest.mark.slow
def test_a_sigkilled_process_resumes_from_last_pt_with_its_wandb_run(
        tiny_cfg, write_cfg, run_script, tmp_path):
    """A real kill: the process is SIGKILLed once epoch 2's checkpoint is written; the next
    process, given HPSYS_RESUME, trains the remaining epochs only, logs none twice, ends with
    the metrics of a run never interrupted, and continues the same W&B run (resume="allow",
    same id: two offline segments that `wandb sync` joins)."""
    import os
    import signal
    import subprocess
    import sys

    tiny_cfg.update(epochs=4, patience=4, limit_samples=320, batch_size=8)
    tiny_cfg["wandb"].update(mode="offline", project="p")
    config = str(write_cfg(tiny_cfg))
    root = Path(__file__).resolve().parents[2]

    def env(run: Path, run_id: str, **more: str) -> dict[str, str]:
        return {**os.environ, "HPSYS_RUN_DIR": str(run), "WANDB_MODE": "offline",
                "WANDB_RUN_ID": run_id, **more}

    whole = tmp_path / "whole"
    done = run_script(["codes/train.py", "--config", config], env=env(whole, "whole1"))
    assert done.returncode == 0, done.stderr[-2000:]

    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "codes/train.py", "--config", config], cwd=root,
                            env=env(cut, "cut1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    point: dict = {}
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            point = json.loads((cut / "resume.json").read_text())
        except (OSError, ValueError):
            point = {}
        if point.get("epoch", 0) >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert 2 <= point.get("epoch", 0) < 4, point
    assert not (cut / "result.json").exists()

    again = run_script(["codes/train.py", "--config", config],
                       env=env(cut, "cut1", HPSYS_RESUME=point["checkpoint"]))
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads((cut / "result.json").read_text())
    untouched = json.loads((whole / "result.json").read_text())
    assert resumed["resumed_from_epoch"] == point["epoch"]
    assert [r["epoch"] for r in _lines(cut)] == [1, 2, 3, 4]  # none lost, none twice
    assert resumed["metrics"] == untouched["metrics"]  # bit-equal on CPU, same seed
    assert resumed["wandb"]["run_id"] == "cut1"
    segments = sorted(Path(resumed["wandb"]["dir"]).parent.glob("offline-run-*-cut1"))
    assert len(segments) == 2, segments  # the killed run's and its continuation

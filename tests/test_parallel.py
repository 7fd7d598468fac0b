"""Parallel slots on one machine: GPUs split between experiments, freed slots refilled at once,
CPU threads shared out, and GPU detection without torch (a fake nvidia-smi on PATH)."""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from parallel_support import events, fake_settings, max_overlap

from hyperparameter_system.app import api
from hyperparameter_system.run import devices
from hyperparameter_system.ui import commands

FAKE_SMI = """#!/bin/sh
case "$*" in
  *query-gpu*) printf '%s\\n' $FAKE_SMI_GPUS ;;
  *query-compute-apps*) printf '%s\\n' $FAKE_SMI_PIDS ;;
esac
"""


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An nvidia-smi on PATH reporting GPUs $FAKE_SMI_GPUS and compute pids $FAKE_SMI_PIDS."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("FAKE_SMI_GPUS", "0 1 2")
    monkeypatch.setenv("FAKE_SMI_PIDS", "")


@pytest.fixture
def fake_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("FAKE_EVENTS", str(path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return path


JOB_S = 2.0  # long against interpreter start-up (0.1 s idle, ~1 s on a busy 2-core machine)


@pytest.mark.parametrize("max_parallel", [4, 8])
def test_four_gpus_eight_experiments_run_in_two_rounds(tmp_path, fake_events, max_parallel):
    options = [{"fake.sleep": JOB_S, "fake.metric": round(0.1 * (i + 1), 2)} for i in range(8)]
    settings = fake_settings(tmp_path, options, {"max_parallel": max_parallel,
                                                 "gpus": [0, 1, 2, 3]})
    experiments = api.select(settings)
    began = time.time()
    result = api.run(settings, experiments)
    took = time.time() - began

    assert result.count("done") == 8
    records = events(fake_events)
    assert sorted(r["id"] for r in records) == sorted(e.id for e in experiments)
    assert {r["cuda"] for r in records} == {"0", "1", "2", "3"}
    for a, b in itertools.combinations(records, 2):
        if a["start"] < b["end"] and b["start"] < a["end"]:
            assert a["cuda"] != b["cuda"], (a, b)
    assert max_overlap(records) == 4
    # two rounds: each GPU ran two experiments, one after the other
    assert sorted(Counter(r["cuda"] for r in records).values()) == [2, 2, 2, 2]
    # ... and the whole run took about two experiments' time. Counted in this run's own
    # experiment time (launch to exit, start-up included), load slows the rounds and the
    # yardstick alike; one slot fewer would need three rounds, a batch of 8 at once one.
    per_experiment = statistics.median(o.duration_s for o in result.outcomes)
    rounds = took / per_experiment
    assert took >= 2 * JOB_S and 1.5 <= rounds < 2.9, (
        f"8 x {JOB_S:g} s on 4 GPUs took {took:.2f} s = {rounds:.2f} rounds of "
        f"{per_experiment:.2f} s")


def test_a_freed_slot_takes_the_next_experiment_at_once(tmp_path, fake_events):
    # the four short ones fit in the long one even when each takes ~1 s to start (a busy CI)
    sleeps = [4.0, 0.2, 0.2, 0.2, 0.2]
    options = [{"fake.sleep": s, "fake.metric": round(0.1 * (i + 1), 2)}
               for i, s in enumerate(sleeps)]
    settings = fake_settings(tmp_path, options, {"max_parallel": 2, "gpus": "none"})
    result = api.run(settings, api.select(settings))

    assert result.count("done") == 5
    records = sorted(events(fake_events), key=lambda r: r["start"])
    long_run = max(records, key=lambda r: r["end"] - r["start"])
    short = [r for r in records if r is not long_run]
    # batches of two would start one short one while the long one runs; a freed slot refilled
    # at once runs all four there, one after the other
    assert all(r["end"] < long_run["end"] for r in short), "short ones waited for a batch"
    assert max_overlap(short) == 1
    assert all(r["cuda"] == "" for r in records)


def test_auto_finds_gpus_with_nvidia_smi(fake_smi):
    assert devices.detect_gpus() == ["0", "1", "2"]
    slots = devices.plan_slots(8, "auto", cpus=12)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "2"]
    assert {s.env["OMP_NUM_THREADS"] for s in slots} == {"4"}
    probe = ("import sys; from hyperparameter_system.app import api; "
             "from hyperparameter_system.run import devices, ray_executor; "
             "devices.plan_slots(8, 'auto'); assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_auto_honours_cuda_visible_devices(fake_smi, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert devices.detect_gpus() == ["1", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5e1f,MIG-a0b1/1/0")  # a scheduler's UUIDs
    slots = devices.plan_slots(4, "auto", cpus=4)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["GPU-5e1f", "MIG-a0b1/1/0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.plan_slots(2, "auto", cpus=4)[0].devices == ()


def test_auto_without_gpus_leaves_cuda_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    slots = devices.plan_slots(3, "auto", cpus=6)
    assert [s.name for s in slots] == ["cpu0", "cpu1", "cpu2"]
    assert all("CUDA_VISIBLE_DEVICES" not in s.env for s in slots)


def test_gpus_none_hides_cuda():
    slots = devices.plan_slots(2, (), cpus=8)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["", ""]
    assert slots[0].env["OMP_NUM_THREADS"] == "4"
    assert slots[0].env["HPSYS_MAX_WORKERS"] == "3"


def test_two_gpus_per_experiment():
    slots = devices.plan_slots(8, [0, 1, 2, 3, 4], gpus_per_experiment=2, cpus=8)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0,1", "2,3"]
    with pytest.raises(ValueError, match="3 per experiment"):
        devices.plan_slots(4, [0, 1], gpus_per_experiment=3)


def test_two_experiments_per_gpu():
    slots = devices.plan_slots(8, [0, 1], experiments_per_gpu=2, cpus=8)
    assert sorted(s.env["CUDA_VISIBLE_DEVICES"] for s in slots) == ["0", "0", "1", "1"]
    assert {s.env["MKL_NUM_THREADS"] for s in slots} == {"2"}
    assert len(devices.plan_slots(3, [0, 1], experiments_per_gpu=2)) == 3


def test_two_gpus_per_experiment_shared_by_two():
    slots = devices.plan_slots(8, [0, 1, 2, 3], gpus_per_experiment=2, experiments_per_gpu=2,
                               cpus=8)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0,1", "2,3", "0,1", "2,3"]
    assert {s.env["OMP_NUM_THREADS"] for s in slots} == {"2"}


def test_gpu_indices_match_nvidia_smi_and_are_never_listed_twice():
    assert {s.env["CUDA_DEVICE_ORDER"] for s in devices.plan_slots(2, [0, 1])} == {"PCI_BUS_ID"}
    with pytest.raises(ValueError, match="listed twice"):
        devices.plan_slots(2, [0, 0, 1])


def test_max_parallel_caps_the_slots():
    slots = devices.plan_slots(2, [0, 1, 2, 3], cpus=1)
    assert [s.devices for s in slots] == [("0",), ("1",)]
    assert slots[0].env["OMP_NUM_THREADS"] == "1"


def test_wait_released_waits_for_the_experiments_gpu_memory(fake_smi, monkeypatch):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                              env={**os.environ, "HPSYS_EXPERIMENT_ID": "exp-held"})
    try:
        monkeypatch.setenv("FAKE_SMI_PIDS", f"{holder.pid} 1")
        began = time.time()
        assert devices.wait_released([0], "exp-held", timeout=0.8) is False
        assert time.time() - began >= 0.8
        assert devices.wait_released([0], "exp-other", timeout=0.8) is True
    finally:
        holder.kill()
        holder.wait()
    assert devices.wait_released([0], "exp-held", timeout=0.8) is True


def test_the_overhead_bench_display_takes_what_the_executor_passes():
    """bench/runner_overhead.py stands in for console.RunDisplay: same methods, same arguments
    (it broke silently once when `finished` gained `final`)."""
    import importlib.util
    import inspect

    from hyperparameter_system.ui import console

    path = Path(__file__).resolve().parents[1] / "bench" / "runner_overhead.py"
    spec = importlib.util.spec_from_file_location("runner_overhead", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name in ("started", "finished", "refresh", "message"):
        real = inspect.signature(getattr(console.RunDisplay, name))
        args = [object()] * (len(real.parameters) - 1)
        inspect.signature(getattr(bench.Stamps, name)).bind(None, *args)


@pytest.mark.parametrize("value", ["-1", " -1 ", "-1,0", ""])
def test_cuda_visible_devices_minus_one_means_no_gpus(fake_smi, monkeypatch, value):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert devices.detect_gpus() == []
    slots = devices.plan_slots(4, "auto", cpus=4)
    assert [s.name for s in slots] == ["cpu0", "cpu1", "cpu2", "cpu3"]
    # the runner's own CUDA_VISIBLE_DEVICES reaches the scripts unchanged: still no GPU
    assert all(not s.devices and "CUDA_VISIBLE_DEVICES" not in s.env for s in slots)


def test_cuda_visible_devices_ends_at_its_first_invalid_entry(fake_smi, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,-1,3")  # as CUDA reads it: GPU 2 only
    assert devices.detect_gpus() == ["2"]


def test_gpu_memory_held_after_a_run_is_warned_about_once(tmp_path, fake_events, monkeypatch):
    from hyperparameter_system.ui import console

    options = [{"fake.metric": round(0.1 * (i + 1), 2)} for i in range(3)]
    settings = fake_settings(tmp_path, options, {"max_parallel": 1, "gpus": [0]})
    checked: list[str] = []
    said: list[str] = []

    def still_held(gpus, experiment_id, timeout=30.0):
        checked.append(experiment_id)
        return False

    monkeypatch.setattr(devices, "wait_released", still_held)
    monkeypatch.setattr(console, "warn", said.append)
    result = commands.run(settings, api.select(settings), show=False)
    assert result.count("done") == 3 and len(checked) == 3
    assert len(said) == 1 and "still held" in said[0] and checked[0] in said[0], said


def test_the_estimate_spreads_over_the_slots_actually_planned(tmp_path, capsys):
    """--dry-run, the menu and --matrix alike: 2 GPUs cap max_parallel 8 at 2 slots."""
    from hyperparameter_system.store.outcomes import Outcome
    from hyperparameter_system.ui import console

    options = [{"fake.metric": round(0.1 * (i + 1), 2)} for i in range(4)]
    settings = fake_settings(tmp_path, options, {"max_parallel": 8, "gpus": [0, 1]})
    experiments = api.select(settings)
    ledger = api.open_ledger(settings)
    ledger.sync(experiments)
    for e in experiments[:2]:  # two took 10 s before; the two left are estimated alike
        ledger.finish(e.id, Outcome(e.id, "done", 100.0, 110.0, exit_code=0), 0.5)
    plan = api.plan_run(settings, experiments, rerun=True)
    assert plan.slots == 2 and plan.estimate_s == pytest.approx(20.0)  # 2 GPUs, not 8
    commands.show_matrix(settings, experiments)
    assert "2 done, 2 to run; estimated 10s on 2 slot(s)" in capsys.readouterr().out
    ray = fake_settings(tmp_path, options, {"executor": "ray", "max_parallel": 4})
    assert api.plan_run(ray, experiments, rerun=True).estimate_s == pytest.approx(10.0)
    ray = fake_settings(tmp_path, options, {"executor": "ray", "max_parallel": 1})
    plan = api.plan_run(ray, experiments, rerun=True)  # as many as the cluster holds: unknown
    assert plan.slots is None and plan.estimate_s is None
    console.print_plan(plan)
    assert "estimated time: unknown" in capsys.readouterr().out
    commands.show_matrix(ray, experiments)
    assert "time unknown (the Ray cluster decides" in capsys.readouterr().out


def test_views_ask_for_gpus_only_to_spread_known_durations(tmp_path, monkeypatch):
    """--matrix and --dry-run start fast on a GPU server: nvidia-smi runs only when there are
    earlier durations to spread over the slots."""
    calls = []
    monkeypatch.setattr(devices, "detect_gpus", lambda: calls.append(1) or [])
    settings = fake_settings(tmp_path, [{"fake.metric": 0.1}], {"gpus": "auto"})
    experiments = api.select(settings)
    commands.show_matrix(settings, experiments)
    assert api.plan_run(settings, experiments).slots is None and calls == []

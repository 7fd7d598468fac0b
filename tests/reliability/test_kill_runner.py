"""Point 1: the runner SIGKILLed at random moments and restarted loses and duplicates nothing."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from relkit import (
    completions,
    experiment_pids,
    integrity,
    ledger_rows,
    master_dict,
    run_cli,
    start_cli,
    wait_for,
    write_master,
)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    rng = random.Random(7)
    options = [{"fake.sleep": round(rng.uniform(0.2, 1.5), 2), "fake.metric": i / 20}
               for i in range(20)]
    config = str(write_master(tmp_path, master_dict(tmp_path, options)))
    mid_run = 0  # kills that caught experiments running: without them this proves little
    for _ in range(6):  # each runner is killed at a random moment of its run
        proc = start_cli(tmp_path, "--config", config, "--all")
        # the moment is counted from its first launch, not from its start: a busy machine may
        # take seconds to start the interpreter, and a kill before any launch proves little
        assert wait_for(lambda: experiment_pids(tmp_path), 30), proc.poll()
        time.sleep(rng.uniform(0.0, 0.7))
        assert proc.poll() is None, "the matrix ended before the sixth kill"
        mid_run += bool(experiment_pids(tmp_path))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed_at = time.time()  # the runner is reaped, so its children had their SIGKILL
        # the children of a killed runner die with it: none lives on to finish its sleep
        # (0.2-1.5 s), which would leave an end record after the kill or a process at the end
        # of the wait. No race with the clock: the record proves it, the wait only has to end.
        assert wait_for(lambda: not experiment_pids(tmp_path), 5), experiment_pids(tmp_path)
        assert not [e for e in _events(tmp_path) if e["end"] > killed_at], "outlived the kill"
    assert mid_run >= 5, f"only {mid_run} of 6 kills caught experiments running"
    final = run_cli(tmp_path, "--config", config, "--all")
    assert final.returncode == 0, final.stderr

    rows = ledger_rows(tmp_path)
    assert len(rows) == 20 and {r["status"] for r in rows} == {"done"}
    assert all(r["pid"] is None and r["finished_at"] and r["result_json"] for r in rows)
    assert integrity(tmp_path / "l.db") == "ok"
    runs = completions(tmp_path)
    assert max(runs.values()) == 1, runs  # none completed twice
    # an attempt that ran to its end before the kill was recorded from its result.json
    assert set(runs) <= {r["id"] for r in rows}
    assert not experiment_pids(tmp_path)


def _events(tmp: Path) -> list[dict]:
    """The fake trainer's start/end records (one per experiment that ran to its end)."""
    path = tmp / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

"""Resume end to end: the runner SIGKILLed after 2 of 4 epochs, the same command run again:
the experiment goes on from its checkpoint in the same run folder (HPSYS_RESUME, the same W&B
run id), trains epochs 3-4 only, and is recorded done."""

from __future__ import annotations

import json
import signal

import pytest
from relkit import (
    experiment_pids,
    ledger_rows,
    master_dict,
    run_cli,
    start_cli,
    wait_for,
    write_master,
)


def _point(tmp):
    found = list((tmp / "runs").rglob("resume.json"))
    return json.loads(found[0].read_text()) if found else None


@pytest.mark.slow
@pytest.mark.parametrize("resumable", [True, False])
def test_killed_runner_resumes_the_experiment(tmp_path, resumable):
    option = {"+fake.epochs": 4, "+fake.epoch_s": 0.6, "+fake.resumable": resumable}
    config = str(write_master(tmp_path, master_dict(tmp_path, [option])))
    proc = start_cli(tmp_path, "--config", config, "--all")
    run_dir = None

    def two_epochs_done():
        nonlocal run_dir
        found = list((tmp_path / "runs").rglob("metrics.jsonl"))
        run_dir = found[0].parent if found else None
        return run_dir and len(found[0].read_text().splitlines()) >= 2

    assert wait_for(two_epochs_done, 60), proc.poll()
    assert not resumable or wait_for(lambda: (_point(tmp_path) or {}).get("epoch") == 2, 5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert wait_for(lambda: not experiment_pids(tmp_path), 5)
    first = json.loads((run_dir / "record.json").read_text())["env"]
    assert [r["status"] for r in ledger_rows(tmp_path)] == ["running"]  # the dead runner's

    again = run_cli(tmp_path, "--config", config, "--all")
    assert again.returncode == 0, again.stderr
    [row] = ledger_rows(tmp_path)
    assert row["status"] == "done" and row["run_dir"] == str(run_dir)
    env = json.loads((run_dir / "record.json").read_text())["env"]
    result = json.loads(row["result_json"])
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").open()]
    if resumable:
        assert result["resumed_from_epoch"] == 2
        assert env["HPSYS_RESUME"] == str(run_dir / "ckpt.json")
        assert env["WANDB_RUN_ID"] == first["WANDB_RUN_ID"] == row["wandb_run_id"]
        assert epochs == [1, 2, 3, 4]  # 1-2 from the killed attempt, 3-4 from this one
        assert not (run_dir / "metrics.jsonl.prev").exists()
    else:  # a script that cannot resume is simply rerun, as before
        assert "resumed_from_epoch" not in result and "HPSYS_RESUME" not in env
        assert env["WANDB_RUN_ID"] != first["WANDB_RUN_ID"]
        assert epochs == [1, 2, 3, 4] and (run_dir / "metrics.jsonl.prev").exists()

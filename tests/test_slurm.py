"""The Slurm executor on a real single-node Slurm (tests/slurm_cluster.py: munged, slurmctld,
slurmd in a temp folder, on 127.0.0.1): every experiment a job, faults (requeue, time limit,
scancel, Ctrl-C, a SIGKILLed runner) handled as the README's "Slurm" section says."""

from __future__ import annotations

import subprocess

import pytest
from parallel_support import fake_settings
from slurm_cluster import slurm  # noqa: F401 - the session fixture

from hyperparameter_system.app import api


def test_the_cluster_runs_a_job_on_loopback(slurm, tmp_path):  # noqa: F811
    out = tmp_path / "out.txt"
    subprocess.run(["sbatch", "--wait", "-o", str(out), "--wrap", "echo $SLURM_JOB_ID"],
                   check=True, capture_output=True, timeout=60)
    assert out.read_text().strip().isdigit()
    listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    daemons = [line for line in listening.splitlines() if "slurm" in line]
    assert daemons and all("127.0.0.1:" in line for line in daemons), daemons


SLURM = {"executor": "slurm", "gpus": "none", "max_parallel": 3, "heartbeat_s": 0.5,
         "stale_after_s": 10, "slurm": {"poll_s": 0.3, "signal_s": 5}}


def test_a_matrix_runs_as_slurm_jobs(slurm, tmp_path):  # noqa: F811
    """Every experiment a job (its id and node in the ledger), results and summary as
    locally; the overhead per experiment (submit to start, end to runner) is printed."""
    options = [{"fake.sleep": 0.5, "fake.metric": m} for m in (0.3, 0.6, 0.9)]
    settings = fake_settings(tmp_path, options, SLURM)
    result = api.run(settings, api.select(settings))
    assert [o.status for o in result.outcomes] == ["done"] * 3, [o.error for o in result.outcomes]
    rows = api.ledger(settings).rows()
    jobs = {r.job for r in rows}
    assert len(jobs) == 3 and all(j and j.isdigit() for j in jobs)
    assert {r.node for r in rows} == {slurm.node}
    assert all(r.status == "done" and r.metric is not None for r in rows)
    best = max(r.metric for r in rows)
    assert best == pytest.approx(0.9)
    summary = api.summarize(settings)
    assert summary.models
    overhead = [(o.extra["submit_to_start_s"], o.extra["end_to_runner_s"])
                for o in result.outcomes]
    print("slurm overhead (submit->start, end->runner):", overhead)
    assert not slurm.jobs()


@pytest.mark.parametrize(("slurm_block", "said"), [
    ({"time": "soon"}, "execution.slurm.time: expected minutes or an sbatch time"),
    ({"mem": "lots"}, "execution.slurm.mem: expected a size"),
    ({"max_jobs": 0}, "execution.slurm.max_jobs: expected a value >= 1"),
    ({"partiton": "gpu"}, "execution.slurm.partiton: unknown key (did you mean 'partition'?)"),
    ({"additional": {"requeue": True}}, "--requeue is set by the runner"),
])
def test_bad_slurm_settings_are_one_line(master_config, cli, slurm_block, said):
    """Checked before anything is submitted, with or without a cluster."""
    path = master_config(execution={"executor": "slurm", "slurm": slurm_block})
    out = cli("--config", str(path), "--dry-run")
    assert out.returncode == 2, out.stderr
    assert said in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"{path.name}:" in out.stderr

"""The Slurm executor on a real single-node Slurm (tests/slurm_cluster.py: munged, slurmctld,
slurmd in a temp folder, on 127.0.0.1): every experiment a job, faults (requeue, time limit,
scancel, Ctrl-C, a SIGKILLed runner) handled as the README's "Slurm" section says."""

from __future__ import annotations

import subprocess

from slurm_cluster import slurm  # noqa: F401 - the session fixture


def test_the_cluster_runs_a_job_on_loopback(slurm, tmp_path):  # noqa: F811
    out = tmp_path / "out.txt"
    subprocess.run(["sbatch", "--wait", "-o", str(out), "--wrap", "echo $SLURM_JOB_ID"],
                   check=True, capture_output=True, timeout=60)
    assert out.read_text().strip().isdigit()
    listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    daemons = [line for line in listening.splitlines() if "slurm" in line]
    assert daemons and all("127.0.0.1:" in line for line in daemons), daemons

"""A Slurm job's side: run the same launcher on the node, as a Ray task does.

The runner submits a batch script that ends in `exec python -m hyperparameter_system.run.slurm_job
FOLDER`; FOLDER (`<run dir>/slurm/`, on the shared filesystem) holds `launch.json`, the Launch
`launcher.plan` made. This module writes `started.json` once the script is up and `outcome.json`
when it has ended; the runner reads both and alone writes the ledger. A requeued run of the job
(`SLURM_RESTART_COUNT` > 0) resumes the run folder's checkpoint (`launcher.resuming`: same W&B run
id). Warned of its time limit (`--signal=B:USR1@signal_s`), the job ends the script and requeues
itself, up to `requeues` times; a SIGTERM (scancel, a requeue, the limit itself) ends the script.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.run import launcher
from hyperparameter_system.run.launcher import Launch
from hyperparameter_system.store.outcomes import Outcome

LAUNCH, STARTED, OUTCOME = "launch.json", "started.json", "outcome.json"
REQUEUE_WAIT_S = 120.0  # after `scontrol requeue`, Slurm ends this run (SIGTERM) long before


def write_launch(folder: Path, launch: Launch, keep_config: bool, requeues: int) -> None:
    """The runner's side: what the job runs, as JSON (a command's inputs, not a pickle)."""
    data = {"launch": dataclasses.asdict(launch), "keep_config": keep_config,
            "requeues": requeues}
    atomic_write_text(folder / LAUNCH, json.dumps(data, default=str), durable=False)


def read_launch(folder: Path) -> tuple[Launch, dict[str, Any]]:
    data = json.loads((folder / LAUNCH).read_text(encoding="utf-8"))
    fields = dict(data.pop("launch"))
    fields["argv"] = tuple(fields["argv"])
    return Launch(**fields), data


def read_outcome(folder: Path) -> Outcome | None:
    """The outcome the job wrote (None: this run of the job wrote none)."""
    try:
        data = json.loads((folder / OUTCOME).read_text(encoding="utf-8"))
        return Outcome(**data)
    except (OSError, ValueError, TypeError):
        return None


def main(argv: list[str]) -> int:
    stop, why = threading.Event(), {}
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    requeues: list[int] = []  # set once launch.json is read; a warning before then waits

    def warned(signum: int, frame: Any) -> None:  # the time limit is near
        if restart < (requeues[0] if requeues else 1):
            why.setdefault("requeue", signum)
            stop.set()

    def ended(signum: int, frame: Any) -> None:  # scancel, a requeue, or the limit itself
        why["term"] = signum
        stop.set()

    signal.signal(signal.SIGUSR1, warned)
    signal.signal(signal.SIGTERM, ended)
    folder = Path(argv[0])
    launch, options = read_launch(folder)
    requeues.append(int(options.get("requeues", 0)))
    job = os.environ.get("SLURM_JOB_ID", "")
    for name in (STARTED, OUTCOME):  # an earlier run's of this job
        (folder / name).unlink(missing_ok=True)
    if restart:
        launch = launcher.resuming(launch, launch.run_dir, launch.wandb_run_id)

    def started(pid: int) -> None:
        info = {"job": job, "restart": restart, "node": socket.gethostname(), "pid": pid,
                "at": time.time(), "resume": launch.resume}
        atomic_write_text(folder / STARTED, json.dumps(info), durable=False)

    outcome = launcher.execute(launch, stop=stop.is_set, on_start=started,
                               keep_config=bool(options.get("keep_config", True)))
    if "requeue" in why and "term" not in why and outcome.status != "done":
        print(f"hpsys: time limit near: requeueing job {job} (restart {restart + 1})",
              flush=True)
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True,
                              check=False)
        if done.returncode == 0:  # Slurm ends this run now (SIGTERM); nothing more to write
            deadline = time.time() + REQUEUE_WAIT_S
            while "term" not in why and time.time() < deadline:
                time.sleep(0.1)
            return 0
        outcome.error = f"requeue failed: {(done.stderr or done.stdout).strip()}"
    outcome.extra.update(slurm_job=job, slurm_restarts=restart)
    atomic_write_text(folder / OUTCOME, json.dumps(dataclasses.asdict(outcome), default=str),
                      durable=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

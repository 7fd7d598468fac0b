"""Run experiments as Slurm jobs: the same launcher, on whichever node Slurm picks.

Each slot keeps one job in flight. A job is a batch script (`<run dir>/slurm/job.sh`) whose last
line runs `run/slurm_job.py` on the node with the Launch `launcher.plan` made; the runner follows
it through `squeue --states=all` (no `sacct`: without slurmdbd it has no data), reads the outcome
the job wrote, and alone writes the ledger. Plain sbatch/squeue/scancel (and scontrol in the job,
to requeue itself), not submitit: submitit pickles a callable into its own job wrapper, requeues
only callables with a `checkpoint` method (never a command), and reads job states from sacct.

Identity: job name `hpsys-<experiment id>`, comment `hpsys:<id>:<ledger hash>`, so a runner
started after a SIGKILLed one finds its jobs again and follows them (`live`), never submitting
an experiment twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.atomic import atomic_write_text, read_json
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.states import Status
from hyperparameter_system.run import devices, launcher, slurm_job
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.launcher import Launch
from hyperparameter_system.run.seams import OnStart
from hyperparameter_system.store.outcomes import Outcome

COMMANDS = ("sbatch", "squeue", "scancel", "scontrol")
LIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED",
                  "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STOPPED",
                  "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
CANCEL_WAIT_S = 30.0  # after our scancel: Slurm's KillWait, then the job leaves the queue
COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Followed:
    """A job the runner follows to its end: the launch it runs (as its launch.json says, when
    adopted), the folder it writes, its Slurm id, when it was submitted (or found), and whether
    a previous runner submitted it (then its wait in the queue is not this runner's)."""

    launch: Launch
    folder: Path
    job: str
    submitted: float
    adopted: bool


@dataclass(frozen=True)
class Job:
    """One job as squeue tells it."""

    id: str
    name: str
    state: str
    exit_code: str = "0:0"
    reason: str = ""
    node: str = ""
    restarts: int = 0
    comment: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE


def job_name(experiment_id: str) -> str:
    return f"hpsys-{experiment_id}"


def comment(experiment_id: str, ledger: str) -> str:
    """Names the ledger too: ids are content hashes, equal in another ledger's matrix."""
    digest = hashlib.sha1(str(Path(ledger).resolve()).encode()).hexdigest()[:10]
    return f"hpsys:{experiment_id}:{digest}"


def _call(*argv: str) -> subprocess.CompletedProcess[str]:
    """A Slurm command in its own session: a Ctrl-C for the runner must not kill it midway."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          check=False, start_new_session=True, stdin=subprocess.DEVNULL)


# squeue's long format: this user's jobs, those ended too (for MinJobAge seconds), one per line
SQUEUE = ("squeue", "--me", "--noheader", "--states=all",
          "--Format=JobID:|,Name:|,State:|,exit_code:|,Reason:|,BatchHost:|,RestartCnt:|,"
          "Comment:|")


def parse_jobs(text: str) -> dict[str, Job]:
    """SQUEUE's output; the exit code as Slurm prints it elsewhere (`code:signal`)."""
    jobs = {}
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) < 8 or not cells[0].strip():
            continue
        job, name, state, status, reason, host, restarts = (c.strip() for c in cells[:7])
        note = "|".join(cells[7:]).rstrip("|").strip()
        code = int(status) if status.isdigit() else 0
        jobs[job] = Job(job, name, state, f"{code >> 8}:{code & 0x7F}", reason,
                        "" if host in ("(null)", "n/a") else host,
                        int(restarts) if restarts.isdigit() else 0,
                        "" if note == "(null)" else note)
    return jobs


class Board:
    """This user's jobs as one `squeue` every `poll_s`, shared by the slots."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s, self.lock = poll_s, threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.read_at = 0.0

    def refresh(self, force: bool = False) -> dict[str, Job]:
        """The jobs as last read; a failed read (slurmctld busy) keeps the previous ones."""
        with self.lock:
            if force or time.time() - self.read_at >= self.poll_s:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    out = _call(*SQUEUE)
                    if out.returncode == 0:
                        self.jobs, self.read_at = parse_jobs(out.stdout), time.time()
            return self.jobs

    def find(self, experiment_id: str, ledger: str) -> Job | None:
        """This experiment's live job (of this ledger), if one is in the queue."""
        name, note = job_name(experiment_id), comment(experiment_id, ledger)
        for job in self.refresh(force=True).values():
            if job.live and job.name == name and job.comment == note:
                return job
        return None


def job_count(settings: Settings) -> int:
    """Jobs kept in flight: slurm.max_jobs, else max_parallel (the queue holds the rest)."""
    execution = settings.execution
    return execution.slurm.max_jobs or execution.max_parallel


def slurm_slots(settings: Settings) -> list[Slot]:
    """One slot per job in flight; no CUDA_VISIBLE_DEVICES: Slurm sets it in the job."""
    _check_commands(settings)
    cpus = sbatch_cpus(settings)
    return [Slot(f"slurm{i}", (), devices.thread_env(cpus)) for i in range(job_count(settings))]


def _check_commands(settings: Settings) -> None:
    lacking = [c for c in COMMANDS if shutil.which(c) is None]
    if lacking:
        raise HpsysError(f"{settings.path}: execution.executor",
                         f"slurm needs {', '.join(lacking)} on PATH (run the runner on a login "
                         "node of the cluster)")


def sbatch_cpus(settings: Settings) -> int:
    """--cpus-per-task: Slurm counts whole CPUs, execution.cpus_per_experiment may not."""
    execution = settings.execution
    return execution.slurm.cpus_per_experiment or max(1, round(execution.cpus_per_experiment))


def sbatch_gpus(settings: Settings) -> int:
    """--gpus: slurm.gpus_per_experiment, else the local executor's own (0 with gpus: none),
    so one config asks for the same GPUs on either executor."""
    execution = settings.execution
    if execution.slurm.gpus_per_experiment is not None:
        return execution.slurm.gpus_per_experiment
    return 0 if execution.gpus == () else execution.gpus_per_experiment


def sbatch_options(settings: Settings) -> list[str]:
    """The resource options every experiment's job gets (--matrix and --dry-run show them);
    the job's identity, log file, --requeue and --signal come on top (`job_script`)."""
    slurm = settings.execution.slurm
    options = [f"--cpus-per-task={sbatch_cpus(settings)}"]
    if sbatch_gpus(settings):
        options.append(f"--gpus={sbatch_gpus(settings)}")
    for key, value in (("partition", slurm.partition), ("account", slurm.account),
                       ("qos", slurm.qos), ("time", slurm.time), ("mem", slurm.mem),
                       ("constraint", slurm.constraint)):
        if value is not None:
            options.append(f"--{key}={value}")
    for key, value in slurm.additional.items():
        options.append(f"--{key}" if value is True else f"--{key}={value}")
    return options


def job_options(settings: Settings, experiment_id: str = "<id>") -> list[str]:
    """Every sbatch option an experiment's job gets but its files (--output, --chdir)."""
    slurm = settings.execution.slurm
    return [f"--job-name={job_name(experiment_id)}", *sbatch_options(settings), "--requeue",
            f"--signal=B:USR1@{slurm.signal_s}"]


def job_script(settings: Settings, launch: Launch, folder: Path) -> str:
    """The batch script: sbatch options, `setup` lines (a failing one ends the job), then the
    launcher on the node under this runner's Python."""
    slurm = settings.execution.slurm
    ledger = launch.env.get("HPSYS_LEDGER", str(settings.system.ledger))
    head = [*job_options(settings, launch.experiment_id),
            f"--comment={comment(launch.experiment_id, ledger)}",
            f"--output={folder / 'slurm-%j.out'}", "--open-mode=append",
            f"--chdir={launch.cwd}"]
    lines = ["#!/bin/bash", *(f"#SBATCH {shlex.quote(o)}" for o in head), "set -e",
             *slurm.setup,
             f"exec {shlex.quote(sys.executable)} -m hyperparameter_system.run.slurm_job "
             f"{shlex.quote(str(folder))}"]
    return "\n".join(lines) + "\n"


def slurm_dispatch(settings: Settings) -> SlurmDispatch:
    """The dispatch for `executor: slurm`; a login node without sbatch is one line here."""
    _check_commands(settings)
    return SlurmDispatch(settings)


class SlurmDispatch:
    """A `Dispatch` that runs one launch as a Slurm job, or follows the live job a previous
    runner left for it (`live` tells the executor not to reap that experiment's processes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slurm = settings.execution.slurm
        self.board = Board(self.slurm.poll_s)
        self.ledger = str(settings.system.ledger)

    def live(self, experiment_id: str) -> bool:
        """A job of this experiment (and ledger) is still queued or running: adopt, not reap."""
        return self.board.find(experiment_id, self.ledger) is not None

    def __call__(self, launch: Launch, slot: Slot, stop: Callable[[], bool],
                 on_start: OnStart) -> Outcome:
        folder = Path(launch.run_dir) / "slurm"
        found = self.board.find(launch.experiment_id, self.ledger)
        submitted = time.time()
        if found is not None:  # adopted: its launch.json says where it writes
            with contextlib.suppress(OSError, ValueError, TypeError):
                launch, _ = slurm_job.read_launch(folder)
            job = found.id
        else:
            if stop():
                return _ended(launch, Status.INTERRUPTED, "interrupted by the user")
            job = self._submit(launch, folder)
        return self._follow(Followed(launch, folder, job, submitted, found is not None), stop,
                            on_start)

    def _submit(self, launch: Launch, folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        for name in (slurm_job.STARTED, slurm_job.OUTCOME):
            (folder / name).unlink(missing_ok=True)
        slurm_job.write_launch(folder, launch, self.settings.system.keep_temp_configs,
                               self.slurm.requeues)
        script = folder / "job.sh"
        atomic_write_text(script, job_script(self.settings, launch, folder), durable=False)
        out = _call("sbatch", "--parsable", str(script))
        if out.returncode != 0:  # what it said, on one line
            said = [line.strip() for line in (out.stderr or out.stdout).splitlines()
                    if line.strip()]
            raise HpsysError(f"{self.settings.path}: execution.slurm",
                             f"sbatch refused the job: {'; '.join(said) or '?'}")
        job = out.stdout.strip().split(";")[0]
        self.board.refresh(force=True)
        return job

    def _follow(self, followed: Followed, stop: Callable[[], bool], on_start: OnStart) -> Outcome:
        launch, folder, job, submitted = (followed.launch, followed.folder, followed.job,
                                          followed.submitted)
        cancelled_at: float | None = None
        seen, launch_started = False, submitted
        while True:
            if stop() and cancelled_at is None:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    _call("scancel", job)
                cancelled_at = time.time()
            info = self.board.refresh(force=cancelled_at is not None).get(job)
            if not seen:
                start = read_json(folder / slurm_job.STARTED)
                if isinstance(start, dict) and str(start.get("job")) == job:
                    seen = True
                    try:  # pid 0: the ledger never reaps by a pid on another host (or reused)
                        on_start(0, str(start.get("node") or ""), job)
                    except BaseException:  # not recorded: it must not run on untracked
                        with contextlib.suppress(OSError, subprocess.SubprocessError):
                            _call("scancel", job)
                        raise
                    launch_started = float(start.get("at") or time.time())
            if info is not None and not info.live:
                outcome = self._outcome(launch, folder, info, cancelled_at is not None)
                if seen and not followed.adopted:
                    outcome.extra["submit_to_start_s"] = round(launch_started - submitted, 3)
                outcome.extra["end_to_runner_s"] = round(time.time() - outcome.finished_at, 3)
                return outcome
            if info is None and self.board.read_at - submitted > 3 * self.slurm.poll_s + 10:
                # a fresh squeue lacks it (MinJobAge passed while nobody looked): what it wrote
                outcome = slurm_job.read_outcome(folder) or _ended(
                    launch, Status.FAILED, f"Slurm job {job} left the queue without an outcome")
                outcome.extra["slurm_job"] = job
                return outcome
            if cancelled_at is not None and time.time() - cancelled_at > CANCEL_WAIT_S:
                return _ended(launch, Status.INTERRUPTED,
                              f"interrupted by the user; Slurm job {job} was still "
                              f"{info.state if info else 'unknown'} {CANCEL_WAIT_S:g} s "
                              "after scancel", job)
            time.sleep(min(0.2, self.slurm.poll_s))

    def _outcome(self, launch: Launch, folder: Path, info: Job, ours: bool) -> Outcome:
        """How a job that left the queue ended: the outcome it wrote, read against the state
        Slurm gives (a cancel, a time limit, an OOM kill win over a half-written story)."""
        written = slurm_job.read_outcome(folder)
        if written is not None and written.extra.get("slurm_restarts") != info.restarts:
            written = None  # an earlier run's (requeued), not the last run's: it wrote none
        outcome = written or _ended(launch, Status.FAILED, "", info.id)
        outcome.extra.update(slurm_job=info.id, slurm_state=info.state,
                             slurm_restarts=info.restarts)
        outcome.node = info.node or outcome.node
        said = f"Slurm job {info.id} {info.state} (exit code {info.exit_code}" + (
            f", {info.reason}" if info.reason not in ("", "None") else "") + ")"
        if outcome.status == Status.DONE:
            return outcome
        if info.state == "CANCELLED":
            outcome.status = Status.INTERRUPTED
            outcome.error = "interrupted by the user" if ours else \
                f"cancelled from outside (scancel): {said}"
        elif info.state in ("TIMEOUT", "DEADLINE"):
            outcome.status = Status.TIMEOUT
            outcome.error = f"Slurm time limit reached: {said}, requeued {info.restarts} time(s)"
        elif info.state == "OUT_OF_MEMORY":
            outcome.status, outcome.oom = Status.FAILED, True
            outcome.error = f"killed for memory (--mem): {said}"
        elif written is None:
            outcome.status = Status.FAILED
            outcome.error = f"{said} before the launcher wrote an outcome (a setup line, the " \
                f"node, or the job's Python); see {folder}"
        if not outcome.log_tail or written is None:
            outcome.log_tail = launcher.tail(folder / f"slurm-{info.id}.out") or outcome.log_tail
        return outcome


def _ended(launch: Launch, status: str, error: str, job: str | None = None) -> Outcome:
    now = time.time()
    outcome = Outcome(launch.experiment_id, status, now, now, error=error or None,
                      config_path=launch.config_path, run_dir=launch.run_dir,
                      log_path=launch.log_path, log_tail=launcher.tail(launch.log_path))
    if job:
        outcome.extra["slurm_job"] = job
    return outcome


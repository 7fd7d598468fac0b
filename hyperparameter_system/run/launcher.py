"""Launch one experiment per the runner -> script contract and tell how it ended.

`plan()` (driver side) turns an experiment into a picklable `Launch`; `execute()` (any node)
writes the temp config, runs the script in its own process group, and reads result.json.
Never through a shell string.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import yaml

from hyperparameter_system.config.settings import PYTHON_ALIASES
from hyperparameter_system.core.atomic import atomic_write_text, read_json
from hyperparameter_system.core.diskspace import free_bytes, free_space
from hyperparameter_system.core.safe_names import safe_name
from hyperparameter_system.core.states import Status
from hyperparameter_system.core.writable import writable_folder
from hyperparameter_system.run import exec_plan, preload, process_group, reaper
from hyperparameter_system.store.outcomes import Outcome

if TYPE_CHECKING:
    from hyperparameter_system.config.settings import Settings
    from hyperparameter_system.matrix.experiments import Experiment

LOG_TAIL_LINES = 40
OOM_PATTERNS = re.compile(r"CUDA out of memory|OutOfMemoryError|HPSYS_OOM", re.IGNORECASE)
EXIT_CONFIG_ERROR = 2  # the script contract: exit 2 is a bad config (retrying cannot help)
# a failed script's log saying its disk is full; the path, when Python's OSError names one
NO_SPACE = re.compile(r"No space left on device|ENOSPC|\[Errno 28\]|database or disk is full")
NO_SPACE_AT = re.compile(r"No space left on device: '(?P<path>[^']+)'")
NEARLY_FULL_BYTES = 32 * 2**20  # a run folder's file system this close to full: the cause


@dataclass(frozen=True)
class Launch:
    """Everything needed to run one attempt, on this machine or a Ray node."""

    experiment_id: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    config_path: str
    config_text: str
    run_dir: str
    timeout: float | None
    wandb_project: str
    wandb_name: str
    wandb_run_id: str
    wandb_mode: str | None
    resume: str | None = None  # HPSYS_RESUME: the checkpoint an interrupted attempt left

    @property
    def log_path(self) -> str:
        return str(Path(self.run_dir) / "train.log")

    def info(self) -> dict[str, Any]:
        """What the ledger records at start."""
        return {"config_path": self.config_path, "run_dir": self.run_dir,
                "log_path": self.log_path, "wandb_project": self.wandb_project,
                "wandb_name": self.wandb_name, "wandb_run_id": self.wandb_run_id,
                "wandb_mode": self.wandb_mode, "node": socket.gethostname()}


def wandb_run_id(experiment_id: str, launch_number: int) -> str:
    """`<id>` for an experiment's first launch, `<id>-<n>` for its n-th: the trainer resumes a
    W&B run of the same id, so a retry or --rerun must not reuse one (online W&B would drop
    its steps up to the old run's last)."""
    return experiment_id if launch_number <= 1 else f"{experiment_id}-{launch_number}"


def plan(experiment: Experiment, settings: Settings, attempt: int,
         env: Mapping[str, str] | None = None, config: Mapping[str, Any] | None = None,
         launch_number: int = 1) -> Launch:
    """The launch of `experiment`'s attempt number `attempt` (1-based, reset by --rerun) and
    its `launch_number` (1-based, never reset: it names the W&B run)."""
    system = settings.system
    stamp = time.strftime("%y%m%d%H%M", time.localtime())
    wandb_name = f"{experiment.run_name}_{stamp}"
    run_id = wandb_run_id(experiment.id, launch_number)
    # the launch's run id in the name: two launches in one minute (a --set change, a retry)
    # never overwrite each other's config
    temp = system.temp_config_dir / f"{experiment.index:03d}_{safe_name(wandb_name)}_{run_id}.yaml"
    run_dir = system.runs_dir / safe_name(experiment.project) / \
        f"{safe_name(experiment.run_name)}_{experiment.id}"
    text = yaml.safe_dump(dict(config or experiment.config), sort_keys=False, allow_unicode=True)
    model = next((m for m in settings.models if m.name == experiment.model), None)
    hydra = hydra_args(temp, run_dir, model.base_config.parent) \
        if model is not None and model.script_args == "hydra" else None
    argv = _argv(experiment.script, temp, hydra)
    full_env = {
        "EXPERIMENT_CONFIG": str(temp),
        "HPSYS_RUN_DIR": str(run_dir),
        "HPSYS_EXPERIMENT_ID": experiment.id,
        "HPSYS_LEDGER": str(system.ledger),  # ids are content hashes: equal in other ledgers
        "HPSYS_ATTEMPT": str(attempt),
        "WANDB_PROJECT": experiment.project,
        "WANDB_NAME": wandb_name,
        "WANDB_RUN_GROUP": experiment.category,
        "WANDB_TAGS": ",".join(_tags(experiment)),
        "WANDB_JOB_TYPE": "baseline" if experiment.category == "baseline" else "experiment",
        "WANDB_RUN_ID": run_id,
        "PYTHONUNBUFFERED": "1",
        **({"WANDB_MODE": system.wandb_mode} if system.wandb_mode else {}),
        **({"WANDB_ENTITY": system.wandb_entity} if system.wandb_entity else {}),
        **(env or {}),
    }
    return Launch(experiment.id, argv, full_env, str(settings.root), str(temp), text,
                  str(run_dir), settings.execution.experiment_timeout, experiment.project,
                  wandb_name, run_id, full_env.get("WANDB_MODE"))


def resuming(launch: Launch, run_dir: str | None, wandb_run_id: str | None) -> Launch:
    """`launch` going on from an interrupted attempt's run folder, when that folder holds a
    resume.json whose checkpoint exists (the script contract: HPSYS_RESUME names it, the W&B run
    id stays the attempt's, so W&B resumes that run); else `launch` as planned."""
    point = read_json(Path(run_dir) / "resume.json") if run_dir else None
    checkpoint = point.get("checkpoint") if isinstance(point, dict) else None
    if not run_dir or not isinstance(checkpoint, str) or not checkpoint:
        return launch
    path = Path(run_dir) / checkpoint  # a relative path is the run folder's
    if not path.is_file():
        return launch
    run_id = wandb_run_id or launch.wandb_run_id
    env = {**launch.env, "HPSYS_RUN_DIR": run_dir, "HPSYS_RESUME": str(path),
           "WANDB_RUN_ID": run_id}
    return dataclasses.replace(launch, env=env, run_dir=run_dir, wandb_run_id=run_id,
                               resume=str(path))


def check_outputs(settings: Settings) -> None:
    """Before a run: every launch writes under system.runs_dir and system.temp_config_dir, so
    one that cannot be written there is one line of bad input, not every experiment failing."""
    for key, folder in (("runs_dir", settings.system.runs_dir),
                        ("temp_config_dir", settings.system.temp_config_dir)):
        writable_folder(f"{settings.path}: system.{key}", folder)


def _tags(experiment: Experiment) -> list[str]:
    tags = [experiment.category, experiment.model]
    return [t.replace(",", "_") for t in tags if t]


def _argv(script: tuple[str, ...], config: Path,
          hydra: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """`.sh` scripts take the config from EXPERIMENT_CONFIG; others get `--config PATH`; a Hydra
    app (`script_args: hydra`, a `.sh` wrapper too: it forwards "$@") gets `hydra`."""
    head, *rest = script
    if head in PYTHON_ALIASES:
        head = sys.executable
    if hydra is not None:
        return (head, *rest, *hydra)
    if script[-1].endswith(".sh") or head.endswith(".sh"):
        return (head, *rest)
    return (head, *rest, "--config", str(config))


def hydra_args(config: Path, run_dir: Path, search: Path) -> tuple[str, ...]:
    """How a Hydra app takes the temp config: as its primary config (`--config-path`,
    `--config-name`), with the run folder as its output folder (no outputs/<date>/<time>/) and
    the base config's folder on its search path (the groups a defaults list names)."""
    return (f"--config-path={config.parent.resolve()}", f"--config-name={config.stem}",
            f"hydra.run.dir={_hydra_quoted(str(run_dir.resolve()))}",
            f"hydra.searchpath=[{_hydra_quoted(search.resolve().as_uri())}]")


def _hydra_quoted(value: str) -> str:
    """A string in Hydra's override grammar, whatever its characters (`=`, `,`, spaces)."""
    return "'" + value.replace("'", "\\'") + "'"


def execute(launch: Launch, stop: Callable[[], bool] = lambda: False,
            on_start: Callable[[int], None] | None = None, keep_config: bool = True,
            server: preload.Server | None = None) -> Outcome:
    """Run one attempt to its end (or its timeout, or `stop()`), never raising for its failure.
    With `server`, a Python script is forked from that preloaded interpreter (run/preload.py)."""
    started = time.time()
    outcome = Outcome(launch.experiment_id, "failed", started, started,
                      config_path=launch.config_path, run_dir=launch.run_dir,
                      log_path=launch.log_path, node=socket.gethostname())
    log = _prepare(launch, outcome)
    if log is None:
        return outcome
    try:  # a preload server's first start (its imports) happens here: not the script's time
        with log:
            proc = _start(launch, log, server)
    except OSError as exc:
        outcome.error, outcome.finished_at = f"cannot start {launch.argv[0]}: {exc}", time.time()
        return outcome
    # the script's own start: the timeout and its duration count from here
    launched = outcome.started_at = time.time()
    if on_start is not None:
        try:
            on_start(proc.pid)
        except BaseException:  # the caller cannot track it: it must not outlive this call
            process_group.kill_group(proc)
            raise
    status = process_group.wait(proc, launch.timeout, stop, launched)
    if status == "exited":
        process_group.end_leftovers(proc.pid)
    outcome.finished_at = time.time()
    if not keep_config:
        Path(launch.config_path).unlink(missing_ok=True)
    _judge(launch, outcome, proc.returncode, status)
    if outcome.status != Status.DONE:
        # what left the process group (a double fork with setsid) is found by its environment;
        # this launch's alone (its run id): a runner that took the row over may be launching it
        reaper.reap(launch.experiment_id, ledger=launch.env.get("HPSYS_LEDGER"),
                    run_id=launch.env.get("WANDB_RUN_ID"))
    return outcome


def _prepare(launch: Launch, outcome: Outcome) -> BinaryIO | None:
    """The run folder, the temp config and the open log; None (told in `outcome`) when one
    cannot be written. A full disk is not the experiment's fault: resumable once space is back."""
    writing = launch.run_dir
    try:
        _fresh_dir(Path(launch.run_dir), resume=launch.resume is not None)
        writing = launch.config_path
        atomic_write_text(Path(launch.config_path), launch.config_text, durable=False)
        writing = launch.log_path
        return open(launch.log_path, "ab")  # noqa: SIM115 - the child writes into it
    except OSError as exc:
        outcome.finished_at = time.time()
        if exc.errno == errno.ENOSPC:
            outcome.status, outcome.disk_full = Status.INTERRUPTED, True
            outcome.error = f"disk full: {writing} ({free_space(writing)} free)"
        else:
            outcome.error = f"cannot prepare the run: {exc}"
        return None


def _start(launch: Launch, log: BinaryIO, server: preload.Server | None) -> Any:
    """The started script: forked from the preload server where it can take it (a shell
    script that says its command offers that command), else the launch's argv, plainly."""
    env = {**os.environ, **launch.env}
    argv, cwd = launch.argv, launch.cwd
    if server is not None and exec_plan.offered(argv, cwd):
        said = exec_plan.plan(argv, cwd, env)
        if said is not None and preload.python_script(said.argv) is not None:
            argv, cwd, env = said.argv, said.cwd, said.env
    forked = server.start(argv, cwd, env, log) if server else None
    if forked:
        return forked
    return subprocess.Popen(process_group.dies_with_runner(launch.argv, launch.cwd),
                            cwd=launch.cwd, env={**os.environ, **launch.env}, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _judge(launch: Launch, outcome: Outcome, returncode: int, status: str) -> None:
    """The attempt's status and reason from its exit, its result.json and its log's tail."""
    outcome.log_tail = tail(launch.log_path)
    outcome.exit_code = returncode if returncode >= 0 else None
    outcome.signal = -returncode if returncode < 0 else None
    outcome.oom = bool(OOM_PATTERNS.search(outcome.log_tail))
    # exit 0 with a result is done, even when it came within the grace of a stop or timeout:
    # calling it interrupted would run it a second time
    result = read_json(Path(launch.run_dir) / "result.json") if returncode == 0 else None
    if result is not None:
        outcome.status, outcome.result = "done", result
    elif status == "timeout":
        outcome.status, outcome.error = "timeout", f"timed out after {launch.timeout:g} s"
    elif status == "interrupted":
        outcome.status, outcome.error = "interrupted", "interrupted by the user"
    elif returncode == EXIT_CONFIG_ERROR:
        outcome.config_error = True
        outcome.error = _config_error(outcome.log_tail)
    elif returncode != 0:
        outcome.error = (process_group.exit_reason(returncode)
                         + (" (out of memory)" if outcome.oom else ""))
    else:
        outcome.error = "exited 0 but wrote no readable result.json"
    if outcome.status == Status.FAILED and not outcome.config_error:
        _mark_disk_full(outcome, launch.run_dir)


def _config_error(log_tail: str) -> str:
    """The script's own one-line reason (its last non-empty log line, e.g. `error: ...`)."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    reason = lines[-1] if lines else "no message in its log"
    return f"{reason} (exit code 2: a config error, not retried)"


def _mark_disk_full(outcome: Outcome, run_dir: str) -> None:
    """A failure for want of space is not the experiment's: when its log says so (ENOSPC) or
    its run folder's file system is (almost) full, it is interrupted (resumable) and marked
    disk_full, with the full path and its free space, so the run stops rather than fail all."""
    said = NO_SPACE.search(outcome.log_tail)
    free = free_bytes(run_dir)
    if outcome.oom or not said and (free is None or free >= NEARLY_FULL_BYTES):
        return
    named = NO_SPACE_AT.search(outcome.log_tail)
    path = named.group("path") if named else run_dir
    outcome.status, outcome.disk_full = Status.INTERRUPTED, True
    outcome.error = f"disk full: {path} ({free_space(path)} free); the script ended with " \
        f"{outcome.error}"


def _fresh_dir(run_dir: Path, resume: bool = False) -> None:
    """A previous attempt's outputs would be mistaken for this one's: move them aside. A resumed
    attempt keeps its progress (metrics.jsonl, train.log, checkpoints) and goes on in it."""
    kept = ("metrics.jsonl", "train.log") if resume else ()
    if run_dir.exists():
        for name in ("result.json", "metrics.jsonl", "train.log", "stop_request.json"):
            if name in kept:
                continue
            old = run_dir / name
            if old.exists():
                old.replace(run_dir / f"{name}.prev")
    run_dir.mkdir(parents=True, exist_ok=True)


def tail(path: str | Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> str:
    """The last lines of a log, read from its end (logs can be large)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])

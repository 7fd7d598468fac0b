"""The executor's guards around one slot's launch, each one policy with its own state, so the
queue (run/executor.py) only asks them: a full disk pauses the queue, a GPU still held after a
run is told once, a failed attempt is retried while execution.retry_failed allows, a CUDA OOM
halves the next launch's batch, and a finished run of a dead runner is kept rather than run
again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hyperparameter_system.core.atomic import read_json
from hyperparameter_system.core.diskspace import free_bytes, nearest_existing
from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.run import devices, launcher, reaper
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.seams import Dispatch
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.store.row import Row


class DiskPause:
    """Below `need_gb` free under `folder` (execution.min_free_gb), the queue waits until space
    returns or the run stops; a pause is said once, whichever slots wait, and so is its end."""

    def __init__(self, need_gb: float, folder: Path, stop: threading.Event,
                 say: Callable[[str], None], poll_s: float) -> None:
        self.need_gb, self.folder, self.stop, self.say = need_gb, folder, stop, say
        self.poll_s = poll_s
        self.paused = False
        self.lock = threading.Lock()

    def wait_for_space(self) -> bool:
        """True once there is room (at once when no minimum is set); False when the run
        stopped while it waited."""
        if self.need_gb <= 0:
            return True
        target = nearest_existing(self.folder)
        while not self.stop.is_set():
            free = free_bytes(target)
            free_gb = free / 1e9 if free is not None else self.need_gb  # unknown: do not pause
            if free_gb >= self.need_gb:
                self._tell(False, f"resumed: {free_gb:.1f} GB free under {target}")
                return True
            self._tell(True, f"paused: {free_gb:.1f} GB free under {target}, below "
                       f"execution.min_free_gb={self.need_gb:g}; waiting for space "
                       "(Ctrl-C to stop)")
            self.stop.wait(self.poll_s)
        return False

    def _tell(self, paused: bool, text: str) -> None:
        """Say `text` when the pause state changes: once per pause, not once per slot."""
        with self.lock:
            changed, self.paused = self.paused != paused, paused
        if changed:
            self.say(text)


class GpuRelease:
    """Before a slot's GPUs take the next experiment: warn (once a run) when the finished one's
    processes still hold their memory, rather than reuse them silently."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.warned = False
        self.lock = threading.Lock()

    def check(self, exp: Experiment, slot: Slot, outcome: Outcome) -> None:
        held = outcome.extra.get("gpus_not_released")  # checked on its node by a Ray task
        if held is None and slot.devices and not devices.wait_released(slot.devices, exp.id):
            held = list(slot.devices)
        if not held:
            return
        with self.lock:
            warned, self.warned = self.warned, True
        if not warned:
            self.say(f"GPU memory on {','.join(map(str, held))} was still held by {exp.id} "
                     "after it ended; the next experiment may run out of memory (not "
                     "reported again in this run)")


class Retries:
    """Attempts per experiment in this invocation (--rerun or a new invocation starts over):
    failed or timed out ones are retried until `max_attempts` (execution.retry_failed), never
    a config error (the script exited 2: the same config fails the same way), never once the
    run is stopping."""

    def __init__(self, max_attempts: int, stop: threading.Event) -> None:
        self.max_attempts, self.stop = max_attempts, stop
        self.tries: dict[str, int] = {}

    def begin(self, exp_id: str) -> int:
        """Count one more attempt of `exp_id`; its number in this invocation."""
        tries = self.tries[exp_id] = self.tries.get(exp_id, 0) + 1
        return tries

    def again(self, outcome: Outcome, tries: int) -> bool:
        return (outcome.status in (Status.FAILED, Status.TIMEOUT) and not outcome.config_error
                and not self.stop.is_set() and tries < self.max_attempts)


def halved_batch(exp: Experiment, batch: int | None, outcome: Outcome,
                 enabled: bool) -> int | None:
    """After a CUDA OOM with execution.retry_oom_halving (`enabled`): the batch size the next
    launch uses, half of this one's; stored in the row, so a runner restart goes on from it."""
    if not (enabled and outcome.oom and outcome.status == Status.FAILED):
        return None
    current = batch or int(exp.config.get("batch_size") or 2)
    return max(1, current // 2)


def recovered(exp: Experiment, before: Row, dispatch: Dispatch, ledger: str) -> Outcome | None:
    """A row its dead runner left `running`: end any process of it still alive, then the
    result it may have finished with (done), so it is never completed twice; None when there
    is none to keep. Work that still runs under the dispatch (a Slurm job) is followed by the
    dispatch, not reaped."""
    live = getattr(dispatch, "live", None)
    if live is not None and live(exp.id):
        return None
    reaper.reap(exp.id, pgid=before.pid, ledger=ledger)
    path = Path(before.run_dir or "") / "result.json"
    result = read_json(path) if before.run_dir else None
    if not result or result.get("experiment_id") != exp.id:
        return None
    with contextlib.suppress(OSError):  # written before that attempt began: --rerun's
        if path.stat().st_mtime < (before.started_at or 0):
            return None
    now = time.time()
    outcome = Outcome(exp.id, Status.DONE, before.started_at or now, now, exit_code=0,
                      result=result, config_path=before.config_path,
                      run_dir=before.run_dir, log_path=before.log_path,
                      log_tail=launcher.tail(before.log_path or ""),
                      error=None, node=before.node)
    duration = result.get("duration_s")
    if isinstance(duration, int | float):
        outcome.started_at = outcome.finished_at - float(duration)
    return outcome

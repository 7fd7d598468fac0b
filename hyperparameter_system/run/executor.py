"""Run a selection of experiments on parallel slots: claim, launch, record, retry.

Each slot is a thread that takes the next experiment as soon as it is free. `dispatch` runs one
launch to its end: locally (`launcher.execute`), as a Ray task (ray_executor) or as a Slurm job
(slurm_executor), so resume, retries, timeouts, Ctrl-C and the display behave the same on all.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.configdict import apply_changes
from hyperparameter_system.core.states import FINAL, Status
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.run import exec_plan, launcher, preload
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.launcher import Launch, Outcome
from hyperparameter_system.run.seams import (
    Dispatch,
    Display,
    ExperimentSource,
    MatrixSource,
    OnStart,
)
from hyperparameter_system.run.signals import signals_held
from hyperparameter_system.run.slot_guards import DiskPause, GpuRelease, halved_batch, recovered
from hyperparameter_system.run.stoppers import NeverStop, Stopper, Watch
from hyperparameter_system.store.claims import runner_identity
from hyperparameter_system.store.ledger import Ledger, LedgerFull
from hyperparameter_system.store.row import Row

DISK_POLL_S = 5.0


def local_dispatch(settings: Settings) -> Dispatch:
    keep = settings.system.keep_temp_configs
    execution = settings.execution
    server = preload.server(execution.preload, str(settings.root)) if execution.preload else None

    def dispatch(launch: Launch, slot: Slot, stop: Callable[[], bool],
                 on_start: OnStart) -> Outcome:
        forked = server is not None and (
            preload.forks(launch.argv, launch.cwd, execution.preload_all)
            or exec_plan.offered(launch.argv, launch.cwd))  # a shell script's python command
        return launcher.execute(launch, stop=stop, on_start=on_start, keep_config=keep,
                                server=server if forked else None)

    return dispatch


@dataclass
class RunResult:
    """What one invocation did."""

    skipped_done: int = 0
    busy_elsewhere: int = 0  # still running under another runner when this one ended
    done_elsewhere: int = 0  # taken by another runner, which has finished them by now
    elsewhere: set[str] = field(default_factory=set, repr=False)  # their ids
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    disk_full: str | None = None  # why the run stopped early for want of space
    messages: list[str] = field(default_factory=list)  # said while no display was attached
    undecided: list[str] = field(default_factory=list)  # a race's pools left open, and why
    over_budget: int = 0  # seeds a race wanted but left for execution.budget

    def count(self, status: str) -> int:
        """Experiments whose last attempt ended so: a retry that succeeded is no failure."""
        last = {o.experiment_id: o.status for o in self.outcomes}
        return sum(1 for s in last.values() if s == status)


class Executor:
    """The queue and its slots. `run()` returns when every selected experiment has ended
    (done, or failed past its retries) or the user stopped it."""

    def __init__(self, settings: Settings, ledger: Ledger, slots: Sequence[Slot],
                 dispatch: Dispatch, display: Display | None = None,
                 stopper: Stopper | None = None) -> None:
        self.settings, self.ledger, self.slots = settings, ledger, list(slots)
        self.dispatch, self.display = dispatch, display
        self.stopper = stopper or NeverStop()
        self.stopper.attach(self._say)
        self.owner = runner_identity()
        self.stop = threading.Event()
        self.stop_reason: str | None = None  # why the runner ended its running experiments
        self.ledger_full: LedgerFull | None = None  # raised by run() once every slot has ended
        self.source: ExperimentSource = MatrixSource(())
        self.lock = threading.Lock()
        self.result = RunResult()
        self.disk = DiskPause(settings.execution.min_free_gb, settings.system.runs_dir,
                              self.stop, self._say, DISK_POLL_S)
        self.gpus = GpuRelease(self._say)
        self.tries: dict[str, int] = {}  # attempts in this invocation: retry_failed bounds them
        self.errors: list[Exception] = []  # raised in a slot thread, re-raised by run()

    # -- the run -------------------------------------------------------------------------
    def run(self, experiments: Sequence[Experiment], rerun: bool = False) -> RunResult:
        self.ledger.sync(experiments)
        if rerun:
            self.ledger.reset(e.id for e in experiments)
        statuses = self.ledger.statuses(e.id for e in experiments)
        todo = [e for e in experiments if statuses.get(e.id) not in FINAL]
        self.result.skipped_done = len(experiments) - len(todo)
        return self.run_source(MatrixSource(todo))

    def run_source(self, source: ExperimentSource) -> RunResult:
        """Run what `source` gives until it has nothing more, on every slot at once."""
        self.source = source
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        # Each slot sets its event when it ends. Not Thread.join: a join that Ctrl-C interrupts
        # can later return while the thread still runs (CPython), and the runner would exit
        # before a slot recorded its stopped experiment.
        ended: list[threading.Event] = []  # those of the slots started
        try:
            for slot in self.slots:
                event = threading.Event()
                threading.Thread(target=self._slot, args=(slot, event), daemon=True,
                                 name=f"slot-{slot.name}").start()
                ended.append(event)
            for event in ended:
                while not event.wait(timeout=0.2):
                    if self.display is not None:
                        self.display.refresh()
        except BaseException as exc:  # Ctrl-C, or the display failing (stdout pipe closed)
            with signals_held():  # a second Ctrl-C would leave rows running
                self.result.interrupted = True
                self.stop.set()
                for event in ended:
                    event.wait()  # each slot ends its process tree first
            if not isinstance(exc, KeyboardInterrupt):
                raise
        finally:
            self.stop.set()
        if self.ledger_full is not None:
            raise LedgerFull(self.ledger_full.path, "the running experiments were ended "
                             "(interrupted); free some space and run the same command to resume")
        if self.errors:
            raise self.errors[0]
        self._settle_elsewhere()
        return self.result

    def _settle_elsewhere(self) -> None:
        """The experiments another runner held: re-read at the end, so the last line says
        which it has finished meanwhile and which it still runs."""
        ids = self.result.elsewhere
        if not ids:
            return
        with contextlib.suppress(Exception):  # a count for the last line, never fatal
            statuses = self.ledger.statuses(ids)
            done = sum(1 for i in ids if statuses.get(i) in FINAL)
            self.result.done_elsewhere, self.result.busy_elsewhere = done, len(ids) - done

    def _heartbeat(self) -> None:
        while not self.stop.wait(self.settings.execution.heartbeat_s):
            try:
                self.ledger.heartbeat(self.owner)
            except LedgerFull as exc:
                self._ledger_is_full(exc)
            except Exception:  # noqa: BLE001 - a missed beat is retried; never kill the run
                pass

    def _slot(self, slot: Slot, ended: threading.Event) -> None:
        """A bug in a slot stops the whole run (children ended, rows released) and is raised
        by run(), rather than silently losing the slot and stranding its experiment."""
        try:
            self._work(slot)
        except LedgerFull as exc:
            self._ledger_is_full(exc)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread
            self.errors.append(exc)
            self.stop.set()
        finally:
            ended.set()

    def _work(self, slot: Slot) -> None:
        execution = self.settings.execution
        while not self.stop.is_set():
            exp = self.source.next()
            if exp is None:
                return
            if not self.disk.wait_for_space():
                self.source.put_back(exp, front=True)
                return
            if not self.source.synced:  # a study's trial: a new ledger row
                self.ledger.sync([exp])
            before = self.ledger.claim(exp.id, self.owner, execution.stale_after_s)
            if before is None:
                with self.lock:
                    self.result.busy_elsewhere += 1
                    self.result.elsewhere.add(exp.id)
                if not self.source.synced:  # a trial just asked that will not run here: told
                    now = time.time()      # so, never left running in its study
                    self.source.told(exp, Outcome(exp.id, Status.FAILED, now, now, error=(
                        "its ledger row is another runner's or already final")))
                continue
            if before.status == Status.RUNNING and self._recover(exp, before):
                continue  # a dead runner's run that had finished: kept, not run again
            tries = self.tries[exp.id] = self.tries.get(exp.id, 0) + 1
            try:
                outcome = self._attempt(exp, slot, before, tries)
            except LedgerFull:
                raise  # the row stays as the ledger let it: interrupted, or running (recovered)
            except Exception as exc:
                self.ledger.release(exp.id, Status.FAILED, f"runner error: {exc!r}", self.owner)
                raise
            if outcome.extra.get("taken_over"):
                continue
            retry = self._will_retry(outcome, tries)
            self.source.told(exp, outcome, final=not retry)
            if outcome.disk_full:
                self._end_all(f"{outcome.error}; the running experiments were ended "
                              "(interrupted); free some space and run the same command to "
                              "resume", f"ended: {outcome.error}")
            if retry:
                self.source.put_back(exp)

    def _will_retry(self, outcome: Outcome, tries: int) -> bool:
        """Failed or timed out with retries left in this invocation (execution.retry_failed);
        never a config error (the script exited 2: the same config fails the same way)."""
        return (outcome.status in (Status.FAILED, Status.TIMEOUT) and not outcome.config_error
                and not self.stop.is_set() and tries < self.settings.execution.max_attempts)

    def _end_all(self, text: str, reason: str) -> None:
        """A full disk: start no new experiment and end those running (as Ctrl-C does), so
        none fails for want of space; the run ends interrupted (resumable). `text` is said once
        whichever slots get here; `reason` becomes the error of the experiments ended."""
        with self.lock:
            first = self.result.disk_full is None
            if first:
                self.result.disk_full, self.stop_reason = text, reason
            self.result.interrupted = True
        self.stop.set()
        if first:
            self._say(text)

    def _ledger_is_full(self, exc: LedgerFull) -> None:
        """The ledger cannot be written: end everything; run() raises it as one line."""
        with self.lock:
            if self.ledger_full is None:
                self.ledger_full, self.stop_reason = exc, f"ended: {exc}"
                self.result.disk_full = str(exc)
            self.result.interrupted = True
        self.stop.set()

    def _hand_back(self, exp_id: str) -> None:
        """Mark a claimed row interrupted where the full ledger still takes the write; else it
        stays `running`, and the next runner recovers it (its owner is gone by then)."""
        with contextlib.suppress(LedgerFull):
            self.ledger.release(exp_id, Status.INTERRUPTED, self.stop_reason, self.owner)

    def _attempt(self, exp: Experiment, slot: Slot, before: Row, tries: int) -> Outcome:
        """One launch of a claimed experiment, at the batch size an earlier OOM left in its
        row (a restarted runner goes on from there, not from the OOM batch)."""
        batch = before.batch_override
        config = apply_changes(exp.config, {"batch_size": batch}) if batch else exp.config
        launch = launcher.plan(exp, self.settings, (before.attempts or 0) + 1, env=slot.env,
                               config=config, launch_number=(before.launches or 0) + 1)
        if before.status in (Status.INTERRUPTED, Status.RUNNING):  # goes on where it stopped
            launch = launcher.resuming(launch, before.run_dir, before.wandb_run_id)
        lost = threading.Event()  # the row was taken over before the script started

        def on_start(pid: int, node: str | None = None, job: str | None = None) -> None:
            # a Ray task or a Slurm job reports the node it landed on; pid 0 on another host
            info = launch.info() if node is None else {**launch.info(), "node": node}
            info["job"] = job
            if not self.ledger.set_started(exp.id, pid, info, self.owner):
                lost.set()
            elif self.display is not None:
                self.display.started(exp, launch.run_dir, slot.name)

        watch = Watch(exp, launch.run_dir, self.stopper, self.settings.execution.stop_grace_s)

        def stop() -> bool:
            return self.stop.is_set() or lost.is_set() or watch.due()

        try:
            outcome = self.dispatch(launch, slot, stop, on_start)
        except LedgerFull:  # recording its start: the script was ended before it ran on
            self._hand_back(exp.id)
            raise
        if outcome.status == Status.INTERRUPTED and self.stop_reason and not outcome.disk_full:
            outcome.error = self.stop_reason  # ended for a full disk, not by the user
        if watch.decision is not None and not self.stop.is_set() and not outcome.disk_full:
            _pruned(outcome, watch)
        self.stopper.ended(exp, outcome.status, watch.rest())
        if batch and outcome.error:
            outcome.error += f" (batch_size {batch})"
        elif batch and outcome.status == Status.DONE:
            outcome.note = f"retried with batch_size {batch} after CUDA OOM"
        halving = self.settings.execution.retry_oom_halving
        self._record(exp, outcome, final=not self._will_retry(outcome, tries),
                     batch_override=halved_batch(exp, batch, outcome, halving))
        self.gpus.check(exp, slot, outcome)
        return outcome

    def _record(self, exp: Experiment, outcome: Outcome, final: bool = True,
                batch_override: int | None = None) -> None:
        """Ledger first (the truth), then the display; `final` is False before a retry. A row
        another runner took over keeps that runner's record: this outcome is only reported."""
        metric = headline(outcome.result, self.settings.system.metric)
        try:
            recorded = self.ledger.finish(exp.id, outcome, metric, self.owner, batch_override)
        except LedgerFull:
            if outcome.status != Status.DONE:  # a done row stays running: recovered as done
                self._hand_back(exp.id)
            raise
        if not recorded:
            outcome.extra["taken_over"] = True
            with self.lock:
                self.result.busy_elsewhere += 1
                self.result.elsewhere.add(exp.id)
            self._say(f"{exp.describe()}: another runner took this experiment over; this "
                      f"runner's attempt ({outcome.status}) is not recorded")
            return
        with self.lock:
            self.result.outcomes.append(outcome)
        if self.display is not None:
            self.display.finished(exp, outcome, final)

    def _recover(self, exp: Experiment, before: Row) -> bool:
        """Record the result a dead runner's row finished with (slot_guards.recovered); True
        when there was one."""
        outcome = recovered(exp, before, self.dispatch, str(self.settings.system.ledger))
        if outcome is not None:
            self._record(exp, outcome)
        return outcome is not None

    def _say(self, text: str) -> None:
        """To the live view, else kept in the result for the caller to show."""
        if self.display is not None:
            self.display.message(text)
        else:
            with self.lock:
                self.result.messages.append(text)


def _pruned(outcome: Outcome, watch: Watch) -> None:
    """An attempt a stopper asked to stop: pruned, whether the script honoured the request
    (exit 0, result status pruned) or was ended after the grace period; a script that
    finished anyway keeps its result. A failure of its own stays a failure."""
    decision = watch.decision
    assert decision is not None
    result = outcome.result or {}
    stopped = outcome.status == Status.INTERRUPTED or result.get("status") == Status.PRUNED
    if not stopped:
        return
    outcome.status = Status.PRUNED
    outcome.error = None
    epoch = result.get("metrics", {}).get("epochs_run") if result else None
    epoch = epoch if isinstance(epoch, int) else watch.last_epoch
    outcome.extra["pruned_epoch"] = epoch
    # the epoch it was recorded at is the one it stopped after: said when it ran on past the
    # decision's (the request is read at an epoch's end)
    later = isinstance(epoch, int) and decision.epoch is not None and epoch > decision.epoch
    outcome.note = decision.detail + (f"; stopped after epoch {epoch}" if later else "")

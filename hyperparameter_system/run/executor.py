"""Run a selection of experiments on parallel slots: claim, launch, record, retry.

Each slot is a thread that takes the next experiment as soon as it is free. `dispatch` runs one
launch to its end: locally (`launcher.execute`), as a Ray task (ray_executor) or as a Slurm job
(slurm_executor), so resume, retries, timeouts, Ctrl-C and the display behave the same on all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.configdict import apply_changes
from hyperparameter_system.core.states import FINAL, Status
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.run import exec_plan, launcher, preload
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.halt import Halt
from hyperparameter_system.run.launcher import Launch
from hyperparameter_system.run.recorder import Recorder
from hyperparameter_system.run.seams import (
    Dispatch,
    Display,
    ExperimentSource,
    MatrixSource,
    OnStart,
)
from hyperparameter_system.run.signals import signals_held
from hyperparameter_system.run.slot_guards import DiskPause, GpuRelease, Retries, halved_batch
from hyperparameter_system.run.stoppers import NeverStop, Stopper, Watch
from hyperparameter_system.run.tally import RunResult, Tally
from hyperparameter_system.store.claims import runner_identity
from hyperparameter_system.store.ledger import Ledger, LedgerFull
from hyperparameter_system.store.outcomes import Outcome
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


class Executor:
    """The queue and its slots. `run()` returns when every selected experiment has ended
    (done, or failed past its retries) or the user stopped it. It decides what a slot does
    next; the guards (slot_guards), the tally, the halt and the recorder act on it."""

    def __init__(self, settings: Settings, ledger: Ledger, slots: Sequence[Slot],
                 dispatch: Dispatch, display: Display | None = None,
                 stopper: Stopper | None = None) -> None:
        self.settings, self.ledger, self.slots = settings, ledger, list(slots)
        self.dispatch = dispatch
        self.result = RunResult()
        self.tally = Tally(self.result, display)
        self.halt = Halt(self.tally)
        self.stop = self.halt.event  # what a source that decides the next experiment watches
        self.stopper = stopper or NeverStop()
        self.stopper.attach(self.tally.say)
        self.owner = runner_identity()
        self.recorder = Recorder(ledger, self.owner, settings.system.metric, self.tally,
                                 self.halt)
        self.source: ExperimentSource = MatrixSource(())
        self.disk = DiskPause(settings.execution.min_free_gb, settings.system.runs_dir,
                              self.stop, self.tally.say, DISK_POLL_S)
        self.gpus = GpuRelease(self.tally.say)
        self.retries = Retries(settings.execution.max_attempts, self.stop)
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
                    self.tally.refresh()
        except BaseException as exc:  # Ctrl-C, or the display failing (stdout pipe closed)
            with signals_held():  # a second Ctrl-C would leave rows running
                self.halt.interrupt()
                for event in ended:
                    event.wait()  # each slot ends its process tree first
            if not isinstance(exc, KeyboardInterrupt):
                raise
        finally:
            self.stop.set()
        self.halt.raise_ledger_full()
        if self.errors:
            raise self.errors[0]
        self.tally.settle_elsewhere(self.ledger)
        return self.result

    def _heartbeat(self) -> None:
        while not self.stop.wait(self.settings.execution.heartbeat_s):
            try:
                self.ledger.heartbeat(self.owner)
            except LedgerFull as exc:
                self.halt.for_ledger(exc)
            except Exception:  # noqa: BLE001 - a missed beat is retried; never kill the run
                pass

    def _slot(self, slot: Slot, ended: threading.Event) -> None:
        """A bug in a slot stops the whole run (children ended, rows released) and is raised
        by run(), rather than silently losing the slot and stranding its experiment."""
        try:
            self._work(slot)
        except LedgerFull as exc:
            self.halt.for_ledger(exc)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread
            self.errors.append(exc)
            self.stop.set()
        finally:
            ended.set()

    def _work(self, slot: Slot) -> None:
        while not self.stop.is_set():
            exp = self.source.next()
            if exp is None:
                return
            if not self.disk.wait_for_space():
                self.source.put_back(exp, front=True)
                return
            before = self._claim(exp)
            if before is None:
                continue
            if before.status == Status.RUNNING and self.recorder.recover(
                    exp, before, self.dispatch, str(self.settings.system.ledger)):
                continue  # a dead runner's run that had finished: kept, not run again
            tries = self.retries.begin(exp.id)
            try:
                outcome = self._attempt(exp, slot, before, tries)
            except LedgerFull:
                raise  # the row stays as the ledger let it: interrupted, or running (recovered)
            except Exception as exc:
                self.ledger.release(exp.id, Status.FAILED, f"runner error: {exc!r}", self.owner)
                raise
            if not outcome.extra.get("taken_over"):
                self._after(exp, outcome, tries)

    def _claim(self, exp: Experiment) -> Row | None:
        """Its ledger row, taken for this runner; None when another runner holds it or it is
        final already (a study's trial that will not run here is told so, never left
        running in its study)."""
        if not self.source.synced:  # a study's trial: a new ledger row
            self.ledger.sync([exp])
        before = self.ledger.claim(exp.id, self.owner, self.settings.execution.stale_after_s)
        if before is None:
            self.tally.elsewhere(exp.id)
            if not self.source.synced:
                now = time.time()
                self.source.told(exp, Outcome(exp.id, Status.FAILED, now, now, error=(
                    "its ledger row is another runner's or already final")))
        return before

    def _after(self, exp: Experiment, outcome: Outcome, tries: int) -> None:
        """Tell the source how the attempt ended, then queue its retry or, when it found the
        disk full, end the run."""
        retry = self.retries.again(outcome, tries)
        self.source.told(exp, outcome, final=not retry)
        if outcome.disk_full:
            self.halt.for_disk(f"{outcome.error}; the running experiments were ended "
                               "(interrupted); free some space and run the same command to "
                               "resume", f"ended: {outcome.error}")
        if retry:
            self.source.put_back(exp)

    def _attempt(self, exp: Experiment, slot: Slot, before: Row, tries: int) -> Outcome:
        """One launch of a claimed experiment, at the batch size an earlier OOM left in its
        row (a restarted runner goes on from there, not from the OOM batch)."""
        batch = before.batch_override
        launch = self._launch(exp, slot, before)
        lost = threading.Event()  # the row was taken over before the script started

        def on_start(pid: int, node: str | None = None, job: str | None = None) -> None:
            # a Ray task or a Slurm job reports the node it landed on; pid 0 on another host
            info = launch.info() if node is None else {**launch.info(), "node": node}
            info["job"] = job
            if not self.ledger.set_started(exp.id, pid, info, self.owner):
                lost.set()
            else:
                self.tally.started(exp, launch.run_dir, slot.name)

        watch = Watch(exp, launch.run_dir, self.stopper, self.settings.execution.stop_grace_s)

        def stop() -> bool:
            return self.stop.is_set() or lost.is_set() or watch.due()

        try:
            outcome = self.dispatch(launch, slot, stop, on_start)
        except LedgerFull:  # recording its start: the script was ended before it ran on
            self.recorder.hand_back(exp.id)
            raise
        _why_it_ended(outcome, watch, self.halt)
        self.stopper.ended(exp, outcome.status, watch.rest())
        _batch_note(outcome, batch)
        halving = self.settings.execution.retry_oom_halving
        self.recorder.record(exp, outcome, final=not self.retries.again(outcome, tries),
                             batch_override=halved_batch(exp, batch, outcome, halving))
        self.gpus.check(exp, slot, outcome)
        return outcome

    def _launch(self, exp: Experiment, slot: Slot, before: Row) -> Launch:
        """The next launch of a claimed experiment: at the batch an OOM left in its row, going
        on where an interrupted attempt stopped."""
        batch = before.batch_override
        config = apply_changes(exp.config, {"batch_size": batch}) if batch else exp.config
        launch = launcher.plan(exp, self.settings, (before.attempts or 0) + 1, env=slot.env,
                               config=config, launch_number=(before.launches or 0) + 1)
        if before.status in (Status.INTERRUPTED, Status.RUNNING):  # goes on where it stopped
            launch = launcher.resuming(launch, before.run_dir, before.wandb_run_id)
        return launch


def _why_it_ended(outcome: Outcome, watch: Watch, halt: Halt) -> None:
    """An attempt the runner ended says why (a full disk or ledger, not the user), and one a
    stopper asked to stop is pruned."""
    if outcome.status == Status.INTERRUPTED and halt.reason and not outcome.disk_full:
        outcome.error = halt.reason  # ended for a full disk, not by the user
    if watch.decision is not None and not halt.event.is_set() and not outcome.disk_full:
        _pruned(outcome, watch)


def _batch_note(outcome: Outcome, batch: int | None) -> None:
    """An attempt at a batch an OOM halved says so, failed or done."""
    if batch and outcome.error:
        outcome.error += f" (batch_size {batch})"
    elif batch and outcome.status == Status.DONE:
        outcome.note = f"retried with batch_size {batch} after CUDA OOM"


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

"""What the executor talks to, each a small protocol: where the slots take experiments from
(`ExperimentSource`: the fixed matrix, `MatrixSource`, or a study's ask/tell), how one launch
runs (`Dispatch`: locally, as a Ray task or as a Slurm job; a dispatch whose work outlives the
runner says so with `Adopting`), who learns a started script's pid (`OnStart`), and
what shows the run as it goes (`Display`). The executor owns the queue; these are its seams."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.launcher import Launch
from hyperparameter_system.store.outcomes import Outcome


class OnStart(Protocol):
    """Told when the script is up: its pid, the node a Ray task or a Slurm job landed on, and
    a scheduler's job id (the local launcher gives the pid alone)."""

    def __call__(self, pid: int, node: str | None = None, job: str | None = None) -> None: ...


Dispatch = Callable[[Launch, Slot, Callable[[], bool], OnStart], Outcome]


class Adopting(Protocol):
    """A dispatch whose work outlives a killed runner (a Slurm job): `live(id)` is True while
    that experiment's work still runs, and a call of the dispatch then follows it instead of
    launching again, so the executor must not reap the experiment's processes."""

    def live(self, experiment_id: str) -> bool: ...


class ExperimentSource(Protocol):
    """Where the slots take their experiments from: the fixed matrix (MatrixSource), or a study
    that proposes the next trial when a slot frees (ask/tell). Called under no lock: a source
    shared by slot threads guards itself. `synced`: its experiments are in the ledger already
    (the matrix is synced at start; a study's trials are added as they are asked)."""

    synced: bool

    def next(self) -> Experiment | None:
        """The next experiment to run, or None when there is none (the slot then ends)."""

    def put_back(self, experiment: Experiment, front: bool = False) -> None:
        """Run it again later (a retry), or first (the slot paused before launching it)."""

    def told(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None:
        """How an attempt ended; `final` is False when it will be retried."""


class MatrixSource:
    """The selected experiments, in order, each retried at the back of the queue."""

    synced = True

    def __init__(self, experiments: Sequence[Experiment]) -> None:
        self.queue, self.lock = deque(experiments), threading.Lock()

    def next(self) -> Experiment | None:
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def put_back(self, experiment: Experiment, front: bool = False) -> None:
        with self.lock:
            (self.queue.appendleft if front else self.queue.append)(experiment)

    def told(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None:
        return None


class Display(Protocol):
    """What the executor tells a live view (console.RunDisplay) as experiments go."""

    def started(self, experiment: Experiment, run_dir: str, slot: str) -> None: ...

    def finished(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None: ...

    def refresh(self) -> None: ...

    def message(self, text: str) -> None: ...

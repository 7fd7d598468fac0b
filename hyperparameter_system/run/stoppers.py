"""The stopper seam: a policy that watches a running experiment's metrics and may answer stop.

As Ray Tune's schedulers answer CONTINUE or STOP to each result, a `Stopper` only decides; the
executor does the stopping: it writes `$HPSYS_RUN_DIR/stop_request.json` for the script to stop
gracefully at its next epoch end (saving its checkpoint, status `pruned`), and after
`execution.stop_grace_s` ends the process group as a timeout does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.matrix.experiments import Experiment

STOP_REQUEST = "stop_request.json"
METRICS = "metrics.jsonl"
POLL_S = 0.1  # how often a running experiment's metrics file is read (as the launcher polls)


@dataclass(frozen=True)
class StopDecision:
    """Why an experiment should stop: `reason` (e.g. "pruned"), at which epoch, in words."""

    reason: str
    epoch: int | None
    detail: str

    def as_request(self) -> dict[str, Any]:
        return {"reason": self.reason, "epoch": self.epoch, "detail": self.detail}


Say = Callable[[str], None]  # the executor's message line (the live view, else the result)


class Stopper(Protocol):
    """Sees each new metrics line of each running experiment; None means go on."""

    def attach(self, say: Say) -> None:
        """Given the executor's message line once, when the executor is made."""

    def observe(self, experiment: Experiment, line: Mapping[str, Any]) -> StopDecision | None:
        ...

    def ended(self, experiment: Experiment, status: str,
              rest: Sequence[Mapping[str, Any]] = ()) -> None:
        """Told once an experiment's attempt has ended (its final status in the ledger), with
        the metrics lines written after the watch's last read (`rest`: the script exited in
        between)."""


class NeverStop:
    """The default: every experiment runs to its end."""

    def attach(self, say: Say) -> None:
        return None

    def observe(self, experiment: Experiment, line: Mapping[str, Any]) -> StopDecision | None:
        return None

    def ended(self, experiment: Experiment, status: str,
              rest: Sequence[Mapping[str, Any]] = ()) -> None:
        return None


def monitored(line: Mapping[str, Any], key: str) -> tuple[int, float] | None:
    """(epoch, value) of a metrics line's `key`, or None: the one reading every stopper shares.
    A bool is no number (JSON true is not 1.0 here) and NaN is no value a pruner can rank."""
    epoch, value = line.get("epoch"), line.get(key)
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return None
    return epoch, float(value)


class MetricsTail:
    """The complete lines appended to a metrics.jsonl since the last read (a half-written
    last line waits for its newline)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def new_lines(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        self.offset += len(chunk)
        *complete, self.partial = (self.partial + chunk).split(b"\n")
        out = []
        for raw in complete:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a line the script garbled is skipped, never fatal
            if isinstance(line, dict):
                out.append(line)
        return out


class Watch:
    """One attempt under a stopper: polled by the launcher's `stop()`; True once the script had
    its grace period after a stop request (then the launcher ends its process group)."""

    def __init__(self, experiment: Experiment, run_dir: str, stopper: Stopper,
                 grace_s: float) -> None:
        self.experiment, self.stopper, self.grace_s = experiment, stopper, grace_s
        self.run_dir = Path(run_dir)
        self.tail = MetricsTail(self.run_dir / METRICS)
        self.decision: StopDecision | None = None
        self.requested_at: float | None = None
        self.last_epoch: int | None = None
        self.next_poll = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if self.decision is None and now >= self.next_poll:
            self.next_poll = now + POLL_S
            for line in self.tail.new_lines():
                if isinstance(line.get("epoch"), int):
                    self.last_epoch = line["epoch"]
                decision = self.stopper.observe(self.experiment, line)
                if decision is not None:
                    self._request(decision)
                    break
        return self.requested_at is not None and now - self.requested_at >= self.grace_s

    def rest(self) -> list[dict[str, Any]]:
        """The lines written since the last read: those the script wrote before it exited."""
        return self.tail.new_lines()

    def _request(self, decision: StopDecision) -> None:
        self.decision, self.requested_at = decision, time.monotonic()
        try:
            atomic_write_text(self.run_dir / STOP_REQUEST, json.dumps(decision.as_request()))
        except OSError:
            self.requested_at = time.monotonic() - self.grace_s  # cannot ask: end it now

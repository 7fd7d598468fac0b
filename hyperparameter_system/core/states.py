"""The states an experiment goes through and which way a metric improves.

Both are `StrEnum`s: their values are the strings the ledger has always stored, so old ledgers
load unchanged and a member compares equal to its string.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An experiment's state in the ledger."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    PRUNED = "pruned"  # stopped early by a pruner: final like done, never retried, never a winner
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


FINAL = frozenset({Status.DONE, Status.PRUNED})  # a run of the same selection skips these
STOPPED = frozenset({Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED})  # rerun by default
UNFINISHED = frozenset({Status.PENDING, Status.RUNNING, Status.INTERRUPTED})  # a metric may come


class Direction(StrEnum):
    """`system.metric_mode`: whether a larger or a smaller metric is better."""

    MAX = "max"
    MIN = "min"

    def score(self, value: float) -> float:
        """Larger is better, whichever the direction."""
        return value if self is Direction.MAX else -value

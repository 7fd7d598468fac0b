"""How weak options and trials are stopped early: `execution.pruning`, and a search's `pruner`."""

from __future__ import annotations

from dataclasses import dataclass

from hyperparameter_system.config.reader import Reader
from hyperparameter_system.core.errors import HpsysError, close_match
from hyperparameter_system.core.states import Direction

PRUNING_RULES = ("none", "successive_halving", "median", "hyperband", "patient")
# The per-epoch keys of the contract's metrics line, each in the direction that is better: the
# monitored key's own, never system.metric_mode (a headline val_loss does not turn val_f1 over).
MONITORED = {"val_f1": Direction.MAX, "val_acc": Direction.MAX, "val_loss": Direction.MIN,
             "train_loss": Direction.MIN}


@dataclass(frozen=True)
class PruningSettings:
    """`execution.pruning`: stop a category's weak options early (off unless a rule is named)."""

    rule: str = "none"
    min_epochs: int = 2  # no option is pruned before this epoch
    reduction_factor: int = 3  # successive halving / hyperband keep the top 1/reduction_factor
    monitor: str = "val_f1"  # the metrics.jsonl key compared, per epoch
    mode: Direction | None = None  # the monitor's direction when it is none of MONITORED

    @property
    def on(self) -> bool:
        return self.rule != "none"

    @property
    def direction(self) -> Direction:
        """Whether a larger or a smaller monitored value is better (the pruner's comparison)."""
        return self.mode or MONITORED.get(self.monitor, Direction.MAX)


PRUNING_KEYS = {"rule": (str,), "min_epochs": (int,), "reduction_factor": (int,),
                "monitor": (str,), "mode": (str,)}


def read_pruning(reader: Reader) -> PruningSettings:
    monitor = reader.get("monitor", "val_f1")
    mode = reader.choice("mode", None, (None, *Direction))
    if monitor not in MONITORED and mode is None:
        # a key the contract's line does not hold is most likely a typo: its direction unknown
        raise HpsysError(reader.where("monitor"), f"expected a key of the metrics line "
                         f"({', '.join(MONITORED)}){close_match(monitor, MONITORED)}, or give "
                         "mode: max|min for a key the script adds")
    return PruningSettings(
        rule=reader.choice("rule", "none", PRUNING_RULES),
        min_epochs=reader.number("min_epochs", 2, 1),
        reduction_factor=reader.number("reduction_factor", 3, 2),
        monitor=monitor,
        mode=Direction(mode) if mode is not None else None,
    )

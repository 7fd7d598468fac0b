"""How weak options and trials are stopped early: `execution.pruning`, and a search's `pruner`."""

from __future__ import annotations

from dataclasses import dataclass

from hyperparameter_system.config.reader import Reader

PRUNING_RULES = ("none", "successive_halving", "median", "hyperband", "patient")


@dataclass(frozen=True)
class PruningSettings:
    """`execution.pruning`: stop a category's weak options early (off unless a rule is named)."""

    rule: str = "none"
    min_epochs: int = 2  # no option is pruned before this epoch
    reduction_factor: int = 3  # successive halving / hyperband keep the top 1/reduction_factor
    monitor: str = "val_f1"  # the metrics.jsonl key compared, per epoch

    @property
    def on(self) -> bool:
        return self.rule != "none"


PRUNING_KEYS = {"rule": (str,), "min_epochs": (int,), "reduction_factor": (int,),
                "monitor": (str,)}


def read_pruning(reader: Reader) -> PruningSettings:
    return PruningSettings(
        rule=reader.choice("rule", "none", PRUNING_RULES),
        min_epochs=reader.number("min_epochs", 2, 1),
        reduction_factor=reader.number("reduction_factor", 3, 2),
        monitor=reader.get("monitor", "val_f1"),
    )

"""A grid search: the points of each searched key, and Optuna's grid sampler stopped by the
search at the grid's size rather than by `study.stop()`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperparameter_system.config.search_blocks import Param


def grid_values(param: Param) -> tuple[Any, ...]:
    """The points of one key: its choices, or its range by `step` (int ranges by 1, float
    ranges without a step in 4 equal parts)."""
    if param.kind == "categorical":
        return param.choices
    step = param.step or (1 if param.kind == "int" else (param.high - param.low) / 4)
    count = int(round((param.high - param.low) / step)) + 1
    return tuple(param.low + i * step for i in range(count))


def grid_points(space: dict[str, Sequence[Any]]) -> int:
    return math.prod(len(values) for values in space.values())


class GridToItsSize(optuna.samplers.GridSampler):
    """Optuna's grid, less its `after_trial`.

    That only calls `study.stop()` once the grid is used up, which raises outside
    `optimize()` ("Study.stop is supposed to be invoked inside..."): a search asks trial by
    trial, so it stops at the grid's size instead (`samplers.grid_size`). Trial k of the study
    takes point k of the grid as the seed shuffled it, which every worker shares.
    """

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: Sequence[float] | None) -> None:
        return None

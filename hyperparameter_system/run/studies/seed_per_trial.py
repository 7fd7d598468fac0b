"""A sampler seeded per trial, so that a seed never replays the settings a study holds."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number` of a search seeded `seed`: distinct per trial, in numpy's
    range (0 to 2**32-1), the same on every machine."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class SeedPerTrial(optuna.samplers.BaseSampler):
    """Each trial's settings come from a fresh sampler seeded by `trial_seed(seed, number)`,
    over the study's whole history.

    One seed for a whole sampler makes every new instance repeat the first: a search run
    again with more trials, rerun after a SIGKILL, or joined by a second runner on a shared
    study would propose the settings it already holds (each repeat a finished trial that
    explored nothing). Trial numbers are unique in a study, so the seeds are too; from an empty
    study the same seed still gives the same trials.

    Example:
        sampler = SeedPerTrial(lambda s: optuna.samplers.TPESampler(seed=s), seed=5)
        study = optuna.create_study(sampler=sampler)

    Args:
        build: a sampler for one trial, given its seed.
        seed: the search's `seed`.
    """

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self.build, self.seed = build, seed
        self.lock = threading.Lock()
        self.by_number: dict[int, optuna.samplers.BaseSampler] = {}

    def _of(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        with self.lock:
            inner = self.by_number.get(trial.number)
            if inner is None:
                inner = self.build(trial_seed(self.seed, trial.number))
                self.by_number[trial.number] = inner
            return inner

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._of(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: Sequence[float] | None) -> None:
        inner = self._of(trial)
        with self.lock:
            self.by_number.pop(trial.number, None)
        inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing: the seeds come from the trial numbers."""

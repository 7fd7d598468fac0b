"""The pruning rules (`execution.pruning.rule`, a search's `pruner.rule`) as Optuna's pruners."""

from __future__ import annotations

import warnings

import optuna

from hyperparameter_system.config.pruning import PruningSettings


def make_pruner(rules: PruningSettings) -> optuna.pruners.BasePruner:
    """A fresh Optuna pruner for one study (Hyperband keeps per-study state).

    `successive_halving` and `hyperband` keep the top 1/`reduction_factor` at each rung from
    `min_epochs` on; `median` stops a run whose best so far is behind the median of the
    finished runs at the same epoch, from `min_epochs` on (one finished run, such as a
    category's baseline, is reference enough in a small pool); `patient` is the median rule
    once a run has not improved for `min_epochs` epochs.

    Example:
        pruner = make_pruner(PruningSettings(rule="successive_halving", min_epochs=2))
    """
    low = rules.min_epochs
    median = dict(n_startup_trials=1, n_warmup_steps=max(0, low - 1), interval_steps=1)
    if rules.rule == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=low,
                                                      reduction_factor=rules.reduction_factor)
    if rules.rule == "median":
        return optuna.pruners.MedianPruner(**median)
    if rules.rule == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource="auto",
                                              reduction_factor=rules.reduction_factor)
    if rules.rule == "patient":
        with warnings.catch_warnings():  # PatientPruner is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**median),
                                                patience=low)
    raise ValueError(f"no pruner for rule {rules.rule!r}")

"""Why a trial was pruned, in words, read from what Optuna decided rather than guessed again."""

from __future__ import annotations

import math
import statistics

import optuna
from optuna.trial import TrialState

from hyperparameter_system.config.pruning import PruningSettings
from hyperparameter_system.core.states import Direction

RUNG = "completed_rung_"  # the trial system attr Optuna's successive halving writes per rung


def why_pruned(study: optuna.Study, number: int, rules: PruningSettings, epoch: int,
               value: float) -> str:
    """`epoch 2: val_f1 0.61 below the pool's top 1/3 at rung 0 (0.72)`: the cutoff the pruner
    compared with, after `should_prune()` said yes.

    Successive halving records each trial's value at each rung it completes (a system attr of
    the trial); the cutoff is the competitor's value at the rank Optuna promotes, taken the way
    `_is_trial_promotable_to_next_rung` takes it. The median rules compare the trial's best so
    far with the median of the finished trials at that epoch. Hyperband splits the pool into
    brackets Optuna does not name, so its line says the rule alone.

    Args:
        study: the pool's or the search's study, after the decision.
        number: the pruned trial's number.
        rules: the pruning settings (rule, reduction_factor, monitor, direction).
        epoch: the epoch decided at.
        value: the monitored value reported at that epoch.
    """
    head = f"epoch {epoch}: {rules.monitor} {value:.4g}"
    if math.isnan(value):
        return f"{head}, not a number"
    trials = study.get_trials(deepcopy=False)
    mine = next((t for t in trials if t.number == number), None)
    worse = "below" if rules.direction is Direction.MAX else "above"
    if mine is None:
        return f"{head}, pruned by {rules.rule}"
    if rules.rule == "successive_halving":
        rungs = sorted(int(k[len(RUNG):]) for k in mine.system_attrs if k.startswith(RUNG))
        if rungs:
            cutoff = _rung_cutoff(trials, rungs[-1], rules)
            if cutoff is not None:
                return (f"{head} {worse} the pool's top 1/{rules.reduction_factor} at rung "
                        f"{rungs[-1]} ({cutoff:.4g})")
    if rules.rule in ("median", "patient"):
        done = [t.intermediate_values[epoch] for t in trials
                if t.state == TrialState.COMPLETE and epoch in t.intermediate_values
                and not math.isnan(t.intermediate_values[epoch])]
        reported = [v for v in mine.intermediate_values.values() if not math.isnan(v)]
        if done and reported:
            best = max(reported, key=rules.direction.score)
            return (f"epoch {epoch}: {rules.monitor} best so far {best:.4g} {worse} the median "
                    f"of the finished runs at epoch {epoch} ({statistics.median(done):.4g})"
                    + (f", no better for {rules.min_epochs} epochs"
                       if rules.rule == "patient" else ""))
    return f"{head}, pruned by {rules.rule}"


def _rung_cutoff(trials: list[optuna.trial.FrozenTrial], rung: int,
                 rules: PruningSettings) -> float | None:
    key = f"{RUNG}{rung}"
    competing = sorted(float(t.system_attrs[key]) for t in trials if key in t.system_attrs)
    if not competing:
        return None
    index = max(0, len(competing) // rules.reduction_factor - 1)
    return competing[-(index + 1)] if rules.direction is Direction.MAX else competing[index]

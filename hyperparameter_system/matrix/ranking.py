"""Which option is better, by how much, and whether beyond noise: the rules the summary (and
whatever else compares options: pruning, search) shares, as plain functions over numbers.

Noise: with `execution.repeats: N` an option's runs are pooled into a mean and a sample
standard deviation. A delta is *not significant* when |delta| <= 2 * sqrt(s_a^2/n_a + s_b^2/n_b)
(two combined standard errors, about a 95% band); a side with a single run borrows the other
side's deviation. With one run on both sides the noise is unknown and nothing is marked.

The winner of a category beats every other option strictly AND the baseline (beyond noise
when the noise is known); the best option that does not beat the baseline is only the best.
A NaN metric (a diverged run) is a value no option wins with: it ranks after every number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hyperparameter_system.core.configdict import get_dotted
from hyperparameter_system.core.states import Direction

SIGMAS = 2.0
WINNER, TIE, LEADING = "winner", "tie", "leading"
# the best option(s) of a category when none beats the baseline: no winner
BELOW, LEVEL, WITHIN_NOISE = ("best, below baseline", "best, level with baseline",
                              "best, within noise of baseline")
NOT_BEATING = (BELOW, LEVEL, WITHIN_NOISE)
PRUNED = "pruned, never a winner"  # stopped early: ranked by its last metric, never crowned


class Sample(Protocol):
    """The runs of one option: their mean, sample standard deviation and count."""

    @property
    def mean(self) -> float | None: ...

    @property
    def std(self) -> float | None: ...

    @property
    def n(self) -> int: ...


@dataclass(frozen=True)
class Point:
    """A single value as a Sample (one run, noise unknown)."""

    mean: float | None
    std: float | None = None
    n: int = 1


def is_number(value: float | None) -> bool:
    """A metric an option can be ranked by: present and not NaN."""
    return value is not None and not math.isnan(value)


def headline(result: Mapping[str, Any] | None, metric: str) -> float | None:
    """The headline metric (a dotted key of result.json) as a float, if present."""
    value = get_dotted(result or {}, metric, None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def score(value: float, mode: str) -> float:
    """Larger is better, whatever metric_mode says."""
    return Direction(mode).score(value)


def noise_test(a: Sample, b: Sample) -> tuple[float | None, bool | None]:
    """(a.mean - b.mean, significant) by the module's 2-standard-error rule; a NaN side
    gives a NaN delta whose significance is unknown."""
    if a.mean is None or b.mean is None:
        return None, None
    delta = a.mean - b.mean
    if math.isnan(delta):
        return delta, None
    sa, sb = a.std, b.std
    if sa is None and sb is None:
        return delta, None
    sa = sb if sa is None else sa
    sb = sa if sb is None else sb
    se = math.sqrt(sa * sa / a.n + sb * sb / b.n)
    return delta, abs(delta) > SIGMAS * se


def ranking(means: Sequence[float | None], mode: str) -> list[int]:
    """Indexes of `means`, best first; NaN after every number, a missing value last, ties
    keep their order."""
    def key(i: int) -> tuple[int, float, int]:
        m = means[i]
        if m is None:
            return 2, 0.0, i
        return (1, 0.0, i) if math.isnan(m) else (0, -score(m, mode), i)
    return sorted(range(len(means)), key=key)


def versus_baseline(option: Sample, baseline: Sample | None, mode: str) -> str | None:
    """None when `option` beats the baseline (or there is no baseline value to compare with);
    else why not: BELOW, LEVEL, or WITHIN_NOISE (better, but by no more than the noise)."""
    if baseline is None or not is_number(baseline.mean) or not is_number(option.mean):
        return None
    mine, theirs = score(option.mean, mode), score(baseline.mean, mode)
    if mine < theirs:
        return BELOW
    if mine == theirs:
        return LEVEL
    return WITHIN_NOISE if noise_test(option, baseline)[1] is False else None


def crown(options: Sequence[Sample | float | None], unfinished: bool, mode: str,
          baseline: Sample | None = None, pruned: Sequence[bool] = ()) -> list[str]:
    """The verdict of each option (a Sample, or its mean): the winner must beat every other
    option strictly and the baseline (`versus_baseline`); options sharing the best metric are
    tied instead (e.g. two early-stopping patiences that never trigger); while an option may
    still run (`unfinished`), the best so far only leads; a best that does not beat the
    baseline is marked with why (BELOW, LEVEL, WITHIN_NOISE), never as winner. An option
    stopped early by a pruner (`pruned[i]`, or a sample whose `pruned` is true) is PRUNED: it
    keeps its rank by the metric of the last epoch it ran but never wins, ties or leads; the
    crown goes to the best of the options that ran to the end."""
    samples = [o if o is None or hasattr(o, "mean") else Point(o) for o in options]
    means = [s.mean if s is not None else None for s in samples]
    stopped = [bool(pruned[i]) if i < len(pruned) else bool(getattr(s, "pruned", False))
               for i, s in enumerate(samples)]
    verdicts = [PRUNED if stop else "" for stop in stopped]
    scored = [i for i, m in enumerate(means) if is_number(m) and not stopped[i]]
    if not scored:
        return verdicts
    best = max(score(means[i], mode) for i in scored)
    top = [i for i in scored if score(means[i], mode) == best]
    short = next((why for i in top if (why := versus_baseline(samples[i], baseline, mode))),
                 None)
    if short is not None:
        for i in top:
            verdicts[i] = short
    elif len(top) == 1:
        verdicts[top[0]] = LEADING if unfinished else WINNER
    else:
        for i in top:
            verdicts[i] = TIE
    return verdicts

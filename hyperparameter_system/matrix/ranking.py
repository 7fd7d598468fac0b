"""Which option is better, by how much, and whether beyond noise: the rules the summary (and
whatever else compares options: pruning, search) shares, as plain functions over numbers.

Noise: with `execution.repeats: N` an option's runs are pooled into a mean and a sample
standard deviation. A delta is *not significant* when |delta| <= 2 * sqrt(s_a^2/n_a + s_b^2/n_b)
(two combined standard errors, about a 95% band); a side with a single run borrows the other
side's deviation. With one run on both sides the noise is unknown and nothing is marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hyperparameter_system.core.configdict import get_dotted
from hyperparameter_system.core.states import Direction

SIGMAS = 2.0
WINNER, TIE, LEADING = "winner", "tie", "leading"


class Sample(Protocol):
    """The runs of one option: their mean, sample standard deviation and count."""

    @property
    def mean(self) -> float | None: ...

    @property
    def std(self) -> float | None: ...

    @property
    def n(self) -> int: ...


def headline(result: Mapping[str, Any] | None, metric: str) -> float | None:
    """The headline metric (a dotted key of result.json) as a float, if present."""
    value = get_dotted(result or {}, metric, None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def score(value: float, mode: str) -> float:
    """Larger is better, whatever metric_mode says."""
    return Direction(mode).score(value)


def noise_test(a: Sample, b: Sample) -> tuple[float | None, bool | None]:
    """(a.mean - b.mean, significant) by the module's 2-standard-error rule."""
    if a.mean is None or b.mean is None:
        return None, None
    delta = a.mean - b.mean
    sa, sb = a.std, b.std
    if sa is None and sb is None:
        return delta, None
    sa = sb if sa is None else sa
    sb = sa if sb is None else sb
    se = math.sqrt(sa * sa / a.n + sb * sb / b.n)
    return delta, abs(delta) > SIGMAS * se


def ranking(means: Sequence[float | None], mode: str) -> list[int]:
    """Indexes of `means`, best first; a missing value ranks last, ties keep their order."""
    return sorted(range(len(means)), key=lambda i: (
        means[i] is None, -score(means[i], mode) if means[i] is not None else 0, i))


def crown(means: Sequence[float | None], unfinished: bool, mode: str) -> list[str]:
    """The verdict of each option: the winner must beat every other option strictly; options
    sharing the best metric are tied instead (e.g. two early-stopping patiences that never
    trigger); while an option may still run (`unfinished`), the best so far only leads."""
    verdicts = [""] * len(means)
    scored = [i for i, m in enumerate(means) if m is not None]
    if not scored:
        return verdicts
    best = max(score(means[i], mode) for i in scored)
    top = [i for i in scored if score(means[i], mode) == best]
    if len(top) == 1:
        verdicts[top[0]] = LEADING if unfinished else WINNER
    else:
        for i in top:
            verdicts[i] = TIE
    return verdicts

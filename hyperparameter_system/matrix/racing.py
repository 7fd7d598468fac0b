"""Racing seeds: which option of a pool (one model, one category) beats its baseline beyond seed
noise, decided as seeds arrive, with the seeds going where a verdict is still open.

Seeds are paired: seed k of every option and of the model's baseline is `random_seed + k`, so
each option has one paired difference per seed, d_k = x_option,k - x_baseline,k (and against
another option, x_a,k - x_b,k). The test is a paired t-test whose variance is pooled over the
options of the model's pools (the two-way seed x option layout of a randomised block design,
as F-Race's post-hoc tests pool over candidates):

    s^2 = sum_o sum_k (d_o,k - mean(d_o))^2 / sum_o (n_o - 1)      df = sum_o (n_o - 1)
    t = mean(d) / sqrt(s^2 / n)      interval: mean(d) +- t_{1 - a/2, df} * sqrt(s^2 / n)

Assumptions: seed effects add (what pairing cancels), the remaining noise is roughly normal and
alike across the model's options. Options whose differences are all exactly zero (a patience
longer than the run, mixed precision on a CPU) are IDENTICAL: they join no variance, never win
and get no more seeds.

Repeated looks: the race tests after every new seed, up to `max - min + 1` looks per comparison;
each look runs at a = (1 - confidence) / looks (Bonferroni over the planned looks), so looking
often does not inflate the false-winner rate. Within a look the pool's comparisons are
controlled by Holm: the leader is the WINNER when it beats the baseline and every option still
in the race (all of them rejected by Holm's step-down at a); an option that Holm finds worse
than the leader, or worse than the baseline, is RACED_OUT; the leader and the options not yet
separated from it want another seed, up to `max`; a pool still open at `max` is UNDECIDED, and
so is one whose leader could not be sure even at `max` on an optimistic reading (futility). A
pruned run is final for its seed and its option (PRUNED); a failed one likewise (FAILED).
bench/racing.py measures the false-winner rate, the power and the seeds this spends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import fmean

from hyperparameter_system.config.racing import RaceRule

__all__ = ["RaceRule", "Arm", "Judgement", "Pool", "judge", "holm", "squares"]

WINNER, LEADING, RACING, UNDECIDED = "winner", "leading", "racing", "undecided"
RACED_OUT, PRUNED, FAILED, IDENTICAL = "raced out", "pruned", "failed", "identical to baseline"
OUT = (RACED_OUT, PRUNED, FAILED, IDENTICAL)  # final verdicts: no more seeds
FUTILITY = 0.8  # the one-sided bound of the leader's gain read as "optimistic" (_futile)


@dataclass
class Arm:
    """One option's runs: seed index -> score (larger is better), and why it stopped, if it
    did (PRUNED or FAILED: final for the option)."""

    scores: Mapping[int, float]
    stopped: str | None = None


@dataclass
class Judgement:
    """An option's standing: its verdict, the mean paired difference against the baseline (in
    score units) with the half-width of its interval, the seeds it rests on, and whether it
    wants another seed (`closeness`: how near its open comparisons are to a verdict, 0..1)."""

    verdict: str
    delta: float | None = None
    half_width: float | None = None
    seeds: int = 0
    wants: bool = False
    closeness: float = 0.0
    needed: int | None = None  # seeds at which today's effect would be sure (None: never)


@dataclass
class Comparison:
    mean: float
    n: int
    t: float | None = None  # None: no variance to test with yet
    p: float = 1.0
    half_width: float | None = None
    critical: float | None = None

    @property
    def closeness(self) -> float:
        if self.t is None or not self.critical:
            return 0.5
        return min(1.0, abs(self.t) / self.critical)

    def needed(self) -> int | None:
        """Seeds at which this mean difference would reach the critical value."""
        if self.t is None or self.critical is None:
            return None
        if self.t == 0:
            return None
        return max(self.n, math.ceil(self.n * (self.critical / abs(self.t)) ** 2))


@dataclass
class Pool:
    """What `judge` found: a verdict per option, the leader and whether the pool is settled."""

    judgements: dict[str, Judgement] = field(default_factory=dict)
    leader: str | None = None
    df: int = 0

    @property
    def winner(self) -> str | None:
        return next((k for k, j in self.judgements.items() if j.verdict == WINNER), None)

    @property
    def open(self) -> bool:
        """More seeds could still change a verdict."""
        return any(j.wants for j in self.judgements.values())

    @property
    def closeness(self) -> float:
        return max((j.closeness for j in self.judgements.values() if j.wants), default=0.0)


def _diffs(a: Mapping[int, float], b: Mapping[int, float]) -> list[float]:
    return [a[k] - b[k] for k in sorted(a.keys() & b.keys())
            if math.isfinite(a[k]) and math.isfinite(b[k])]


def _compare(diffs: list[float], s2: float | None, df: int, level: float) -> Comparison:
    from scipy.special import stdtr, stdtrit  # lazily: the CLI starts without scipy

    n = len(diffs)
    mean = fmean(diffs) if diffs else 0.0
    if s2 is None or df < 1 or n < 1:
        return Comparison(mean, n)
    se = math.sqrt(s2 / n)
    critical = float(stdtrit(df, 1 - level / 2))
    if se == 0:
        t = math.inf if mean else 0.0
        return Comparison(mean, n, t, 0.0 if mean else 1.0, 0.0, critical)
    t = mean / se
    return Comparison(mean, n, t, float(2 * stdtr(df, -abs(t))), critical * se, critical)


def holm(pvalues: Mapping[str, float], level: float) -> set[str]:
    """The hypotheses Holm's step-down rejects at `level`."""
    rejected: set[str] = set()
    for i, (key, p) in enumerate(sorted(pvalues.items(), key=lambda kv: kv[1])):
        if p > level / (len(pvalues) - i):
            break
        rejected.add(key)
    return rejected


def squares(baseline: Mapping[int, float], arms: Mapping[str, Arm]) -> tuple[float, int]:
    """The sum of squared deviations of the paired differences and its degrees of freedom, over
    the options that ran to the end (identical, pruned and failed options aside): s^2 = ss/df.
    Summed over a model's pools, it pools the variance over the model (see `judge`)."""
    ss, df = 0.0, 0
    for arm in arms.values():
        d = _diffs(arm.scores, baseline)
        if arm.stopped or len(d) < 2 or not any(d):
            continue
        m = fmean(d)
        ss += sum((x - m) ** 2 for x in d)
        df += len(d) - 1
    return ss, df


def judge(baseline: Mapping[int, float], arms: Mapping[str, Arm], rule: RaceRule,
          pooled: tuple[float, int] | None = None) -> Pool:
    """The verdict of every option of one pool, from the seeds finished so far. `pooled`: the
    (ss, df) to estimate the noise with, when wider than this pool's own `squares` (the race
    pools over all of a model's categories: one model, one data set, one set of seeds)."""
    pool = Pool()
    ss, pool.df = pooled if pooled is not None else squares(baseline, arms)
    active = _settle(baseline, arms, rule, pool)
    if active:
        _race(pool, active, arms, ss / pool.df if pool.df else None, rule)
    if not pool.open:
        for j in pool.judgements.values():  # at max: the unseparated are undecided too
            if j.verdict in (LEADING, RACING):
                j.verdict = UNDECIDED
    return pool


def _settle(baseline: Mapping[int, float], arms: Mapping[str, Arm], rule: RaceRule,
            pool: Pool) -> dict[str, list[float]]:
    """Judge the options that need no test (stopped, identical, not paired yet); return the
    paired differences of the others, which race."""
    active: dict[str, list[float]] = {}
    for name, arm in arms.items():
        d = _diffs(arm.scores, baseline)
        if arm.stopped:
            pool.judgements[name] = Judgement(arm.stopped, fmean(d) if d else None, None, len(d))
        elif d and not any(d):
            pool.judgements[name] = Judgement(IDENTICAL, 0.0, 0.0, len(d))
        elif d:
            active[name] = d
        else:  # no paired seed yet
            pool.judgements[name] = Judgement(RACING, seeds=len(arm.scores),
                                              wants=len(arm.scores) < rule.max_seeds)
    return active


def _race(pool: Pool, active: Mapping[str, list[float]], arms: Mapping[str, Arm],
          s2: float | None, rule: RaceRule) -> None:
    """The leader against the baseline and the rest (Holm at the look's level); the losers
    out at F-Race's level; who of the rest wants another seed."""
    level = rule.level
    versus_base = {k: _compare(d, s2, pool.df, level) for k, d in active.items()}
    leader = pool.leader = max(active, key=lambda k: versus_base[k].mean)
    lead = arms[leader].scores
    versus_lead = {k: _compare(_diffs(lead, arms[k].scores), s2, pool.df, level)
                   for k in active if k != leader}
    drop = 1 - rule.confidence  # losing an option is no false winner: F-Race's level
    out = ({k for k, c in versus_lead.items() if c.mean > 0 and c.p <= drop}
           | {k for k, c in versus_base.items() if c.mean < 0 and c.p <= drop})
    racing = [k for k in active if k != leader and k not in out]
    family = {"": versus_base[leader]} | {k: versus_lead[k] for k in racing}
    won = (versus_base[leader].mean > 0 and
           holm({k: c.p for k, c in family.items()}, level) == set(family))
    if won or leader in out:  # decided: a winner, or even the best is below the baseline
        out |= set(racing)
    futile = not won and _futile(versus_base[leader], s2, pool.df, rule)
    for k, c in versus_base.items():
        if k == leader and won:
            pool.judgements[k] = Judgement(WINNER, c.mean, c.half_width, c.n)
        elif k in out:
            pool.judgements[k] = Judgement(RACED_OUT, c.mean, c.half_width, c.n)
        else:
            pool.judgements[k] = _open(c, list(family.values()) if k == leader
                                       else [versus_lead[k]], k == leader, futile, rule)


def _open(versus_base: Comparison, comparisons: list[Comparison], leads: bool, futile: bool,
          rule: RaceRule) -> Judgement:
    """An option still in the race: leading or racing while it wants a seed, else undecided;
    how close its open comparisons are, and the seeds they would need."""
    c = versus_base
    wants = c.n < rule.max_seeds and not futile
    needs = [o.needed() for o in comparisons]
    return Judgement((LEADING if leads else RACING) if wants else UNDECIDED, c.mean,
                     c.half_width, c.n, wants, max(o.closeness for o in comparisons),
                     None if None in needs else max(n for n in needs if n is not None))


def _futile(leader: Comparison, s2: float | None, df: int, rule: RaceRule) -> bool:
    """Even an optimistic reading of the leader's gain over the baseline (its one-sided 80%
    upper bound) would not be sure at `max` seeds: more seeds are wasted, the pool is left
    UNDECIDED now (stochastic curtailment).
    Stopping for futility never adds a false winner; it only costs power the bench measures."""
    from scipy.special import stdtrit

    if leader.t is None or s2 is None or s2 == 0 or leader.n < 2:
        return False
    se = math.sqrt(s2 / leader.n)
    optimistic = leader.mean + float(stdtrit(df, FUTILITY)) * se
    df_at_max = df * (rule.max_seeds - 1) // (leader.n - 1)  # the df that max seeds would give
    critical = float(stdtrit(df_at_max, 1 - rule.level / 2))
    return optimistic < critical * math.sqrt(s2 / rule.max_seeds)

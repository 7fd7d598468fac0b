"""The race as the executor's experiment source: every pool's first `min` seeds, then one more
seed at a time where a verdict is closest per hour of compute, until every pool is decided, at
`max`, or out of budget. Its state is the ledger's (a resumed runner continues the same race);
the verdicts are matrix/racing.py's.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hyperparameter_system.config.racing import RaceRule
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.durations import fmt_duration
from hyperparameter_system.core.states import FINAL, Direction, Status
from hyperparameter_system.matrix.experiments import BASELINE, Experiment
from hyperparameter_system.matrix.racing import (
    FAILED,
    LEADING,
    PRUNED,
    RACING,
    UNDECIDED,
    Arm,
    Pool,
    judge,
    squares,
)
from hyperparameter_system.matrix.ranking import headline
from hyperparameter_system.store.estimates import calibrated, estimate_durations
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.store.row import Row

PoolKey = tuple[str, str]  # (model, category)
WAIT_S = 0.5  # how often a slot waiting for a verdict looks at the ledger again
HANDED_S = 60.0  # a handed-out experiment not yet claimed counts as running this long
FAR = 100  # more seeds than this to settle a pool: said as "more than FAR"


@dataclass
class RacedPool:
    """One (model, category) pool: its experiments by option and seed, and its judgement."""

    model: str
    category: str
    options: dict[str, dict[int, Experiment]] = field(default_factory=dict)
    pool: Pool = field(default_factory=Pool)


def arm(rows: Sequence[Row | None], metric: str, mode: str) -> Arm:
    """An option's finished seeds as scores (larger is better); a pruned run or a failed
    (or diverged) one stops the option."""
    scores: dict[int, float] = {}
    stopped = None
    for seed, row in enumerate(rows):
        if row is None:
            continue
        if row.status == Status.PRUNED:
            stopped = PRUNED
        elif row.status == Status.DONE:
            value = headline(row.result, metric)
            if value is None or not math.isfinite(value):
                stopped = stopped or FAILED
            else:
                scores[seed] = Direction(mode).score(value)
        elif row.status in (Status.FAILED, Status.TIMEOUT):
            stopped = stopped or FAILED
    return Arm(scores, stopped)


OptionKey = tuple[str, str, str]  # (model, category, option_json)


def seeds_of(experiments: Sequence[Experiment]) -> dict[OptionKey, dict[int, Experiment]]:
    """(model, category, option) -> seed index -> experiment."""
    out: dict[OptionKey, dict[int, Experiment]] = defaultdict(dict)
    for e in experiments:
        out[(e.model, e.category, e.option_json)][e.repeat] = e
    return out


def judge_pools(experiments: Sequence[Experiment], rows: Mapping[str, Row], metric: str,
                mode: str, rule: RaceRule) -> dict[PoolKey, RacedPool]:
    """Every (model, category) pool of `experiments` judged from the ledger's rows."""
    by_option = seeds_of(experiments)
    baselines: dict[str, dict[int, float]] = {}
    pools: dict[PoolKey, RacedPool] = {}
    for (model, category, option), seeds in by_option.items():
        ordered = [rows.get(seeds[k].id) if k in seeds else None
                   for k in range(max(seeds) + 1)]
        if category == BASELINE:
            baselines[model] = dict(arm(ordered, metric, mode).scores)
            continue
        pools.setdefault((model, category), RacedPool(model, category)).options[option] = seeds
    arms = {key: {o: arm([rows.get(s[k].id) if k in s else None for k in range(max(s) + 1)],
                         metric, mode) for o, s in raced.options.items()}
            for key, raced in pools.items()}
    pooled: dict[str, tuple[float, int]] = {}  # per model: its pools' noise, pooled
    for (model, _), pool_arms in arms.items():
        ss, df = squares(baselines.get(model, {}), pool_arms)
        have = pooled.get(model, (0.0, 0))
        pooled[model] = (have[0] + ss, have[1] + df)
    for key, raced in pools.items():
        raced.pool = judge(baselines.get(key[0], {}), arms[key], rule, pooled[key[0]])
    return pools


class RaceSource:
    """The ExperimentSource of adaptive repeats. `stop`: the executor's, so a slot waiting for
    a verdict ends with the run."""

    synced = False  # rows are added as seeds are launched

    def __init__(self, settings: Settings, experiments: Sequence[Experiment], ledger: Ledger,
                 stop: threading.Event, clock: Callable[[], float] = time.time) -> None:
        assert settings.execution.race is not None
        self.settings, self.rule, self.ledger = settings, settings.execution.race, ledger
        self.experiments, self.stop, self.clock = list(experiments), stop, clock
        self.by_id = {e.id: e for e in self.experiments}
        self.calibration = calibrated(settings.system.runs_dir)
        budget = settings.execution.budget_s
        self.deadline = clock() + budget if budget else None
        self.lock = threading.Condition()
        self.handed: dict[str, float] = {}  # handed out, not told yet: id -> when
        self.told_ids: set[str] = set()  # final in this invocation (a failure is not rerun)
        self.over_budget: dict[str, Experiment] = {}  # wanted, left for the budget
        statuses = ledger.statuses(self.by_id)
        first = sorted((e for e in self.experiments if e.repeat < self.rule.min_seeds
                        and statuses.get(e.id) not in FINAL),
                       key=lambda e: (e.repeat, e.category != BASELINE, e.index))
        self.queue: deque[Experiment] = deque(first)

    # -- ExperimentSource ----------------------------------------------------------------
    def next(self) -> Experiment | None:
        with self.lock:
            while not self.stop.is_set():
                rows = {r.id: r for r in self.ledger.rows(self.by_id)}
                exp = self._pick(rows)
                if exp is not None:
                    self.handed[exp.id] = self.clock()
                    return exp
                if not self._busy(rows):
                    return None
                self.lock.wait(WAIT_S)
            return None

    def put_back(self, experiment: Experiment, front: bool = False) -> None:
        with self.lock:
            self.handed.pop(experiment.id, None)
            (self.queue.appendleft if front else self.queue.append)(experiment)
            self.lock.notify_all()

    def told(self, experiment: Experiment, outcome: Outcome, final: bool = True) -> None:
        with self.lock:
            if final:
                self.handed.pop(experiment.id, None)
                self.told_ids.add(experiment.id)
            self.lock.notify_all()

    # -- choosing ------------------------------------------------------------------------
    def _pick(self, rows: Mapping[str, Row]) -> Experiment | None:
        while self.queue:
            exp = self.queue.popleft()
            if self._runnable(exp, rows) and self._fits(exp, rows):
                return exp
        for exp in self.wanted(rows):
            if self._fits(exp, rows):
                return exp
        return None

    def _runnable(self, exp: Experiment, rows: Mapping[str, Row]) -> bool:
        """Not done, not handed out already; a row left running goes to the executor's claim,
        which recovers a dead runner's and leaves a live one's alone."""
        if exp.id in self.handed or exp.id in self.told_ids:
            return False
        return not self._final(exp, rows)

    def _busy(self, rows: Mapping[str, Row]) -> bool:
        """Something this race handed out has not ended yet: its end may want more seeds. (An
        experiment recovered or run by another runner is never told: the ledger says.)"""
        now = self.clock()
        for exp_id, when in list(self.handed.items()):
            row = rows.get(exp_id)
            status = row.status if row is not None else None
            if status in FINAL or (now - when > HANDED_S and status != Status.RUNNING):
                self.handed.pop(exp_id)
        return bool(self.handed)

    def wanted(self, rows: Mapping[str, Row]) -> list[Experiment]:
        """The next seed of every option that wants one, and the baseline's seed of every seed
        such an option has or will run (the pairing), most likely to change a verdict per
        second of compute first (a baseline seed first among equals: it unlocks a pair)."""
        rule, system = self.rule, self.settings.system
        pools = judge_pools(self.experiments, rows, system.metric, system.metric_mode, rule)
        baselines = {(e.model, e.repeat): e for e in self.experiments if e.category == BASELINE}
        estimate = estimate_durations(list(rows.values()), self.experiments,
                                      calibration=self.calibration)
        picks: dict[str, tuple[float, int, Experiment]] = {}
        # a model's first look needs all its min seeds: its pools share one pooled variance
        looking = {e.model for e in self.experiments if e.repeat < rule.min_seeds
                   and not self._final(e, rows) and e.id not in self.told_ids
                   and e.id not in self.over_budget}  # a seed the budget left never ends

        def offer(exp: Experiment | None, closeness: float, first: int) -> None:
            if exp is None or self._final(exp, rows) or self._in_flight(exp, rows) \
                    or exp.id in self.told_ids:
                return
            per_second = (closeness or 0.01) / max(estimate.get(exp.id) or 60, 1)
            best = picks.get(exp.id)
            if best is None or (-per_second, first) < best[:2]:
                picks[exp.id] = (-per_second, first, exp)

        for raced in (p for p in pools.values() if p.model not in looking):
            for option, seeds in raced.options.items():
                judgement = raced.pool.judgements.get(option)
                if judgement is None or not judgement.wants:
                    continue
                started = [k for k, e in seeds.items()
                           if self._final(e, rows) or self._in_flight(e, rows)]
                pairs = [b for k in started if (b := baselines.get((raced.model, k)))]
                for pair in pairs:
                    offer(pair, judgement.closeness, 0)
                if any(self._in_flight(e, rows) for e in [*seeds.values(), *pairs]):
                    continue  # one pair at a time per option: its end may settle the race
                k = next((k for k in sorted(seeds) if not self._final(seeds[k], rows)), None)
                if k is None:
                    continue
                offer(baselines.get((raced.model, k)), judgement.closeness, 0)
                offer(seeds[k], judgement.closeness, 1)
        return [e for _, _, e in sorted(picks.values(), key=lambda p: p[:2])]

    def _final(self, exp: Experiment, rows: Mapping[str, Row]) -> bool:
        row = rows.get(exp.id)
        return row is not None and row.status in FINAL

    def _in_flight(self, exp: Experiment, rows: Mapping[str, Row]) -> bool:
        """Handed out by this race and not ended. A row another runner left `running` is not:
        the executor's claim recovers it when that runner is dead, else leaves it be."""
        return exp.id in self.handed

    def _fits(self, exp: Experiment, rows: Mapping[str, Row]) -> bool:
        """Within the budget by the estimate: the ledger's durations, else the first epoch of a
        run of the same model, else a calibration (store.estimates); unknown launches."""
        if self.deadline is None:
            return True
        seconds = estimate_durations(list(rows.values()), [exp],
                                     calibration=self.calibration).get(exp.id)
        if seconds is None or self.clock() + seconds <= self.deadline:
            return True
        self.over_budget[exp.id] = exp
        return False

    # -- after the run -------------------------------------------------------------------
    def undecided(self) -> list[str]:
        """Per pool left open (budget, or `max`): its leader's interval and roughly what more
        it would need (seeds, and hours from the ledger's durations)."""
        rows = {r.id: r for r in self.ledger.rows(self.by_id)}
        system = self.settings.system
        pools = judge_pools(self.experiments, rows, system.metric, system.metric_mode,
                            self.rule)
        estimate = estimate_durations(list(rows.values()), self.experiments,
                                      calibration=self.calibration)
        baselines = {e.model: e for e in self.experiments
                     if e.category == BASELINE and e.repeat == 0}
        out = []
        for raced in pools.values():
            lead = raced.pool.leader
            j = raced.pool.judgements.get(lead) if lead else None
            if j is None or j.verdict not in (UNDECIDED, LEADING):
                continue
            # one more seed: each option still in the race, and the baseline's pair
            runs = [raced.options[o][0] for o, x in raced.pool.judgements.items()
                    if x.verdict in (UNDECIDED, LEADING, RACING) and 0 in raced.options[o]]
            runs += [baselines[raced.model]] if raced.model in baselines else []
            per_seed = sum(estimate.get(e.id) or 0 for e in runs)
            more = None if j.needed is None else max(0, j.needed - j.seeds)
            needs = ("more seeds would not settle it at this effect" if more is None else
                     f"needs more than {FAR} more seeds: the gain is small against the noise"
                     if more > FAR else f"needs ~{more} more seed(s)" + (
                         f", ~{fmt_duration(more * per_seed)}" if per_seed else ""))
            sign = Direction(system.metric_mode).score(1.0)
            delta = f"{sign * (j.delta or 0):+.4f}"
            width = f" ± {j.half_width:.4f}" if j.half_width is not None else ""
            out.append(f"{raced.model} / {raced.category}: undecided after {j.seeds} seed(s), "
                       f"leader {lead_label(raced, lead)} {delta}{width}; {needs}")
        return out


def lead_label(raced: RacedPool, option: str) -> str:
    seeds = raced.options.get(option) or {}
    first = seeds.get(min(seeds)) if seeds else None
    return first.label.split("_seed")[0] if first else option

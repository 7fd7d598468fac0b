"""What a summary is made of: each option's runs and numbers, the per-model and cross-model
reports, failures, the best run. report/summary.py computes them from the ledger."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import fmean, stdev
from typing import Any

from hyperparameter_system.core.configdict import get_dotted
from hyperparameter_system.core.states import UNFINISHED, Direction, Status
from hyperparameter_system.matrix import combine
from hyperparameter_system.matrix.ranking import (
    NOT_BEATING,
    headline,
    is_number,
)
from hyperparameter_system.report.others import OtherConfig
from hyperparameter_system.store.curves import last_point
from hyperparameter_system.store.row import Row


@dataclass
class OptionStat:
    """One option of one model (all its repeats), or the baseline, or the combined run."""

    model: str
    category: str
    option: dict[str, Any]
    option_json: str
    label: str
    run_name: str
    changes: dict[str, Any]
    order: int
    rows: list[Row] = field(default_factory=list, repr=False)
    values: list[float] = field(default_factory=list)
    delta: float | None = None
    significant: bool | None = None
    winner: bool = False
    tied: bool = False  # shares the best metric with another option: no winner
    leading: bool = False  # best so far, while another option of its category may still run
    verdict: str = ""  # matrix.ranking's word for it: winner, tie, leading, best, below baseline
    # with repeats (fixed or raced): matrix.racing's verdict, its interval and paired seeds
    half_width: float | None = None  # delta +- half_width at the race's confidence
    seeds: int = 0

    @property
    def description(self) -> str:
        """The option's description, "" when it has none (its label is then the run name)."""
        return self.label if self.label != self.run_name else ""

    @property
    def unfinished(self) -> bool:
        """Not run yet, running, or stopped and resumable: its metric may still come."""
        return not self.rows or any(r.status in UNFINISHED for r in self.rows)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return stdev(self.values) if len(self.values) > 1 else None

    @property
    def done_rows(self) -> list[Row]:
        return [r for r in self.rows if r.status == Status.DONE]

    @property
    def ran_rows(self) -> list[Row]:
        """The runs that have a curve to the end or to where a pruner stopped them."""
        return [r for r in self.rows if r.status in (Status.DONE, Status.PRUNED)]

    @property
    def pruned(self) -> bool:
        """A pruner stopped (one of) its runs early: ranked, never a winner."""
        return any(r.status == Status.PRUNED for r in self.rows)

    @property
    def pruned_at(self) -> int | None:
        """The (earliest) epoch a pruner stopped one of its runs at."""
        epochs = [epochs_of(r) for r in self.rows if r.status == Status.PRUNED]
        epochs = [e for e in epochs if e is not None]
        return min(epochs) if epochs else None

    @property
    def duration_s(self) -> float | None:
        """Mean time of the runs that ended done or pruned (a pruned run's time is real)."""
        times = [r.duration_s for r in self.ran_rows if r.duration_s is not None]
        return fmean(times) if times else None

    @property
    def epochs_run(self) -> float | None:
        epochs = [epochs_of(r) for r in self.ran_rows]
        epochs = [e for e in epochs if e is not None]
        return fmean(epochs) if epochs else None

    @property
    def effective(self) -> dict[str, Any] | None:
        """result.json's `effective` of its first run that trained (done or pruned): what the
        script read back from the objects it built, to compare with the option asked for."""
        found = (r.result.get("effective") for r in self.ran_rows)
        return next((e for e in found if isinstance(e, dict)), None)

    @property
    def unhonoured(self) -> list[str]:
        """The keys this option set that its runs' result.json lists as `unused_keys` (the
        script never read them): the option changed nothing there."""
        unused = {str(k) for r in self.rows for k in (r.result.get("unused_keys") or [])}
        return sorted(k for k in self.changes
                      if any(k == u or k.startswith(f"{u}.") for u in unused))

    @property
    def status(self) -> str:
        """The runs' status; a pruned one with its stop epoch: `pruned @2`; an option whose keys
        the script did not read is marked `not honoured (keys)`."""
        if not self.rows:
            return "not run"
        counts = Counter(r.status for r in self.rows)
        at = self.pruned_at
        words = {s: f"{s} @{at}" if s == Status.PRUNED and at is not None else s
                 for s in counts}
        text = (words[next(iter(counts))] if len(counts) == 1 else
                ", ".join(f"{n} {words[s]}" for s, n in counts.most_common()))
        unread = self.unhonoured
        return f"{text}, not honoured ({', '.join(unread)})" if unread else text


@dataclass
class CategoryTable:
    category: str
    options: list[OptionStat]  # ranked, best first; options without a metric last

    @property
    def winner(self) -> OptionStat | None:
        return next((o for o in self.options if o.winner), None)

    @property
    def best_not_winning(self) -> OptionStat | None:
        """The best option when none beat the baseline (no winner then), else None."""
        return next((o for o in self.options if o.verdict in NOT_BEATING), None)


@dataclass
class VersusWinner:
    category: str
    label: str
    winner_mean: float | None
    diff: float | None  # combined - winner
    significant: bool | None
    run_name: str = ""


@dataclass
class CombinedReport:
    plan: combine.Plan
    stat: OptionStat
    versus: list[VersusWinner]


@dataclass
class Compute:
    """A model's finished runs (done or pruned): epochs trained against epochs planned (the
    experiment config's `epochs`), and so the share of training a pruner saved."""

    runs: int = 0
    pruned: int = 0
    epochs_run: int = 0
    epochs_planned: int = 0

    @property
    def saved(self) -> float | None:
        """1 - run / planned, or None when nothing was planned."""
        return 1 - self.epochs_run / self.epochs_planned if self.epochs_planned else None


@dataclass
class ModelReport:
    model: str
    project: str
    baseline: OptionStat | None
    categories: list[CategoryTable]
    combined: CombinedReport | None = None
    compute: Compute = field(default_factory=Compute)


@dataclass
class CrossEntry:
    category: str
    label: str
    option_json: str
    wins: int  # models where it is the winner: it beat every other option and the baseline
    models: int
    mean_delta: float | None
    run_name: str = ""


@dataclass
class Failure:
    model: str
    category: str
    label: str
    status: str
    reason: str
    log_path: str | None
    attempts: int
    tail: str = ""  # the last lines of its train.log, so the cause shows without opening it
    run_name: str = ""


@dataclass
class JobLine:
    """A run that went through a scheduler (Slurm): its job id and the node it ran on."""

    model: str
    category: str
    run_name: str
    status: str
    job: str
    node: str


@dataclass
class BestRun:
    model: str
    category: str
    label: str
    metric: float
    run_dir: str | None
    wandb_mode: str
    link: str | None  # online: the run's URL, or `project/run_id` when the entity is unknown
    sync_command: str | None  # offline: how to upload it
    run_name: str = ""


@dataclass
class Summary:
    metric: str
    metric_mode: str
    repeats: int
    models: list[ModelReport]
    cross: list[CrossEntry]
    failures: list[Failure]
    best: BestRun | None
    counts: dict[str, int]
    unsynced: list[str] = field(default_factory=list)  # W&B dirs of online runs logged offline
    metric_missing: str | None = None  # why no run has a value: the key is in no result
    problems: list[str] = field(default_factory=list)  # unreadable ledger cells, per row
    # ledger rows of another config (other --set values), grouped by how they differ
    other_configs: list[OtherConfig] = field(default_factory=list)
    raced: bool = False  # verdicts from paired seeds (matrix.racing); else single runs
    race: str = ""  # the race's rule in words ("2 to 6 seeds"), "" with fixed repeats
    confidence: float = 0.95
    jobs: list[JobLine] = field(default_factory=list)  # scheduler jobs (Slurm), when any ran

    @property
    def method(self) -> str:
        """How the verdicts were reached, in one sentence every view prints."""
        level = f"{self.confidence:.0%}"
        if self.raced and self.race:
            return (f"Adaptive repeats: seeds raced per pool ({self.race}); each delta is the "
                    f"mean paired difference against the baseline ± its {level} interval; a "
                    "winner is sure at that level, 'leading' is not yet, 'undecided' ran out "
                    "of seeds.")
        if self.raced:
            return (f"Each option ran {self.repeats} paired seeds; each delta is the mean "
                    f"paired difference against the baseline ± its {level} interval; a winner "
                    "is sure at that level.")
        return ("Each option ran once: the verdicts rest on single runs and the seed noise is "
                "unknown (a delta may be noise); set execution.repeats: {min: 2, max: 6} for "
                "adaptive repeats with intervals.")

    def better(self, delta: float | None) -> bool | None:
        """Whether a signed delta is an improvement under metric_mode; one that prints as
        +0.0000 (float noise, e.g. the mean of +0.05 and -0.05) is neither, so not coloured."""
        if not is_number(delta) or abs(delta) < 0.5e-4:
            return None
        return delta > 0 if self.metric_mode == Direction.MAX else delta < 0


def _value(row: Row, metric: str) -> float | None:
    """The configured metric from the row's result.json, not the ledger's `metric` column:
    that holds whatever `system.metric` was when the run ended, maybe another key. A pruned
    run has its metric at the last epoch it ran (`pruned_value`)."""
    if row.status == Status.PRUNED:
        return pruned_value(row, metric)
    return headline(row.result, metric) if row.status == Status.DONE else None


def pruned_value(row: Row, metric: str) -> float | None:
    """A pruned run's metric at the last epoch it ran: its result.json's (a script that
    honours the stop request writes one), else the last metrics.jsonl line of its run folder
    (a script ended after the grace period wrote none)."""
    value = headline(row.result, metric)
    if value is None:
        point = last_point(row.run_dir, metric)
        value = point[1] if point else None
    return value


def epochs_of(row: Row, planned: int | None = None) -> int | None:
    """Epochs a finished run trained: result.json's epochs_run, else the epoch a pruner
    stopped it at, else (done) the epochs it was planned for."""
    epochs = get_dotted(row.result, "metrics.epochs_run", None)
    if isinstance(epochs, int | float) and not isinstance(epochs, bool):
        return int(epochs)
    if row.status == Status.PRUNED:
        if isinstance(row.pruned_epoch, int):
            return row.pruned_epoch
        point = last_point(row.run_dir, "epoch")
        return int(point[0]) if point else None
    return planned if row.status == Status.DONE else None



"""Duration estimates for pending experiments, from what the ledger has seen run.

A pruned row stopped early, so its duration is not a full run's: it counts as a full run only
scaled up by its planned / run epochs, and its own past duration is never its estimate. When
pruning is on, a pending option (never a baseline: a baseline is never pruned) is expected to
cost what the ledger's pruned share says: full * ((1 - share) + share * fraction), where share
is the model's pruned rows among its finished options and fraction the mean share of their
planned epochs the pruned rows ran.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from hyperparameter_system.core.atomic import read_json
from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import BASELINE, Experiment
from hyperparameter_system.store.curves import read_curve
from hyperparameter_system.store.row import Row

CALIBRATION_FILE = "calibration.json"  # in runs_dir: run/calibrate.py's figures


def _shape(model: str, config) -> tuple:
    return (model, config.get("image_size"), config.get("batch_size"), config.get("epochs"))


def shape_key(model: str, config) -> str:
    """A shape as text, the key of calibration.json: `model|image_size|batch_size|epochs`."""
    return "|".join(str(part) for part in _shape(model, config))


def calibrated(runs_dir: Path) -> dict[str, float]:
    """The calibrations run so far (run/calibrate.py), shape key -> seconds; {} without."""
    data = read_json(Path(runs_dir) / CALIBRATION_FILE) or {}
    return {str(k): float(v) for k, v in data.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def ran_fraction(row: Row) -> float | None:
    """The share of its planned epochs a pruned row trained (pruned_epoch / config epochs)."""
    ran, planned = _int(row.pruned_epoch), _int(row.config.get("epochs"))
    return min(1.0, ran / planned) if ran and planned else None


@dataclass
class PrunedShare:
    """One model's pruned options among its finished options, and how far they ran."""

    finished: int = 0
    pruned: int = 0
    fractions: list[float] | None = None

    @property
    def factor(self) -> float:
        """What an option is expected to cost, as a share of a full run."""
        if not self.finished or not self.pruned:
            return 1.0
        share = self.pruned / self.finished
        fraction = mean(self.fractions) if self.fractions else 1.0
        return (1 - share) + share * fraction


def pruned_shares(rows: Iterable[Row]) -> dict[str, PrunedShare]:
    """Per model, the pruned share of its finished options (baselines aside)."""
    out: dict[str, PrunedShare] = defaultdict(PrunedShare)
    for r in rows:
        if r.category == BASELINE or r.status not in (Status.DONE, Status.PRUNED):
            continue
        share = out[r.model]
        share.finished += 1
        if r.status == Status.PRUNED:
            share.pruned += 1
            if (fraction := ran_fraction(r)) is not None:
                share.fractions = [*(share.fractions or []), fraction]
    return dict(out)


def first_epochs(rows: Iterable[Row]) -> dict[tuple, float]:
    """Per model and shape that nothing finished yet: a full run's seconds read off the first
    epoch of one of its runs (metrics.jsonl's `seconds` x the planned epochs), so a new
    matrix's budget and ETA have a figure once its first epochs are in."""
    out: dict[tuple, float] = {}
    for r in rows:
        epochs = _int(r.config.get("epochs"))
        if r.status not in (Status.RUNNING, Status.INTERRUPTED) or not epochs or not r.run_dir:
            continue
        first = read_curve(r.run_dir, "seconds")[:1]
        if first and first[0][1] > 0:
            out.setdefault(_shape(r.model, r.config), first[0][1] * epochs)
    return out


def estimate_durations(rows: Iterable[Row], experiments: Sequence[Experiment],
                       pruning: bool | None = None,
                       calibration: Mapping[str, float] | None = None
                       ) -> dict[str, float | None]:
    """Seconds per experiment: its own past duration (a done run's); else the mean of full
    runs of the same model, image size, batch size and epochs; else the model's mean; else
    the first epoch of a run under way (`first_epochs`); else its shape's `calibration`
    (run/calibrate.py); else None. `pruning` (None: on when
    the ledger holds pruned rows) scales an option's estimate by its model's pruned share."""
    rows = list(rows)
    own: dict[str, float] = {}
    by_shape: dict[tuple, list[float]] = defaultdict(list)
    by_model: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if not r.duration_s or r.status not in (Status.DONE, Status.PRUNED):
            continue
        if r.status == Status.DONE:
            own[r.id] = full = r.duration_s
        elif (fraction := ran_fraction(r)) is not None:
            full = r.duration_s / fraction  # a pruned run, scaled to its planned epochs
        else:
            continue
        by_shape[_shape(r.model, r.config)].append(full)
        by_model[r.model].append(full)
    if any(not (by_shape.get(_shape(e.model, e.config)) or by_model.get(e.model))
           for e in experiments):
        for shape, seconds in first_epochs(rows).items():
            by_shape.setdefault(shape, [seconds])
            by_model.setdefault(shape[0], [seconds])
    shares = pruned_shares(rows)
    if pruning is None:
        pruning = any(s.pruned for s in shares.values())
    out: dict[str, float | None] = {}
    for e in experiments:
        samples = by_shape.get(_shape(e.model, e.config)) or by_model.get(e.model)
        estimate = own.get(e.id) or (mean(samples) if samples else None) or (
            calibration or {}).get(shape_key(e.model, e.config))
        if estimate is not None and pruning and e.id not in own and e.category != BASELINE:
            estimate *= shares.get(e.model, PrunedShare()).factor
        out[e.id] = estimate
    return out


def spread(durations: Iterable[float | None], slots: int | None) -> float | None:
    """The wall time of the known `durations` run `slots` at a time (their sum over the
    slots); None when none is known or the slots are not (a Ray cluster decides them). The
    one place the plans and the printers get it from."""
    known = [d for d in durations if d is not None]
    return sum(known) / slots if known and slots else None

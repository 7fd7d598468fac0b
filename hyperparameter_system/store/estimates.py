"""Duration estimates for pending experiments, from what the ledger has seen run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from statistics import mean

from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.store.ledger import Row


def _shape(model: str, config) -> tuple:
    return (model, config.get("image_size"), config.get("batch_size"), config.get("epochs"))


def estimate_durations(rows: Iterable[Row], experiments: Sequence[Experiment]
                       ) -> dict[str, float | None]:
    """Seconds per experiment: its own past duration; else the mean of done runs of the same
    model, image size, batch size and epochs; else the model's mean; else None."""
    own: dict[str, float] = {}
    by_shape: dict[tuple, list[float]] = defaultdict(list)
    by_model: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.status != Status.DONE or not r.duration_s:
            continue
        own[r.id] = r.duration_s
        by_shape[_shape(r.model, r.config)].append(r.duration_s)
        by_model[r.model].append(r.duration_s)
    out: dict[str, float | None] = {}
    for e in experiments:
        samples = by_shape.get(_shape(e.model, e.config)) or by_model.get(e.model)
        out[e.id] = own.get(e.id) or (mean(samples) if samples else None)
    return out

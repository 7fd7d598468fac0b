"""Estimates before any history: one short run (a single epoch, W&B off) of each model and
shape (image size, batch size, epochs) that nothing has run yet, through its real script, so
`--matrix`, the run's confirmation and the race's budget have a figure for a new matrix.

A full run is then estimated as the calibration's duration (start-up and one epoch) plus the
remaining epochs at the calibrated epoch's seconds (metrics.jsonl). The figures are kept in
`<runs_dir>/calibration.json` and used until real runs of that shape finish.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.atomic import atomic_write_text, read_json
from hyperparameter_system.core.configdict import apply_changes
from hyperparameter_system.core.states import Status
from hyperparameter_system.matrix.experiments import BASELINE, Experiment
from hyperparameter_system.run import launcher
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.seams import Dispatch
from hyperparameter_system.store.curves import read_curve
from hyperparameter_system.store.estimates import (
    CALIBRATION_FILE,
    calibrated,
    estimate_durations,
    shape_key,
)
from hyperparameter_system.store.ledger import Ledger


def calibrate(settings: Settings, experiments: Sequence[Experiment], ledger: Ledger,
              dispatch: Dispatch, slot: Slot) -> list[str]:
    """Run one calibration per model and shape without an estimate, each launched as the runs
    will be (`dispatch`: forked from the preloaded server where they are); one line each."""
    known = estimate_durations(ledger.rows(), experiments,
                               calibration=calibrated(settings.system.runs_dir))
    todo: dict[str, Experiment] = {}
    for e in sorted(experiments, key=lambda e: (e.category != BASELINE, e.index)):
        if known.get(e.id) is None:
            todo.setdefault(shape_key(e.model, e.config), e)
    path = settings.system.runs_dir / CALIBRATION_FILE
    figures = dict(read_json(path) or {})
    lines = []
    for key, exp in todo.items():
        seconds, why = _one(settings, exp, dispatch, slot)
        if seconds is None:
            lines.append(f"calibration of {exp.model} ({key}) failed: {why}")
            continue
        figures[key] = seconds
        atomic_write_text(path, _dump(figures))
        lines.append(f"calibrated {exp.model} ({key}): about {seconds:.0f} s a run")
    return lines


def _one(settings: Settings, exp: Experiment, dispatch: Dispatch,
         slot: Slot) -> tuple[float | None, str]:
    """(estimated seconds of a full run, why not)."""
    epochs = exp.config.get("epochs")
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 1
    short = dataclasses.replace(
        exp, id=f"calib-{exp.id}", category="calibration",
        run_name=f"calibration_{exp.run_name}", config=apply_changes(exp.config, {"epochs": 1}))
    launch = launcher.plan(short, settings, 1, env={**slot.env, "WANDB_MODE": "disabled"})
    outcome = dispatch(launch, slot, lambda: False, lambda pid, node=None: None)
    if outcome.status != Status.DONE:
        return None, outcome.error or outcome.status
    first = read_curve(outcome.run_dir, "seconds")[:1]
    epoch_s = first[0][1] if first else outcome.duration_s
    return outcome.duration_s + max(0, epochs - 1) * epoch_s, ""


def _dump(figures: dict[str, float]) -> str:
    import json

    return json.dumps(figures, indent=2, sort_keys=True) + "\n"

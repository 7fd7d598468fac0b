"""Combined winners (the seed's golden combination): every category's winning option applied on
top of a model's base config, as one more experiment of category `combined`.

Rules, in this order:
- A category's winner joins only when it beats the model's baseline (or no baseline ran):
  an option that lost to the base config would make the combination worse.
- Where two joining winners set the same config key, the winner with the better headline
  metric wins the key (for one model that is also the larger improvement over the baseline);
  a tie goes to the category listed first in experiment_config.yaml. Every such conflict is
  reported with the value kept and the value dropped.
- Only an option that ran to the end joins: one a pruner stopped early is never a winner
  (matrix.ranking.crown), and a pick marked `ran_to_end=False` is skipped with why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperparameter_system.config.settings import ModelSettings
from hyperparameter_system.core.atomic import atomic_write_text
from hyperparameter_system.core.safe_names import safe_name
from hyperparameter_system.core.writable import file_target
from hyperparameter_system.matrix.experiments import COMBINED, Experiment, Job, make_experiment

RUN_NAME = "combined_best"


@dataclass(frozen=True)
class Pick:
    """One category's winner as the combination sees it; `score` is larger-is-better."""

    category: str
    label: str
    option: Mapping[str, Any]
    changes: Mapping[str, Any]
    score: float
    beats_baseline: bool = True
    ran_to_end: bool = True  # False: a pruner stopped it early; it never joins


@dataclass(frozen=True)
class Conflict:
    key: str
    kept_category: str
    kept_value: Any
    dropped_category: str
    dropped_value: Any


@dataclass
class Plan:
    """What `--combine-best` runs for one model and where it saves the config."""

    model: str
    applied: list[Pick]
    skipped: list[tuple[str, str]]  # (category, why)
    changes: dict[str, Any]
    conflicts: list[Conflict]
    config_path: Path
    experiments: list[Experiment] = field(default_factory=list)


def merge(picks: Sequence[Pick]) -> tuple[dict[str, Any], list[Conflict]]:
    """The union of the picks' changes; a shared key goes to the better pick (ties: earlier)."""
    owner: dict[str, Pick] = {}
    conflicts: list[Conflict] = []
    for pick in picks:  # in category order
        for key, value in pick.changes.items():
            held = owner.get(key)
            if held is None:
                owner[key] = pick
                continue
            if held.changes[key] == value:
                continue
            keep, drop = (pick, held) if pick.score > held.score else (held, pick)
            owner[key] = keep
            conflicts.append(Conflict(key, keep.category, keep.changes[key], drop.category,
                                      drop.changes[key]))
    return {key: pick.changes[key] for key, pick in owner.items()}, conflicts


def plan(model: ModelSettings, picks: Sequence[Pick], missing: Sequence[tuple[str, str]],
         reports_dir: Path, repeats: int, first_index: int = 1) -> Plan:
    """The combined experiment(s) of one model: one per repeat, like every other option;
    `missing` is each category without a winner and why (nothing finished, a tie)."""
    applied = [p for p in picks if p.beats_baseline and p.ran_to_end]
    skipped = [(p.category, f"its best {p.label} was pruned (did not run to the end)")
               for p in picks if not p.ran_to_end]
    skipped += [(p.category, f"its winner {p.label} did not beat the baseline")
                for p in picks if p.ran_to_end and not p.beats_baseline]
    skipped += list(missing)
    changes, conflicts = merge(applied)
    option = {"description": "combined winners",
              "winners": {p.category: dict(p.option) for p in applied}}
    job = Job(COMBINED, option, changes, RUN_NAME)
    experiments = [make_experiment(model, job, first_index + r, r, repeats)
                   for r in range(repeats)]
    path = reports_dir / COMBINED / f"{safe_name(model.name)}.yaml"
    return Plan(model.name, applied, skipped, changes, conflicts, path, experiments)


def save_config(combined: Plan) -> Path:
    """The combined config as YAML a user can train from: `python codes/train.py --config it`."""
    config = dict(combined.experiments[0].config)
    lines = [f"# Combined winners for {combined.model} (hyperparameter_system --combine-best).",
             f"# Train from it: python codes/train.py --config {combined.config_path}"]
    lines += [f"#   {p.category}: {p.label}" for p in combined.applied]
    lines += [f"#   conflict on {c.key}: {c.kept_category} kept {c.kept_value!r}, "
              f"{c.dropped_category}'s {c.dropped_value!r} dropped" for c in combined.conflicts]
    text = "\n".join(lines) + "\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    target = file_target(f"system.reports_dir: {combined.config_path}", combined.config_path)
    atomic_write_text(target, text)
    return combined.config_path

"""Ledger rows of another config: runs made with other `--set` values (or an older base config)
than the invocation's. The summary counts only the current matrix; these say what else is there
and the `--set` that shows it again."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpsys_reporter.tracked import flat_keys
from hyperparameter_system.core.configdict import apply_changes, get_dotted
from hyperparameter_system.matrix.experiments import BASELINE, Experiment
from hyperparameter_system.store.row import Row

# keys an experiment sets itself (not what a --set changes)
_OWN_KEYS = ("model_name", "random_seed")


@dataclass(frozen=True)
class OtherConfig:
    """`count` ledger rows whose config differs from the current one by `sets` (KEY=VALUE, as
    `--set` takes them; empty when they differ only by keys the current config lacks)."""

    count: int
    sets: tuple[str, ...]

    @property
    def flags(self) -> str:
        return " ".join(f"--set {s}" for s in self.sets)


def _leaves(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: get_dotted(config, k) for k in flat_keys(config)
            if not isinstance(get_dotted(config, k), Mapping)}


def _set_by(key: str, own: Sequence[str]) -> bool:
    """Whether `key` is one of `own`, or lies under one (an option may set a whole mapping)."""
    return any(key == o or key.startswith(f"{o}.") for o in own)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def other_configs(rows: Sequence[Row], experiments: Sequence[Experiment],
                  own: Iterable[str] = ()) -> list[OtherConfig]:
    """The rows not of `experiments` (the current matrix), grouped by how their config differs
    from the current config of the same model, category and option; most rows first. Rows of
    the `own` categories (combined winners, search trials) are the matrix's own runs, never
    "another config": their configs differ from the baseline by design."""
    current = {e.id for e in experiments}
    skip = set(own)
    twins = {(e.model, e.category, e.option_json): e for e in experiments}
    bases: dict[str, Experiment] = {}  # per model its baseline, else its first experiment
    for e in experiments:
        if e.model not in bases or (e.category == BASELINE
                                    and bases[e.model].category != BASELINE):
            bases[e.model] = e
    groups: Counter[tuple[str, ...]] = Counter()
    for row in rows:
        if row.id in current or row.model not in bases or row.category in skip:
            continue
        twin = twins.get((row.model, row.category, row.option_json or ""))
        if twin is not None:
            ref = _leaves(twin.config)
        else:  # its option is not in the matrix now: compare with the model's config
            first = bases[row.model]
            ref = _leaves(apply_changes(first.config, _changes(row)))
        mine = _leaves(row.config)
        own = (*_OWN_KEYS, *_changes(row))  # dotted keys the option itself sets
        diff = tuple(sorted(f"{k}={_text(v)}" for k, v in mine.items()
                            if not _set_by(k, own) and (k not in ref or ref[k] != v)))
        groups[diff] += 1
    return [OtherConfig(n, sets) for sets, n in groups.most_common()]


def _changes(row: Row) -> dict[str, Any]:
    text = row.changes_json
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

"""The `search:` blocks of the master config: a space over config keys for an Optuna study.

Checked before anything launches, against each searched model's base config and the schema of
its script: an unknown key, a range the engine refuses, `low >= high`, a log range that
touches 0, an objective no result can hold, an unknown sampler, a pruner on a multi-objective
search (Optuna prunes single-objective studies only): one line, exit 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsys_reporter.tracked import flat_keys
from hyperparameter_system import plugins
from hyperparameter_system.config.entries import ConfigGroups, ModelSettings
from hyperparameter_system.config.pruning import PRUNING_KEYS, PruningSettings, read_pruning
from hyperparameter_system.config.reader import Reader, kind_of, resolve
from hyperparameter_system.core.configdict import has_dotted
from hyperparameter_system.core.errors import HpsysError, close_match
from hyperparameter_system.core.states import Direction
from hyperparameter_system.core.yamlfile import YamlDoc, load_yaml

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler",
            "gp": "GPSampler", "nsga2": "NSGAIISampler", "qmc": "QMCSampler",
            "grid": "GridSampler"}
START_FROM = ("baseline", "combined")
# The ledger's category column holds a trial's search name: these are the matrix's own there.
MATRIX_NAMES = ("baseline", "combined")
SEED_MAX = 2**32 - 1  # numpy's (Optuna's samplers seed a numpy RandomState)
# What a result.json can hold (the script contract): its metrics, what was built, its time.
OBJECTIVE_ROOTS = ("metrics.", "effective.", "duration_s")
SEARCH_KEYS = {
    "enabled": (bool,), "description": (str,), "models": (list,), "n_trials": (int,),
    "sampler": (str, dict), "seed": (int, type(None)), "pruner": (dict, str, type(None)),
    "objectives": (dict,), "start_from": (list,), "space": (dict,),
}
SPACE_KEYS = {"low": (int, float), "high": (int, float), "log": (bool,), "step": (int, float),
              "choices": (list,)}


@dataclass(frozen=True)
class Param:
    """One searched key: a float or int range (`log`, `step` as Optuna's), or choices."""

    key: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    # a config group of a composed base (`optimizer: {choices: [sgd, adamw]}`): what each
    # entry changes in the base, the trial's changes instead of the key itself
    group_changes: Mapping[Any, Mapping[str, Any]] = field(default_factory=dict, compare=False)

    def changes(self, value: Any) -> dict[str, Any]:
        """The config changes a trial's value of this key makes."""
        if self.group_changes:
            return dict(self.group_changes[value])
        return {self.key: value}


@dataclass(frozen=True)
class SearchSettings:
    name: str
    enabled: bool
    models: tuple[str, ...]
    n_trials: int
    sampler: str | Mapping[str, Any]
    seed: int | None
    pruner: PruningSettings  # as execution.pruning; rule none: no pruning
    objectives: tuple[tuple[str, Direction], ...]
    start_from: tuple[str, ...]
    space: tuple[Param, ...]
    where: str  # the block's place in the master config, for errors found later

    def study_name(self, model: str) -> str:
        return f"{self.name}/{model}"

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


def read_searches(doc: YamlDoc, data: Any, models: Sequence[ModelSettings],
                  root: Path, categories: Sequence[str] = (),
                  groups: ConfigGroups | None = None) -> tuple[SearchSettings, ...]:
    """Every `search:` block, checked against the models it searches. `categories`: the
    names a search may not take (its trials' ledger rows would be a category's); `groups`:
    the config groups a space key may choose from."""
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise HpsysError(doc.where(("search",)), "expected a mapping of search name to its "
                                                 f"block, got {kind_of(data)}")
    taken = (*MATRIX_NAMES, *categories, *plugins.categories())
    for name in data:
        if str(name) in taken:
            raise HpsysError(doc.where(("search", name)), f"{name!r} names a category (or the "
                             "matrix's baseline/combined); a search needs a name of its own: "
                             "its trials are ledger rows under that name, and --forget "
                             "--categories would take them along")
    return tuple(_search(doc, str(name), body, models, root, groups)
                 for name, body in data.items())


def _search(doc: YamlDoc, name: str, body: Any, models: Sequence[ModelSettings],
            root: Path, groups: ConfigGroups | None = None) -> SearchSettings:
    reader = Reader(doc, ("search", name), body, SEARCH_KEYS)
    known = [m.name for m in models]
    chosen = reader.get("models", None)
    if chosen is not None and not chosen:
        raise HpsysError(reader.where("models"), "expected at least one model (leave models "
                                                 "out to search every enabled model)")
    chosen = chosen or [m.name for m in models if m.enabled]
    for index, model in enumerate(chosen):
        if model not in known:
            raise HpsysError(reader.where("models") + f"[{index}]",
                             f"unknown model {model!r}{close_match(str(model), known)}")
    searched = [m for m in models if m.name in chosen]
    n_trials = reader.number("n_trials", 20, 1)
    space = reader.get("space")
    if not space:
        raise HpsysError(reader.where("space"), "expected a non-empty mapping of config key "
                                                "to its range ({low, high} or {choices})")
    objectives = _objectives(reader)
    return SearchSettings(
        name=name, enabled=reader.get("enabled", True), models=tuple(chosen),
        n_trials=n_trials, sampler=_sampler(reader), seed=_seed(reader, "seed"),
        pruner=_pruner(reader, objectives), objectives=objectives,
        start_from=_start_from(reader, root),
        space=tuple(_param(doc, reader.path + ("space", key), str(key), spec, searched, groups)
                    for key, spec in space.items()),
        where=reader.where(),
    )


def _sampler(reader: Reader) -> str | Mapping[str, Any]:
    sampler = reader.get("sampler", "tpe")
    if isinstance(sampler, str):
        if sampler not in SAMPLERS:
            raise HpsysError(reader.where("sampler"), f"unknown sampler {sampler!r}"
                             f"{close_match(sampler, SAMPLERS)}; expected one of "
                             f"{', '.join(SAMPLERS)} or {{_target_: optuna.samplers.X, ...}}")
        return sampler
    target = sampler.get("_target_")
    cls = target.rsplit(".", 1)[-1] if isinstance(target, str) else None
    if not (isinstance(target, str) and target.startswith("optuna.samplers.")
            and cls in SAMPLERS.values()):
        raise HpsysError(reader.where("sampler"), f"expected _target_: optuna.samplers.<one of "
                         f"{', '.join(SAMPLERS.values())}>, got {target!r}")
    if "seed" in sampler:
        _check_seed(reader.doc.where(reader.path + ("sampler", "seed")), sampler["seed"])
    return dict(sampler)


def _seed(reader: Reader, key: str) -> int | None:
    seed = reader.get(key)
    _check_seed(reader.where(key), seed)
    return seed


def _check_seed(where: str, seed: Any) -> None:
    """A sampler seed: what numpy takes (0 to 2**32-1), told here rather than as a traceback
    at the first trial."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise HpsysError(where, f"expected a seed from 0 to 2**32-1, got {seed!r}")


def _pruner(reader: Reader, objectives: Sequence[tuple[str, Direction]]) -> PruningSettings:
    """The search's pruner; refused on a multi-objective search rather than silently unused
    (Optuna's pruners read one intermediate value per step), and when its monitor runs against
    the objective: Optuna compares intermediate values in the study's direction."""
    raw = reader.get("pruner")
    if raw is None or raw == "none":
        return PruningSettings()
    if isinstance(raw, str):
        raw = {"rule": raw}
    pruner = read_pruning(Reader(reader.doc, reader.path + ("pruner",), raw, PRUNING_KEYS))
    if len(objectives) > 1 and pruner.on:
        raise HpsysError(reader.where("pruner"), "Optuna prunes single-objective studies only; "
                                                 "set pruner: none or keep one objective")
    key, direction = objectives[0]
    if pruner.on and pruner.direction is not direction:
        raise HpsysError(reader.where("pruner"), f"the monitor {pruner.monitor} is better "
                         f"{'larger' if pruner.direction is Direction.MAX else 'smaller'} but "
                         f"the objective {key} is {direction}imised: Optuna would prune the "
                         "best trials; monitor a key that goes the objective's way")
    return pruner


def _objectives(reader: Reader) -> tuple[tuple[str, Direction], ...]:
    raw = reader.get("objectives", {"metrics.best_val_f1": "max"})
    if not raw:
        raise HpsysError(reader.where("objectives"), "expected at least one objective, e.g. "
                                                     "{metrics.best_val_f1: max}")
    out = []
    for key, direction in raw.items():
        where = reader.doc.where(reader.path + ("objectives", key))
        if not _objective_key(key):
            raise HpsysError(where, "expected a dotted key of result.json under metrics. or "
                                    "effective. (or duration_s): no result holds this one")
        if direction not in tuple(Direction):
            raise HpsysError(where, f"expected the direction max or min, got {direction!r}")
        out.append((key, Direction(direction)))
    return tuple(out)


def _objective_key(key: Any) -> bool:
    """`duration_s`, or a whole dotted name under `metrics.`/`effective.` (no empty part)."""
    if key == "duration_s":
        return True
    if not isinstance(key, str) or not key.startswith(OBJECTIVE_ROOTS[:2]):
        return False
    return all(part.strip() for part in key.split("."))


def _start_from(reader: Reader, root: Path) -> tuple[str, ...]:
    out = []
    for index, item in enumerate(reader.get("start_from", [])):
        where = reader.where("start_from") + f"[{index}]"
        if not isinstance(item, str):
            raise HpsysError(where, f"expected baseline, combined or a YAML path, got {item!r}")
        if item not in START_FROM:
            path = resolve(root, item)
            if not path.is_file():
                raise HpsysError(where, f"expected baseline, combined or an existing YAML "
                                        f"file, got {item!r}")
            try:
                data = load_yaml(path).data
            except HpsysError as exc:  # broken YAML: the key, the file and its line
                raise HpsysError(where, f"cannot read {item!r} as a config: {exc}") from None
            if not isinstance(data, Mapping):
                raise HpsysError(where, f"expected a YAML file holding a config mapping, got "
                                        f"{kind_of(data)} in {item!r}")
            item = str(path)
        out.append(item)
    return tuple(out)


def _group_param(reader: Reader, key: str, entries: Sequence[str],
                 groups: ConfigGroups) -> Param:
    """A space key naming a config group: its choices are the group's entries."""
    choices = tuple(reader.get("choices") or ())
    if not choices or set(reader.data) - {"choices"}:
        raise HpsysError(reader.where(), f"'{key}' is a config group: expected {{choices: "
                                         f"[...]}} of its entries ({', '.join(entries)})")
    for value in choices:
        if value not in entries:
            raise HpsysError(reader.where("choices"), f"unknown {key} choice {value!r}"
                             f"{close_match(str(value), entries)}; expected one of "
                             f"{', '.join(entries)} (the config group {key}/)")
    return Param(key, "categorical", choices=choices,
                 group_changes={c: groups.changes(key, str(c)) for c in choices})


def _param(doc: YamlDoc, path: tuple, key: str, spec: Any,
           models: Sequence[ModelSettings], groups: ConfigGroups | None = None) -> Param:
    reader = Reader(doc, path, spec, SPACE_KEYS)
    where = reader.where()
    entries = groups.entries(key) if groups is not None else None
    if entries is not None and groups is not None:
        return _group_param(reader, key, entries, groups)
    for model in models:
        schema_knows = model.schema is not None and model.schema.known(key)
        if not (has_dotted(model.base, key) or schema_knows):
            raise HpsysError(where, f"'{key}' is not a key of {model.name}'s base config"
                                    f"{close_match(key, flat_keys(model.base))}")
    if "choices" in spec:
        if {"low", "high", "log", "step"} & set(spec):
            raise HpsysError(where, "expected either choices or low/high, not both")
        choices = tuple(reader.get("choices"))
        if not choices:
            raise HpsysError(reader.where("choices"), "expected at least one choice")
        for value in choices:
            _engine_accepts(models, key, value, reader.where("choices"))
        return Param(key, "categorical", choices=choices)
    if "low" not in spec or "high" not in spec:
        raise HpsysError(where, "expected {low, high} (with log or step) or {choices: [...]}")
    low, high = reader.get("low"), reader.get("high")
    log, step = reader.get("log", False), reader.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and not math.isfinite(value):
            raise HpsysError(reader.where(name), f"expected a finite number, got {value!r}")
    if low >= high:
        raise HpsysError(where, f"expected low < high, got low {low!r} and high {high!r}")
    if log and low <= 0:
        raise HpsysError(reader.where("low"), f"a log range must be above 0, got low {low!r}")
    if log and step is not None:
        raise HpsysError(where, "expected log or step, not both (Optuna takes one)")
    if step is not None and step <= 0:
        raise HpsysError(reader.where("step"), f"expected a step > 0, got {step!r}")
    ints = isinstance(low, int) and isinstance(high, int) and (
        isinstance(step, int) or (step is None and _int_only(models, key)))
    for name, value in (("low", low), ("high", high)):
        _engine_accepts(models, key, value, reader.where(name))
    if not ints and _int_only(models, key):
        raise HpsysError(where, f"'{key}' takes integers: give integer low, high (and step)")
    return Param(key, "int" if ints else "float", low, high, log, step)


def _int_only(models: Sequence[ModelSettings], key: str) -> bool:
    """Whether the engine takes only integers for `key` (a float range would be refused)."""
    for model in models:
        types = (model.schema.keys.get(key) or {}).get("type", []) if model.schema else []
        if "int" in types and "number" not in types:
            return True
    return False


def _engine_accepts(models: Sequence[ModelSettings], key: str, value: Any, where: str) -> None:
    for model in models:
        problem = model.schema.problem(key, value) if model.schema is not None else None
        if problem is not None:
            raise HpsysError(where, f"{problem} ({model.name}'s script would refuse it)")

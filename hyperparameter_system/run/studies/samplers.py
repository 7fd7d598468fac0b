"""A search's sampler, built from its `sampler:` and `seed:`, and checked by building it once
before anything launches."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import optuna

from hyperparameter_system.config.search_blocks import SAMPLERS, SearchSettings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.run.studies.grid import GridToItsSize, grid_points, grid_values
from hyperparameter_system.run.studies.pruners import make_pruner
from hyperparameter_system.run.studies.seed_per_trial import SeedPerTrial

# Samplers whose package Optuna imports only at the first trial (not at construction).
NEEDS = {"CmaEsSampler": ("cmaes",), "GPSampler": ("torch", "scipy")}


def make_sampler(search: SearchSettings) -> optuna.samplers.BaseSampler:
    """The search's sampler (`tpe`, `random`, ... or `{_target_: optuna.samplers.X, ...}`).

    With a seed, each trial is sampled by a sampler seeded from it and the trial's number
    (`SeedPerTrial`): a resumed search, or a second runner on a shared study, goes on with new
    numbers and so new settings, while a run from an empty study repeats exactly. QMC and grid
    keep their one seed: QMC's position in its sequence is counted in the storage, and a
    grid's seed shuffles the grid every worker must share.
    """
    name, kwargs = _arguments(search)
    seed = kwargs.pop("seed", search.seed)
    if name in ("QMCSampler", "GridSampler") or seed is None:
        return _build(search, name, {**kwargs, "seed": seed})
    return SeedPerTrial(lambda trial_seed: _build(search, name, {**kwargs, "seed": trial_seed}),
                        seed)


def check_sampler(search: SearchSettings) -> None:
    """Build the search's sampler and pruner once, before anything launches: an argument
    Optuna refuses, or a package its sampler needs and lacks, is bad input, one line naming
    the key and what Optuna said."""
    name, kwargs = _arguments(search)
    missing = [pkg for pkg in NEEDS.get(name, ()) if importlib.util.find_spec(pkg) is None]
    if missing:
        raise HpsysError(f"{search.where}.sampler", f"{name} needs the package "
                         f"{missing[0]!r}, which is not installed (pip install {missing[0]})")
    if search.pruner.on:
        make_pruner(search.pruner)
    try:
        _build(search, name, kwargs if "seed" in kwargs else {**kwargs, "seed": search.seed})
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, ImportError alike
        cause = exc.__cause__ or exc  # what Optuna said, under Hydra's InstantiationException
        said = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise HpsysError(f"{search.where}.sampler", f"Optuna refused {name}: {said}") from None


def grid_size(search: SearchSettings) -> int | None:
    """How many settings a grid search holds (None: not a grid), so a search stops there."""
    name, kwargs = _arguments(search)
    if name != "GridSampler":
        return None
    return grid_points(kwargs.get("search_space") or _grid_space(search))


def _arguments(search: SearchSettings) -> tuple[str, dict[str, Any]]:
    if isinstance(search.sampler, str):
        return SAMPLERS[search.sampler], {}
    kwargs = {k: v for k, v in search.sampler.items() if k != "_target_"}
    return str(search.sampler["_target_"]).rsplit(".", 1)[-1], kwargs


def _grid_space(search: SearchSettings) -> dict[str, list[Any]]:
    return {p.key: list(grid_values(p)) for p in search.space}


def _build(search: SearchSettings, name: str, kwargs: dict[str, Any]
           ) -> optuna.samplers.BaseSampler:
    """The sampler built as Hydra builds a `_target_` (hydra.utils.instantiate): the engine's
    custom objects are built the same way."""
    from hydra.utils import instantiate

    cls = GridToItsSize if name == "GridSampler" else getattr(optuna.samplers, name)
    if name == "GridSampler":
        kwargs.setdefault("search_space", _grid_space(search))
    target = f"{cls.__module__}.{cls.__qualname__}"
    with warnings.catch_warnings():  # QMC and GP are marked experimental: not the user's news
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return instantiate({"_target_": target, **kwargs}, _convert_="all")

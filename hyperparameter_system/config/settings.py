"""Load and validate experiment_config.yaml into typed settings, before anything is launched.

Every problem is an HpsysError naming the file, the line and the key path. A master config
written for the original system (base_config_template, project_naming, temp_config_dir,
results_tracking, execution.save_logs) loads unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperparameter_system.config.entries import (
    PYTHON_ALIASES,
    CategorySettings,
    ConfigGroups,
    ModelSettings,
    check_option_rules,
    read_categories,
    read_models,
    read_sweeps,
)
from hyperparameter_system.config.pruning import (
    PRUNING_KEYS,
    PRUNING_RULES,
    PruningSettings,
    read_pruning,
)
from hyperparameter_system.config.racing import RaceRule, read_budget, read_repeats
from hyperparameter_system.config.reader import Reader, resolve
from hyperparameter_system.config.search_blocks import SearchSettings, read_searches
from hyperparameter_system.config.slurm import SLURM_KEYS, SlurmSettings, read_slurm
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.core.yamlfile import YamlDoc, load_yaml

__all__ = ["PYTHON_ALIASES", "CategorySettings", "ExecutionSettings", "ModelSettings",
           "PRUNING_RULES", "PruningSettings",
           "Settings", "SystemSettings", "load_settings"]

WANDB_MODES = ("online", "offline", "disabled")


# execution.preload's default: what the built-in trainer imports (run/preload.py forks from them)
# Hydra's: the engine builds `_target_`s and reads `KEY=VALUE` with it (hpsys_reporter)
DEFAULT_PRELOAD = ("torch", "timm", "torchvision", "wandb", "matplotlib", "sklearn.metrics",
                   "hydra.utils", "hydra.core.override_parser.overrides_parser")


@dataclass(frozen=True)
class SystemSettings:
    base_config: Path
    temp_config_dir: Path
    keep_temp_configs: bool
    ledger: Path
    runs_dir: Path
    reports_dir: Path
    metric: str
    metric_mode: str
    baseline: bool
    wandb_mode: str | None
    wandb_entity: str | None
    optuna_storage: str = ""  # the pruning studies (default sqlite:///<runs_dir>/optuna.db)


@dataclass(frozen=True)
class ExecutionSettings:
    max_parallel: int = 1
    experiment_timeout: float | None = None
    retry_failed: int = 0
    executor: str = "local"
    ray_address: str | None = None
    gpus: str | tuple[int | str, ...] = "auto"
    gpus_per_experiment: int = 1
    experiments_per_gpu: int = 1
    repeats: int = 1  # seeds per option in the matrix: the fixed count, or the race's max
    race: RaceRule | None = None  # adaptive repeats: seeds raced per pool (matrix/racing.py)
    budget_s: float | None = None  # launch nothing whose estimated end passes this
    combine_leaders: bool = False  # --combine-best applies leading options too, labelled so
    min_free_gb: float = 1.0
    retry_oom_halving: bool = False
    heartbeat_s: float = 2.0
    stale_after_s: float = 30.0
    cpus_per_experiment: float = 1.0
    ray_resources: Mapping[str, float] = field(default_factory=dict)
    ray_runtime_env: Mapping[str, Any] | None = None
    stop_grace_s: float = 30.0  # after a stop request, then the process group is ended
    pruning: PruningSettings = field(default_factory=PruningSettings)
    preload: tuple[str, ...] = ()  # modules the server imports; () = plain subprocesses
    preload_all: bool = False  # every `python X.py` script, not the built-in trainer's alone
    slurm: SlurmSettings = field(default_factory=SlurmSettings)  # executor: slurm's jobs

    @property
    def max_attempts(self) -> int:
        return 1 + self.retry_failed

    @property
    def combined_seeds(self) -> int:
        """Seeds a combined config runs: the fixed count, or the race's min."""
        return self.race.min_seeds if self.race else self.repeats


@dataclass(frozen=True)
class Settings:
    path: Path
    root: Path
    system: SystemSettings
    models: tuple[ModelSettings, ...]
    categories: tuple[CategorySettings, ...]
    execution: ExecutionSettings
    overrides: tuple[tuple[str, str], ...] = ()  # (where it was given, key=value)
    searches: tuple[SearchSettings, ...] = ()  # the `search:` blocks (Optuna studies)

    def model(self, name: str) -> ModelSettings:
        return next(m for m in self.models if m.name == name)

    def category(self, name: str) -> CategorySettings:
        return next(c for c in self.categories if c.name == name)


TOP_KEYS = ("system", "models", "experiment_categories", "execution", "search")
SYSTEM_KEYS = {
    "base_config": (str,), "base_config_template": (str,), "temp_config_dir": (str,),
    "keep_temp_configs": (bool,), "ledger": (str,), "runs_dir": (str,), "reports_dir": (str,),
    "metric": (str,), "metric_mode": (str,), "baseline": (bool,), "wandb_mode": (str, type(None)),
    "wandb_entity": (str, type(None)), "project_root": (str,), "project_naming": (str,),
    "results_tracking": (bool, dict), "overrides": (list,),
    "optuna_storage": (str, type(None)),
}
EXECUTION_KEYS = {
    "max_parallel": (int,), "experiment_timeout": (int, float, type(None)),
    "retry_failed": (bool, int), "save_logs": (bool,), "executor": (str,),
    "ray_address": (str, type(None)), "gpus": (str, list, type(None)),
    "gpus_per_experiment": (int,), "experiments_per_gpu": (int,), "repeats": (int, dict),
    "budget": (str, int, float, type(None)), "combine_leaders": (bool,),
    "min_free_gb": (int, float), "retry_oom_halving": (bool,), "heartbeat_s": (int, float),
    "stale_after_s": (int, float), "cpus_per_experiment": (int, float),
    "stop_grace_s": (int, float), "pruning": (dict, type(None)),
    "ray_resources": (dict,), "ray_runtime_env": (dict, type(None)),
    "preload": (bool, str, list), "slurm": (dict, type(None)),
}
def load_settings(path: str | Path, overrides: Sequence[str] = (),
                  sweeps: Sequence[str] = ()) -> Settings:
    """Read, type-check and cross-check the master config; `overrides` apply to base configs;
    `sweeps` (`--sweep lr=1e-3,3e-3`) are this invocation's categories (read_sweeps)."""
    doc = load_yaml(path, "master config")
    if doc.data is None:
        raise HpsysError(str(doc.path), "master config is empty")
    top = Reader(doc, (), doc.data, {k: (dict, list, type(None)) for k in TOP_KEYS})
    sysr = Reader(doc, ("system",), top.data.get("system") or {}, SYSTEM_KEYS)
    root = _project_root(sysr)
    system = _system(sysr, root)
    execution = _execution(Reader(doc, ("execution",), top.data.get("execution") or {},
                                   EXECUTION_KEYS))
    _check_race_baseline(execution, system, doc)
    every_override = _overrides(sysr, overrides)
    cache: dict[Path, Mapping[str, Any]] = {}
    models = read_models(doc, top.data.get("models"), root, system, every_override, cache)
    groups = ConfigGroups(models, every_override, cache)
    categories = _categories(doc, top.data.get("experiment_categories"), models, groups, sweeps)
    check_option_rules(doc, models, categories)
    searches = read_searches(doc, top.data.get("search"), models, root,
                             [c.name for c in categories], groups)
    return Settings(doc.path.resolve(), root, system, models, categories, execution,
                    tuple(every_override), searches)


def _project_root(sysr: Reader) -> Path:
    """Relative paths resolve against system.project_root (itself relative to this file), else
    against the directory the runner was started from, as in the original ("run from the
    root")."""
    root_key = sysr.get("project_root")
    return (sysr.doc.path.parent / root_key).resolve() if root_key else Path.cwd()


def _system(sysr: Reader, root: Path) -> SystemSettings:
    base_default = sysr.get("base_config", sysr.get("base_config_template", "codes/config_v2.yaml"))
    return SystemSettings(
        base_config=resolve(root, base_default),
        temp_config_dir=resolve(root, sysr.get("temp_config_dir", "temp_configs")),
        keep_temp_configs=sysr.get("keep_temp_configs", True),
        ledger=resolve(root, sysr.get("ledger", "experiments.db")),
        runs_dir=resolve(root, sysr.get("runs_dir", "runs")),
        reports_dir=resolve(root, sysr.get("reports_dir", "reports")),
        metric=sysr.get("metric", "metrics.best_val_f1"),
        metric_mode=sysr.choice("metric_mode", "max", ("max", "min")),
        baseline=sysr.get("baseline", True),
        wandb_mode=sysr.choice("wandb_mode", None, (*WANDB_MODES, None)),
        wandb_entity=sysr.get("wandb_entity"),
        optuna_storage=sysr.get("optuna_storage") or
        f"sqlite:///{resolve(root, sysr.get('runs_dir', 'runs')).resolve()}/optuna.db",
    )


def _check_race_baseline(execution: ExecutionSettings, system: SystemSettings,
                         doc: YamlDoc) -> None:
    """A race has nothing to race against without the baseline runs."""
    if execution.race is not None and not system.baseline:
        raise HpsysError(doc.where(("execution", "repeats")),
                         "adaptive repeats race each option against its model's baseline; set "
                         "system.baseline: true, or a fixed count of repeats")


def _overrides(sysr: Reader, given: Sequence[str]) -> list[tuple[str, str]]:
    """system.overrides, then `--set` (which wins), each with where it was given: an error
    tells them apart."""
    file_overrides = sysr.get("overrides", [])
    if not all(isinstance(o, str) for o in file_overrides):
        raise HpsysError(sysr.where("overrides"), "expected a list of key=value strings")
    return [*((f"{sysr.where('overrides')}[{i}] {o}", o) for i, o in enumerate(file_overrides)),
            *((f"--set {o}", o) for o in given)]


def _categories(doc: YamlDoc, data: Any, models: Sequence[ModelSettings], groups: ConfigGroups,
                sweeps: Sequence[str]) -> tuple[CategorySettings, ...]:
    """The declared categories, or the `--sweep` ones, checked against the enabled models."""
    enabled = [m for m in models if m.enabled]
    schemas = list({id(m.schema): m.schema for m in enabled if m.schema is not None}.values())
    declared, swept = read_sweeps(data, sweeps, groups)
    return read_categories(doc, declared, [m.base for m in enabled], schemas, groups, swept)


def _execution(reader: Reader) -> ExecutionSettings:
    retry = _retry_failed(reader)
    gpus = _gpus(reader)
    timeout = _experiment_timeout(reader)
    repeats, race = read_repeats(reader)
    return ExecutionSettings(
        max_parallel=reader.number("max_parallel", 1, 1),
        experiment_timeout=timeout,
        retry_failed=int(retry),
        executor=reader.choice("executor", "local", ("local", "ray", "slurm")),
        ray_address=reader.get("ray_address") or None,
        gpus=gpus,
        gpus_per_experiment=reader.number("gpus_per_experiment", 1, 1),
        experiments_per_gpu=reader.number("experiments_per_gpu", 1, 1),
        repeats=repeats,
        race=race,
        budget_s=read_budget(reader),
        combine_leaders=reader.get("combine_leaders", False),
        min_free_gb=reader.number("min_free_gb", 1.0, 0),
        retry_oom_halving=reader.get("retry_oom_halving", False),
        heartbeat_s=reader.number("heartbeat_s", 2.0, 0.1),
        stale_after_s=reader.number("stale_after_s", 30.0, 1),
        cpus_per_experiment=reader.number("cpus_per_experiment", 1.0, 0),
        stop_grace_s=reader.number("stop_grace_s", 30.0, 0),
        ray_resources=_ray_resources(reader),
        ray_runtime_env=reader.get("ray_runtime_env"),
        pruning=read_pruning(Reader(reader.doc, (*reader.path, "pruning"),
                                reader.get("pruning") or {}, PRUNING_KEYS)),
        preload=_preload(reader),
        preload_all=reader.get("preload", "auto") != "auto",
        slurm=read_slurm(Reader(reader.doc, (*reader.path, "slurm"), reader.get("slurm") or {},
                                SLURM_KEYS)),
    )


def _retry_failed(reader: Reader) -> bool | int:
    """execution.retry_failed: true/false as the original wrote it, or a count of retries."""
    retry = reader.get("retry_failed", False)
    if not isinstance(retry, bool) and retry < 0:
        raise HpsysError(reader.where("retry_failed"), f"expected true, false or a count >= 0, "
                                                      f"got {retry!r}")
    return retry


def _gpus(reader: Reader) -> str | tuple[int | str, ...]:
    """execution.gpus: `auto` (found at launch), none (or null: no GPU) or the devices to use."""
    gpus = reader.get("gpus", "auto")
    if gpus is None or gpus == "none":
        return ()
    if isinstance(gpus, str):
        if gpus != "auto":
            raise HpsysError(reader.where("gpus"), "expected auto, none or a list of GPU indices")
        return gpus
    if not all(_is_device(g) for g in gpus):
        raise HpsysError(reader.where("gpus"),
                         f"expected GPU indices >= 0 or GPU-/MIG- UUIDs, got {gpus!r}")
    return tuple(gpus)


def _is_device(gpu: Any) -> bool:
    """An index, or a GPU-/MIG- UUID as CUDA_VISIBLE_DEVICES takes it."""
    if isinstance(gpu, str):
        return gpu.startswith(("GPU-", "MIG-"))
    return isinstance(gpu, int) and not isinstance(gpu, bool) and gpu >= 0


def _experiment_timeout(reader: Reader) -> float | None:
    timeout = reader.get("experiment_timeout")
    if timeout is not None and timeout <= 0:
        raise HpsysError(reader.where("experiment_timeout"),
                         f"expected seconds > 0 or null, got {timeout!r}")
    return timeout


def _preload(reader: Reader) -> tuple[str, ...]:
    """execution.preload: `auto` (the default: the built-in trainer's experiments fork from a
    server that imported DEFAULT_PRELOAD; other scripts start plain, as the heavy imports would
    be theirs to pay for nothing), true (those modules, for every `python X.py` script), false
    (plain subprocesses), or a list of module names (for every `python X.py` script)."""
    value = reader.get("preload", "auto")
    if value == "auto" or value is True:
        return DEFAULT_PRELOAD
    if value is False:
        return ()
    if isinstance(value, str) or not all(
            isinstance(m, str) and m and all(p.isidentifier() for p in m.split("."))
            for m in value):
        raise HpsysError(reader.where("preload"),
                         f"expected auto, true, false or a list of module names, got {value!r}")
    return tuple(value)


def _ray_resources(reader: Reader) -> dict[str, float]:
    """Custom Ray resources each experiment asks for, e.g. {accelerator_type_A100: 1}."""
    resources = reader.get("ray_resources", {})
    for name, amount in resources.items():
        if (isinstance(amount, bool) or not isinstance(amount, int | float)
                or not math.isfinite(amount) or amount < 0):
            raise HpsysError(reader.where("ray_resources"),
                             f"expected a number >= 0 for resource '{name}', got {amount!r}")
    return {str(k): float(v) for k, v in resources.items()}

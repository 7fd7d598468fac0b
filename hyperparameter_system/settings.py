"""Load and validate experiment_config.yaml into typed settings, before anything is launched.

Every problem is an HpsysError naming the file, the line and the key path. A master config
written for the original system (base_config_template, project_naming, temp_config_dir,
results_tracking, execution.save_logs) loads unchanged.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperparameter_system import plugins
from hyperparameter_system.categories.base import Category, Locate, YamlCategory
from hyperparameter_system.configdict import (
    apply_overrides,
    canonical,
    flat_keys,
    get_dotted,
    has_dotted,
    override_key,
)
from hyperparameter_system.errors import HpsysError, close_match
from hyperparameter_system.yamlfile import KeyPath, YamlDoc, load_yaml

WANDB_MODES = ("online", "offline", "disabled")
PYTHON_ALIASES = ("python", "python3")  # a leading `python` means the runner's own interpreter


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


@dataclass(frozen=True)
class ModelSettings:
    name: str
    enabled: bool
    base_config: Path
    script: tuple[str, ...]
    description: str
    base: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    problem: HpsysError | None = field(default=None, compare=False, repr=False)

    @property
    def project(self) -> str:
        """W&B project: the model name with `.`, `-` and `/` turned into `_`."""
        return self.name.replace(".", "_").replace("-", "_").replace("/", "_")

    def checked(self) -> ModelSettings:
        """This model, or the error it holds: a disabled entry's problem (a missing script, a
        base config that does not load) is told when the entry is picked, before any launch."""
        if self.problem is not None:
            raise self.problem
        return self


@dataclass(frozen=True)
class CategorySettings:
    name: str
    enabled: bool
    description: str
    options: tuple[Mapping[str, Any], ...]
    plugin: Category = field(compare=False, repr=False)
    problem: HpsysError | None = field(default=None, compare=False, repr=False)

    def checked(self) -> CategorySettings:
        """This category, or the error its options hold (told when a disabled one is picked)."""
        if self.problem is not None:
            raise self.problem
        return self


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
    repeats: int = 1
    min_free_gb: float = 0.0
    retry_oom_halving: bool = False
    heartbeat_s: float = 2.0
    stale_after_s: float = 30.0
    cpus_per_experiment: float = 1.0
    ray_resources: Mapping[str, float] = field(default_factory=dict)
    ray_runtime_env: Mapping[str, Any] | None = None

    @property
    def max_attempts(self) -> int:
        return 1 + self.retry_failed


@dataclass(frozen=True)
class Settings:
    path: Path
    root: Path
    system: SystemSettings
    models: tuple[ModelSettings, ...]
    categories: tuple[CategorySettings, ...]
    execution: ExecutionSettings
    overrides: tuple[tuple[str, str], ...] = ()  # (where it was given, key=value)

    def model(self, name: str) -> ModelSettings:
        return next(m for m in self.models if m.name == name)

    def category(self, name: str) -> CategorySettings:
        return next(c for c in self.categories if c.name == name)


TOP_KEYS = ("system", "models", "experiment_categories", "execution")
SYSTEM_KEYS = {
    "base_config": (str,), "base_config_template": (str,), "temp_config_dir": (str,),
    "keep_temp_configs": (bool,), "ledger": (str,), "runs_dir": (str,), "reports_dir": (str,),
    "metric": (str,), "metric_mode": (str,), "baseline": (bool,), "wandb_mode": (str, type(None)),
    "wandb_entity": (str, type(None)), "project_root": (str,), "project_naming": (str,),
    "results_tracking": (bool, dict), "overrides": (list,),
}
MODEL_KEYS = {
    "name": (str,), "enabled": (bool,), "base_config": (str,), "script": (str, list),
    "description": (str,),
}
CATEGORY_KEYS = {"enabled": (bool,), "description": (str,), "options": (list,)}
EXECUTION_KEYS = {
    "max_parallel": (int,), "experiment_timeout": (int, float, type(None)),
    "retry_failed": (bool, int), "save_logs": (bool,), "executor": (str,),
    "ray_address": (str, type(None)), "gpus": (str, list, type(None)),
    "gpus_per_experiment": (int,), "experiments_per_gpu": (int,), "repeats": (int,),
    "min_free_gb": (int, float), "retry_oom_halving": (bool,), "heartbeat_s": (int, float),
    "stale_after_s": (int, float), "cpus_per_experiment": (int, float),
    "ray_resources": (dict,), "ray_runtime_env": (dict, type(None)),
}
TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
              list: "a list", dict: "a mapping", type(None): "null"}


class _Reader:
    """Typed access to one section of the document, with errors that point at the line."""

    def __init__(self, doc: YamlDoc, path: KeyPath, data: Any, schema: Mapping[str, tuple]):
        self.doc, self.path, self.schema = doc, path, schema
        if not isinstance(data, Mapping):
            raise HpsysError(doc.where(path), f"expected a mapping, got {_kind(data)}")
        self.data = data
        for key in data:
            if key not in schema:
                raise HpsysError(
                    doc.where(path + (key,)),
                    f"unknown key{close_match(key, schema)}; expected one of {', '.join(schema)}",
                )

    def where(self, key: str | int | None = None) -> str:
        return self.doc.where(self.path + ((key,) if key is not None else ()))

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        kinds = self.schema[key]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            expected = " or ".join(TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise HpsysError(self.where(key), f"expected {expected}, got {value!r}")
        return value

    def number(self, key: str, default: Any, minimum: float) -> Any:
        value = self.get(key, default)
        if value is not None and value < minimum:
            raise HpsysError(self.where(key), f"expected a value >= {minimum}, got {value!r}")
        return value

    def choice(self, key: str, default: Any, choices: Sequence[Any]) -> Any:
        value = self.get(key, default)
        if value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            raise HpsysError(
                self.where(key), f"expected one of {shown}{close_match(value, map(str, choices))}"
            )
        return value


def _kind(value: Any) -> str:
    return TYPE_NAMES.get(type(value), type(value).__name__)


def _resolve(root: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else root / path


def _script(reader: _Reader) -> tuple[str, ...]:
    """The model's command as argv (a string is split as a shell would, never run by one)."""
    raw = reader.get("script")
    if raw is None:
        raise HpsysError(reader.where(), "missing required key 'script'")
    try:
        argv = tuple(shlex.split(raw)) if isinstance(raw, str) else tuple(str(a) for a in raw)
    except ValueError as exc:
        raise HpsysError(reader.where("script"), f"cannot split the command: {exc}") from None
    if not argv:
        raise HpsysError(reader.where("script"), "expected a command, got an empty one")
    return argv


def _check_script(reader: _Reader, root: Path, argv: tuple[str, ...]) -> None:
    """The command and the .py/.sh files it names exist (and the command can run)."""
    try:
        _check_command(reader, root, argv)
    except OSError as exc:  # a name the OS refuses to look up (too long, ...)
        raise HpsysError(reader.where("script"),
                         f"cannot look the script up: {exc.strerror or exc}") from None


def _check_command(reader: _Reader, root: Path, argv: tuple[str, ...]) -> None:
    head = argv[0]
    if head not in PYTHON_ALIASES:
        path = _resolve(root, head)
        if "/" in head or path.exists():
            if not path.is_file():
                raise HpsysError(reader.where("script"), f"script '{head}' does not exist")
            if not os.access(path, os.X_OK):
                raise HpsysError(
                    reader.where("script"),
                    f"script '{head}' is not executable (run: chmod +x {head})",
                )
        elif shutil.which(head) is None:
            raise HpsysError(reader.where("script"), f"command '{head}' not found on PATH")
    for arg in argv[1:]:
        if arg.endswith((".py", ".sh")) and not _resolve(root, arg).is_file():
            raise HpsysError(reader.where("script"), f"script '{arg}' does not exist")


def _base_config(path: Path, overrides: Sequence[tuple[str, str]], cache: dict,
                 where: str | None = None) -> Mapping[str, Any]:
    """The base config with the overrides applied; a load error is told at `where` (the model's
    base_config key), an override error at the override itself (`--set` or system.overrides)."""
    if path not in cache:
        try:
            doc = load_yaml(path, "base config")
            if not isinstance(doc.data, Mapping):
                raise HpsysError(str(path), f"base config must be a mapping, got "
                                            f"{_kind(doc.data)}")
        except HpsysError as exc:
            if where is None:
                raise
            raise HpsysError(where, str(exc)) from None
        config: Mapping[str, Any] = doc.data
        set_by: list[tuple[str, str]] = []  # (key, the override's location), in order
        for origin, text in overrides:
            at = f"{origin} (on {path})"
            config = apply_overrides(config, [text], at)
            set_by.append((override_key(text), at))
        _check_names(config, set_by, doc)
        cache[path] = config
    return cache[path]


def _check_names(config: Mapping[str, Any], set_by: Sequence[tuple[str, str]],
                 doc: YamlDoc) -> None:
    """A name the built-in categories check in an option (optimizer_name, scheduler_name,
    criterion) is checked in the base config too, as the overrides left it: told at the last
    override that set it, else at the base config's key."""
    for category in plugins.categories().values():
        for param in category.params:
            if not (param.listed or param.choices):
                continue
            value = get_dotted(config, param.target, None)
            if not isinstance(value, str):
                continue
            where = next((at for key, at in reversed(set_by)
                          if param.target == key or param.target.startswith(f"{key}.")),
                         None)
            param.check(value, where or doc.where(tuple(param.target.split("."))))


def load_settings(path: str | Path, overrides: Sequence[str] = ()) -> Settings:
    """Read, type-check and cross-check the master config; `overrides` apply to base configs."""
    doc = load_yaml(path, "master config")
    if doc.data is None:
        raise HpsysError(str(doc.path), "master config is empty")
    top = _Reader(doc, (), doc.data, {k: (dict, list, type(None)) for k in TOP_KEYS})
    sysr = _Reader(doc, ("system",), top.data.get("system") or {}, SYSTEM_KEYS)
    # Relative paths resolve against system.project_root (itself relative to this file), else
    # against the directory the runner was started from, as in the original ("run from the root").
    root_key = sysr.get("project_root")
    root = (doc.path.parent / root_key).resolve() if root_key else Path.cwd()
    base_default = sysr.get("base_config", sysr.get("base_config_template", "codes/config_v2.yaml"))
    system = SystemSettings(
        base_config=_resolve(root, base_default),
        temp_config_dir=_resolve(root, sysr.get("temp_config_dir", "temp_configs")),
        keep_temp_configs=sysr.get("keep_temp_configs", True),
        ledger=_resolve(root, sysr.get("ledger", "experiments.db")),
        runs_dir=_resolve(root, sysr.get("runs_dir", "runs")),
        reports_dir=_resolve(root, sysr.get("reports_dir", "reports")),
        metric=sysr.get("metric", "metrics.best_val_f1"),
        metric_mode=sysr.choice("metric_mode", "max", ("max", "min")),
        baseline=sysr.get("baseline", True),
        wandb_mode=sysr.choice("wandb_mode", None, (*WANDB_MODES, None)),
        wandb_entity=sysr.get("wandb_entity"),
    )
    execution = _execution(_Reader(doc, ("execution",), top.data.get("execution") or {},
                                   EXECUTION_KEYS))
    cache: dict[Path, Mapping[str, Any]] = {}
    file_overrides = sysr.get("overrides", [])
    if not all(isinstance(o, str) for o in file_overrides):
        raise HpsysError(sysr.where("overrides"), "expected a list of key=value strings")
    # --set wins over system.overrides; each is told apart in errors
    overrides = [*((sysr.where("overrides"), o) for o in file_overrides),
                 *((f"--set {o}", o) for o in overrides)]
    models = _models(doc, top.data.get("models"), root, system, overrides, cache)
    bases = [m.base for m in models if m.enabled]
    categories = _categories(doc, top.data.get("experiment_categories"), bases)
    return Settings(doc.path.resolve(), root, system, models, categories, execution,
                    tuple(overrides))


def _models(doc, data, root, system, overrides, cache) -> tuple[ModelSettings, ...]:
    if not isinstance(data, list) or not data:
        raise HpsysError(doc.where(("models",)), "expected a non-empty list of models")
    models: list[ModelSettings] = []
    for index, item in enumerate(data):
        reader = _Reader(doc, ("models", index), item, MODEL_KEYS)
        name = reader.get("name")
        if not name:
            raise HpsysError(reader.where(), "missing required key 'name'")
        if any(m.name == name for m in models):
            raise HpsysError(reader.where("name"), f"model '{name}' is listed twice")
        enabled = reader.get("enabled", True)
        base_path = _resolve(root, reader.get("base_config", str(system.base_config)))
        script = _script(reader)
        base: Mapping[str, Any] = {}
        problem = None
        try:  # a disabled model keeps its problem until it is picked
            base = _base_config(base_path, overrides, cache, reader.where("base_config"))
            _check_script(reader, root, script)
        except HpsysError as exc:
            if enabled:
                raise
            problem = exc
        models.append(ModelSettings(
            name=str(name), enabled=enabled, base_config=base_path, script=script,
            description=reader.get("description", ""), base=base, problem=problem,
        ))
    return tuple(models)


def _categories(doc, data, bases) -> tuple[CategorySettings, ...]:
    if not isinstance(data, Mapping) or not data:
        raise HpsysError(doc.where(("experiment_categories",)),
                         "expected a mapping of category name to its options")
    registry = plugins.categories()
    out: list[CategorySettings] = []
    for name, body in data.items():
        reader = _Reader(doc, ("experiment_categories", name), body, CATEGORY_KEYS)
        enabled = reader.get("enabled", True)
        options = reader.get("options")
        if not options:
            raise HpsysError(reader.where("options"), "expected a non-empty list of options")
        plugin = registry.get(name) or YamlCategory(str(name))
        checked: list[Mapping[str, Any]] = []
        seen: dict[str, int] = {}  # canonical option -> its index
        problem = None
        for index, option in enumerate(options):
            opath = ("experiment_categories", name, "options", index)
            if not isinstance(option, Mapping):
                raise HpsysError(doc.where(opath), f"expected a mapping, got {_kind(option)}")

            def locate(key, _p=opath):
                return doc.where(_p + ((key,) if key is not None else ()))

            try:  # a disabled category keeps its problem until it is picked
                plugin.validate(option, locate)
                if isinstance(plugin, YamlCategory):
                    _check_yaml_keys(option, bases, locate)
                _check_unique(option, index, seen, locate)
            except HpsysError as exc:
                if enabled:
                    raise
                problem = problem or exc
            checked.append(dict(option))
        out.append(CategorySettings(str(name), enabled, reader.get("description", ""),
                                    tuple(checked), plugin, problem))
    return tuple(out)


def _check_unique(option: Mapping[str, Any], index: int, seen: dict[str, int],
                  locate: Locate) -> None:
    """Two identical options would be one experiment (the id hashes the option): the second
    would be listed again and reported as running elsewhere."""
    first = seen.setdefault(canonical(option), index)
    if first != index:
        raise HpsysError(locate(None), f"the same option as options[{first}]; list each option "
                                       "once (execution.repeats runs one several times)")


def _check_yaml_keys(option: Mapping[str, Any], bases: Sequence[Mapping[str, Any]],
                     locate: Locate) -> None:
    """A YAML-only option may only change keys every enabled model's base config has (a `+key`
    adds one): a typo must not quietly add a key that nothing reads."""
    for key in option:
        if key == "description" or key.startswith("+"):
            continue
        for base in bases:
            if not has_dotted(base, key):
                raise HpsysError(
                    locate(key),
                    f"'{key}' is not a key of the base config"
                    f"{close_match(key, flat_keys(base))}; write '+{key}' to add a new key",
                )


def _execution(reader: _Reader) -> ExecutionSettings:
    retry = reader.get("retry_failed", False)
    if not isinstance(retry, bool) and retry < 0:
        raise HpsysError(reader.where("retry_failed"), f"expected true, false or a count >= 0, "
                                                      f"got {retry!r}")
    gpus = reader.get("gpus", "auto")
    if gpus is None or gpus == "none":
        gpus = ()
    elif isinstance(gpus, str):
        if gpus != "auto":
            raise HpsysError(reader.where("gpus"), "expected auto, none or a list of GPU indices")
    else:
        def device(g: Any) -> bool:  # an index, or a GPU-/MIG- UUID as CUDA_VISIBLE_DEVICES takes
            if isinstance(g, str):
                return g.startswith(("GPU-", "MIG-"))
            return isinstance(g, int) and not isinstance(g, bool) and g >= 0

        if not all(device(g) for g in gpus):
            raise HpsysError(reader.where("gpus"),
                             f"expected GPU indices >= 0 or GPU-/MIG- UUIDs, got {gpus!r}")
        gpus = tuple(gpus)
    timeout = reader.get("experiment_timeout")
    if timeout is not None and timeout <= 0:
        raise HpsysError(reader.where("experiment_timeout"),
                         f"expected seconds > 0 or null, got {timeout!r}")
    return ExecutionSettings(
        max_parallel=reader.number("max_parallel", 1, 1),
        experiment_timeout=timeout,
        retry_failed=int(retry),
        executor=reader.choice("executor", "local", ("local", "ray")),
        ray_address=reader.get("ray_address") or None,
        gpus=gpus,
        gpus_per_experiment=reader.number("gpus_per_experiment", 1, 1),
        experiments_per_gpu=reader.number("experiments_per_gpu", 1, 1),
        repeats=reader.number("repeats", 1, 1),
        min_free_gb=reader.number("min_free_gb", 0.0, 0),
        retry_oom_halving=reader.get("retry_oom_halving", False),
        heartbeat_s=reader.number("heartbeat_s", 2.0, 0.1),
        stale_after_s=reader.number("stale_after_s", 30.0, 1),
        cpus_per_experiment=reader.number("cpus_per_experiment", 1.0, 0),
        ray_resources=_ray_resources(reader),
        ray_runtime_env=reader.get("ray_runtime_env"),
    )


def _ray_resources(reader: _Reader) -> dict[str, float]:
    """Custom Ray resources each experiment asks for, e.g. {accelerator_type_A100: 1}."""
    resources = reader.get("ray_resources", {})
    for name, amount in resources.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise HpsysError(reader.where("ray_resources"),
                             f"expected a number >= 0 for resource '{name}', got {amount!r}")
    return {str(k): float(v) for k, v in resources.items()}

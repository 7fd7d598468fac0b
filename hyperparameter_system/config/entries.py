"""The master config's models and categories: each entry read, its script and schema found,
its base config loaded with the overrides, and every option checked against what each
enabled model's script accepts, before anything is launched."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsys_reporter import compose
from hpsys_reporter.overrides import OverrideError, sweep_values
from hpsys_reporter.tracked import flat_keys
from hyperparameter_system import plugins
from hyperparameter_system.categories.base import (
    LABEL_KEYS,
    Category,
    GroupChoices,
    Locate,
    SweptCategory,
    YamlCategory,
)
from hyperparameter_system.config.reader import Reader, kind_of, resolve
from hyperparameter_system.config.schema import Schema, load_schema, schema_path
from hyperparameter_system.core.configdict import (
    NON_FINITE,
    apply_changes,
    apply_override,
    canonical,
    get_dotted,
    has_dotted,
    non_finite,
    parse_override,
    resolved,
)
from hyperparameter_system.core.errors import HpsysError, close_match
from hyperparameter_system.core.safe_names import wandb_project_name
from hyperparameter_system.core.yamlfile import KeyPath, YamlDoc, load_yaml

PYTHON_ALIASES = ("python", "python3")  # a leading `python` means the runner's own interpreter
MODEL_KEYS = {
    "name": (str,), "enabled": (bool,), "base_config": (str,), "script": (str, list),
    "description": (str,), "schema": (str, type(None)), "script_args": (str,),
}
# how a (non-.sh) script is given its temp config: `--config PATH`, or as a Hydra app takes it
SCRIPT_ARGS = ("config", "hydra")
CATEGORY_KEYS = {"enabled": (bool,), "description": (str,), "options": (list,)}
@dataclass(frozen=True)
class ModelSettings:
    name: str
    enabled: bool
    base_config: Path
    script: tuple[str, ...]
    description: str
    base: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    problem: HpsysError | None = field(default=None, compare=False, repr=False)
    schema: Schema | None = field(default=None, compare=False, repr=False)  # its script's
    script_args: str = "config"  # SCRIPT_ARGS: how run/launcher passes the temp config
    # a script that cannot start (missing, not executable): views mark it, a run refuses
    script_problem: HpsysError | None = field(default=None, compare=False, repr=False)

    @property
    def project(self) -> str:
        """W&B project: the model name with `.`, `-`, `/` and what W&B refuses (`:`) as `_`."""
        return wandb_project_name(self.name)

    def checked(self) -> ModelSettings:
        """This model, or the error it holds: a disabled entry's problem (a missing script, a
        base config that does not load) is told when the entry is picked, before any launch."""
        if self.problem is not None:
            raise self.problem
        return self

    def runnable(self) -> ModelSettings:
        """This model, or the error of its script that cannot start: only a run refuses it
        (the original team's master names scripts this repository lacks; its views still
        show)."""
        if self.script_problem is not None:
            raise self.script_problem
        return self

    @property
    def script_mark(self) -> str | None:
        """How a view marks a model whose script cannot start, e.g. `script missing (...)`."""
        if self.script_problem is None:
            return None
        text = self.script_problem.message
        missing = "does not exist" in text or "not found" in text
        return f"{'script missing' if missing else 'script cannot start'} ({text})"


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


def _script(reader: Reader) -> tuple[str, ...]:
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


def _check_script(reader: Reader, root: Path, argv: tuple[str, ...]) -> None:
    """The command and the .py/.sh files it names exist (and the command can run)."""
    try:
        _check_command(reader, root, argv)
    except OSError as exc:  # a name the OS refuses to look up (too long, ...)
        raise HpsysError(reader.where("script"),
                         f"cannot look the script up: {exc.strerror or exc}") from None


def _check_command(reader: Reader, root: Path, argv: tuple[str, ...]) -> None:
    head = argv[0]
    if head not in PYTHON_ALIASES:
        path = resolve(root, head)
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
        if arg.endswith((".py", ".sh")) and not resolve(root, arg).is_file():
            raise HpsysError(reader.where("script"), f"script '{arg}' does not exist")


@dataclass(frozen=True)
class _Base:
    """A base config as the overrides left it, and where each overridden key was set."""

    config: Mapping[str, Any]
    set_by: tuple[tuple[str, str], ...]  # (key, the override's location), in order
    doc: YamlDoc
    composed: bool = False  # a Hydra primary config, composed


def _base_config(path: Path, overrides: Sequence[tuple[str, str]], cache: dict,
                 where: str | None = None) -> _Base:
    """The base config with the overrides applied; a load error is told at `where` (the model's
    base_config key), an override error at the override itself (`--set` or system.overrides)."""
    if path not in cache:
        try:
            doc = load_yaml(path, "base config")
            if not isinstance(doc.data, Mapping):
                raise HpsysError(str(path), f"base config must be a mapping, got "
                                            f"{kind_of(doc.data)}")
        except HpsysError as exc:
            if where is None:
                raise
            raise HpsysError(where, str(exc)) from None
        config = dict(doc.data)
        bad = non_finite(config)
        if bad is not None:
            raise HpsysError(doc.where(tuple(bad)), NON_FINITE)
        composed = compose.is_primary(config)
        if composed:
            config, overrides = _composed(path, overrides)
        set_by: list[tuple[str, str]] = []
        for origin, text in overrides:
            at = f"{origin} (on {path})"
            override = parse_override(text, at)
            _not_model_name(origin, override.key)
            apply_override(config, override, at)
            set_by.append((override.key, at))
        config = resolved(config, where or str(path))
        cache[path] = _Base(config, tuple(set_by), doc, composed)
    return cache[path]


def _composed(path: Path, overrides: Sequence[tuple[str, str]]
              ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A Hydra primary base config composed with the overrides that choose group entries
    (`optimizer=sgd`), each checked at its place; the value overrides are left to apply."""
    choices, _ = compose.split(path, [text for _, text in overrides])
    for origin, text in overrides:
        if text in choices:
            try:
                compose.check_choice(path, text)
            except OverrideError as exc:
                raise HpsysError(f"{origin} (on {path})", f"override '{text}': {exc}") from None
    try:
        config = compose.compose(path, choices)
    except OverrideError as exc:
        raise HpsysError(str(path), str(exc)) from None
    return config, [(origin, text) for origin, text in overrides if text not in choices]


def _not_model_name(origin: str, key: str) -> None:
    """An override of model_name would be dropped without a word: each experiment's model_name
    is its model entry's name."""
    if key == "model_name" or key.startswith("model_name."):
        raise HpsysError(origin, "model_name comes from each entry of models: (its name), "
                                 "not from an override; expected a key other than model_name "
                                 "(add a models: entry to train another model)")


def _check_base(base: _Base, schema: Schema, checked: set) -> None:
    """Every value of the base config, as the overrides left it, against the script's schema:
    told at the last override that set it, else at the base config's own line."""
    if (id(base), schema.path) in checked:
        return
    checked.add((id(base), schema.path))
    for key in flat_keys(base.config):
        problem = schema.problem(key, get_dotted(base.config, key, None))
        if problem is None:
            continue
        where = next((at for set_key, at in reversed(base.set_by)
                      if key == set_key or key.startswith(f"{set_key}.")), None)
        raise HpsysError(where or base.doc.where(tuple(key.split("."))), problem)
    broken = schema.rule_problem(base.config)
    if broken is not None:  # told at the last override of a key the rules read, else the file
        keys = schema.rule_keys()
        where = next((at for set_key, at in reversed(base.set_by)
                      if any(k == set_key or k.startswith(f"{set_key}.") for k in keys)), None)
        first = next((k for k in sorted(keys) if has_dotted(base.config, k)), None)
        raise HpsysError(where or base.doc.where(tuple(first.split(".")) if first else ()),
                         broken)


def check_option_rules(doc: YamlDoc, models: Sequence[ModelSettings],
                       categories: Sequence[CategorySettings]) -> None:
    """Each enabled option on each enabled model's base config against the cross-key rules of
    that model's script (a warm-up longer than the base's epochs), told at the option."""
    for model in models:
        if not model.enabled or model.schema is None or not model.schema.rules:
            continue
        for category in categories:
            if not category.enabled or category.problem is not None:
                continue
            for index, option in enumerate(category.options):
                config = apply_changes(model.base, category.plugin.changes(option))
                broken = model.schema.rule_problem(config)
                if broken is not None:
                    path = ("experiment_categories", category.name, "options", index)
                    raise HpsysError(doc.where(path), f"{broken} (on model {model.name})")


def _as_read(config: Mapping[str, Any], schema: Schema) -> Mapping[str, Any]:
    """The base config with each value as the model's engine reads it (Schema.coerce): a
    `--set lr='0.001'` is the experiment `--set lr=0.001` is. Unchanged: the same object."""
    changes = {}
    for key in flat_keys(config):
        value = get_dotted(config, key, None)
        read = schema.coerce(key, value)
        if read is not value:
            changes[key] = read
    return apply_changes(config, changes) if changes else config


def _coerce_option(plugin: Category, option: Mapping[str, Any],
                   schemas: Sequence[Schema]) -> dict[str, Any]:
    """The option with each value as the enabled models' engines read it, where every schema
    that knows its key agrees (Schema.coerce)."""
    out = dict(option)
    for key, value in option.items():
        if key in LABEL_KEYS:
            continue
        targets = list(plugin.changes({key: value}))
        if len(targets) != 1:
            continue
        read = {id(s): s.coerce(targets[0], value) for s in schemas if s.known(targets[0])}
        forms = list(read.values())
        if forms and all(f is not value for f in forms) and all(f == forms[0] for f in forms):
            out[key] = forms[0]
    return out


def _schema(reader: Reader, root: Path, script: tuple[str, ...],
            cache: dict[Path, Schema]) -> Schema | None:
    """The schema the model's script publishes (or `schema: PATH`; `schema: null` for none)."""
    if "schema" in reader.data:
        given = reader.get("schema")
        path = resolve(root, given) if given else None
        if path is not None and not path.is_file():
            raise HpsysError(reader.where("schema"), f"schema file '{given}' does not exist")
    else:
        path = schema_path(script, root)
    if path is None:
        return None
    if path not in cache:
        cache[path] = load_schema(path)
    return cache[path]


def read_models(doc, data, root, system, overrides, cache) -> tuple[ModelSettings, ...]:
    if not isinstance(data, list) or not data:
        raise HpsysError(doc.where(("models",)), "expected a non-empty list of models")
    models: list[ModelSettings] = []
    schemas: dict[Path, Schema] = {}
    checked: set = set()
    for index, item in enumerate(data):
        reader = Reader(doc, ("models", index), item, MODEL_KEYS)
        name = reader.get("name")
        if not name:
            raise HpsysError(reader.where(), "missing required key 'name'")
        if any(m.name == name for m in models):
            raise HpsysError(reader.where("name"), f"model '{name}' is listed twice")
        enabled = reader.get("enabled", True)
        base_path = resolve(root, reader.get("base_config", str(system.base_config)))
        script = _script(reader)
        base: Mapping[str, Any] = {}
        problem = schema = script_problem = None
        try:  # a disabled model keeps its problem until it is picked
            loaded = _base_config(base_path, overrides, cache, reader.where("base_config"))
            base = loaded.config  # kept even when its script is gone: its runs still count
            try:
                _check_script(reader, root, script)
            except HpsysError as exc:  # views mark it; a run refuses (ModelSettings.runnable)
                script_problem = exc
            schema = _schema(reader, root, script, schemas)
            if schema is not None:
                _check_base(loaded, schema, checked)
                base = _as_read(base, schema)
        except HpsysError as exc:
            if enabled:
                raise
            problem = exc
        models.append(ModelSettings(
            name=str(name), enabled=enabled, base_config=base_path, script=script,
            description=reader.get("description", ""), base=base, problem=problem,
            schema=schema, script_args=reader.choice("script_args", "config", SCRIPT_ARGS),
            script_problem=script_problem,
        ))
    return tuple(models)


class ConfigGroups:
    """The config groups of the enabled models' composed base config, when they share one:
    what a category option such as `{optimizer: sgd}` may choose, and what it changes."""

    def __init__(self, models: Sequence[ModelSettings], overrides: Sequence[tuple[str, str]],
                 cache: dict) -> None:
        paths = {m.base_config for m in models if m.enabled}
        one = next(iter(paths)) if len(paths) == 1 else None
        self.path = one if one is not None and getattr(cache.get(one), "composed", False) \
            else None
        self.overrides, self.cache = list(overrides), cache
        self.known = compose.groups(self.path) if self.path is not None else {}

    def entries(self, group: str) -> list[str] | None:
        return self.known.get(group)

    def changes(self, group: str, entry: str) -> dict[str, Any]:
        """The base composed with `group=entry` instead of its own choice (the value
        overrides still win), as dotted changes to the base."""
        assert self.path is not None
        kept = [(o, t) for o, t in self.overrides if t.split("=", 1)[0].lstrip("+") != group]
        chosen = _base_config(self.path, [*kept, (f"option {group}={entry}", f"{group}={entry}")],
                              {}).config
        return compose.diff(self.cache[self.path].config, chosen)


def read_sweeps(data: Any, sweeps: Sequence[str], groups: ConfigGroups
                ) -> tuple[Any, dict[str, str]]:
    """The categories with `--sweep` keys as this invocation's own: each key an ad-hoc category
    whose options are its values (Hydra's discrete sweeps: `a,b`, `range(...)`,
    `choice(...)`), and the declared categories disabled for it (kept, so their rows still
    read). Returns the categories' data and each swept category's `--sweep` text."""
    if not sweeps:
        return data, {}
    out = {name: {**body, "enabled": False} if isinstance(body, Mapping) else body
           for name, body in (data.items() if isinstance(data, Mapping) else ())}
    swept: dict[str, str] = {}
    for text in sweeps:
        where = f"--sweep {text}"
        try:
            key, values = sweep_values(text)
        except OverrideError as exc:
            raise HpsysError(where, str(exc)) from None
        if key in swept:
            raise HpsysError(where, f"'{key}' is swept twice; expected one --sweep per key")
        if len(values) != len({canonical(v) for v in values}):
            raise HpsysError(where, "a value is listed twice; expected distinct values")
        out[key] = {"options": [{key: value} for value in values]}
        swept[key] = where
    return out, swept


@dataclass(frozen=True)
class _EnabledModels:
    """What the enabled models accept, every option checked against it: their base configs,
    their scripts' schemas and the config groups of their shared composed base config."""

    bases: Sequence[Mapping[str, Any]]
    schemas: Sequence[Schema]
    groups: ConfigGroups | None


@dataclass(frozen=True)
class _OptionPlace:
    """Where a category's options are told: a declared one's at its line of the master config,
    a `--sweep` key's at its value on the command line (`swept_as`: that `--sweep` text)."""

    doc: YamlDoc
    category: Any  # the category's key as written
    swept_as: str | None

    def path(self, index: int) -> KeyPath:
        return ("experiment_categories", self.category, "options", index)

    def locate(self, index: int) -> Locate:
        path = self.path(index)

        def locate(key: str | None) -> str:
            if self.swept_as:
                return f"{self.swept_as}: value {index + 1}" + (
                    f" ({key})" if key is not None else "")
            return self.doc.where(path + ((key,) if key is not None else ()))

        return locate


def read_categories(doc: YamlDoc, data: Any, bases: Sequence[Mapping[str, Any]],
                    schemas: Sequence[Schema], groups: ConfigGroups | None = None,
                    swept: Mapping[str, str] | None = None) -> tuple[CategorySettings, ...]:
    """Every category, each option checked against what the enabled models accept before
    anything is launched; `swept`: each `--sweep` category's text (read_sweeps)."""
    if not isinstance(data, Mapping) or not data:
        raise HpsysError(doc.where(("experiment_categories",)),
                         "expected a mapping of category name to its options")
    models = _EnabledModels(bases, schemas, groups)
    registry = plugins.categories()
    return tuple(_read_category(_OptionPlace(doc, name, (swept or {}).get(name)), body, models,
                                registry) for name, body in data.items())


def _read_category(place: _OptionPlace, body: Any, models: _EnabledModels,
                   registry: Mapping[str, Category]) -> CategorySettings:
    reader = Reader(place.doc, ("experiment_categories", place.category), body, CATEGORY_KEYS)
    enabled = reader.get("enabled", True)
    options = reader.get("options")
    if not options:
        raise HpsysError(reader.where("options"), "expected a non-empty list of options")
    options = [_written_as_overrides(o, place.doc.where(place.path(i)))
               for i, o in enumerate(options)]
    plugin = _plugin(place, options, models.groups, registry)
    checked, problem = _checked_options(place, options, plugin, enabled, models)
    return CategorySettings(str(place.category), enabled, reader.get("description", ""),
                            checked, plugin, problem)


def _plugin(place: _OptionPlace, options: Sequence[Any], groups: ConfigGroups | None,
            registry: Mapping[str, Category]) -> Category:
    """The category's plugin: a `--sweep` key's own (YAML-only, told at its values), else the
    one registered under its name, else YAML-only; one that chooses config-group entries
    (`{optimizer: sgd}`) when an option names a group."""
    name = place.category
    grouped = groups is not None and name in groups.known
    plugin = (SweptCategory(str(name)) if place.swept_as and not grouped
              else registry.get(name) or YamlCategory(str(name)))
    if groups is not None and groups.known and any(
            isinstance(o, Mapping) and any(k in groups.known for k in o) for o in options):
        plugin = GroupChoices(plugin, groups.entries, functools.cache(groups.changes))
    return plugin


def _checked_options(place: _OptionPlace, options: Sequence[Any], plugin: Category,
                     enabled: bool, models: _EnabledModels
                     ) -> tuple[tuple[Mapping[str, Any], ...], HpsysError | None]:
    """Each option checked and read as the engines read it; a disabled category keeps its first
    problem until it is picked (CategorySettings.checked), an enabled one stops here."""
    checked: list[Mapping[str, Any]] = []
    seen: dict[str, int] = {}  # canonical option -> its index
    problem = None
    for index, option in enumerate(options):
        if not isinstance(option, Mapping):
            raise HpsysError(place.doc.where(place.path(index)),
                             f"expected a mapping, got {kind_of(option)}")
        locate = place.locate(index)
        try:
            _check_finite(option, locate)
            plugin.validate(option, locate, models.schemas)
            option = _coerce_option(plugin, option, models.schemas)
            _check_keys(option, plugin, models, locate)
            _check_unique(option, index, seen, locate)
        except HpsysError as exc:
            if enabled:
                raise
            problem = problem or exc
        checked.append(dict(option))
    return tuple(checked), problem


def _check_keys(option: Mapping[str, Any], plugin: Category, models: _EnabledModels,
                locate: Locate) -> None:
    """The keys a YAML-only option sets, or what a config-group choice changes, against the
    enabled models (a registered plugin checks its own in validate)."""
    if isinstance(plugin, YamlCategory):
        _check_yaml_keys(option, models.bases, locate)
    elif isinstance(plugin, GroupChoices):
        _check_schema(plugin.changes(option), models.schemas, locate)


def _check_finite(option: Mapping[str, Any], locate: Locate) -> None:
    """No NaN or infinity in an option, whatever its script publishes (or not)."""
    for key, value in option.items():
        if key not in LABEL_KEYS and non_finite(value) is not None:
            raise HpsysError(locate(key), NON_FINITE)


def _check_unique(option: Mapping[str, Any], index: int, seen: dict[str, int],
                  locate: Locate) -> None:
    """Two identical options would be one experiment (the id hashes the option): the second
    would be listed again and reported as running elsewhere."""
    first = seen.setdefault(canonical(option), index)
    if first != index:
        raise HpsysError(locate(None), f"the same option as options[{first}]; list each option "
                                       "once (execution.repeats runs one several times)")


def _written_as_overrides(option: Any, where: str) -> Any:
    """An option written as overrides (`- lr=0.1` or `- [optimizer_name=SGD, +nesterov=true]`,
    Hydra's grammar, the one parser) as the mapping it stands for (`+key` adds a key); any
    other option as it is."""
    texts = [option] if isinstance(option, str) else option
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
        return option
    out: dict[str, Any] = {}
    for text in texts:
        override = parse_override(text, where)
        if override.op == "~":
            raise HpsysError(where, f"override '{text}': an option sets keys; expected "
                                    "key=value or +key=value, not a deletion")
        out[("+" if override.op in ("+", "++") else "") + override.key] = override.value
    return out


def _check_schema(changes: Mapping[str, Any], schemas: Sequence[Schema], locate: Locate) -> None:
    """What a config-group choice changes, against the enabled models' schemas."""
    for key, value in changes.items():
        for schema in schemas:
            problem = schema.problem(key, value)
            if problem is not None:
                raise HpsysError(locate(None), f"{key}: {problem}")


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



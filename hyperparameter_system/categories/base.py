"""What a category is: declared option parameters, validation, config changes and a run name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from hyperparameter_system.core.errors import HpsysError, close_match

Locate = Callable[[str | None], str]
"""Maps an option key (None: the option itself) to an error location such as `file:12: key`."""

LABEL_KEYS = frozenset({"description"})


def fmt(value: Any) -> str:
    """Numbers as the original run names wrote them: 0.001, 25, 1e-05, True."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def name_key(name: str) -> str:
    """How the trainer compares names: case does not matter."""
    return name.lower()


@dataclass(frozen=True)
class Param:
    """One option key: the config key it sets, its type and whether it is required.

    What values the engine accepts (ranges, names) is the engine's to say, through the schema
    of the model's script (config/schema.py), and the built-ins leave it at that. A third-party
    category may add rules of its own option (`minimum`, `maximum`, `above`, `choices`)."""

    key: str
    target: str
    kind: type | tuple[type, ...]
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None  # an exclusive minimum
    listed: tuple[str, ...] = ()
    choices: frozenset[str] = frozenset()
    others: str = ""  # how errors name `choices` beyond the listed ones

    @cached_property
    def _known(self) -> frozenset[str]:
        """The accepted names as compared (built once, not per option)."""
        return frozenset(name_key(c) for c in (*self.listed, *self.choices))

    def check(self, value: Any, where: str) -> None:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if float in kinds:
            kinds = (*kinds, int)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(k.__name__ for k in kinds if k is not int or float not in kinds)
            raise HpsysError(where, f"expected {names}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise HpsysError(where, f"expected a value >= {self.minimum}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise HpsysError(where, f"expected a value <= {self.maximum}, got {value!r}")
        if self.above is not None and value <= self.above:
            raise HpsysError(where, f"expected a value > {self.above}, got {value!r}")
        if self._known and name_key(value) not in self._known:
            more = f" or {self.others}" if self.others else ""
            hint = close_match(value, (*self.listed, *sorted(self.choices)), name_key)
            raise HpsysError(where, f"unknown name {value!r}{hint}; expected one of "
                                    f"{', '.join(self.listed)}{more}")


class Schema(Protocol):
    """What a model's script accepts (config.schema.Schema): None when a value is fine."""

    def problem(self, key: str, value: Any) -> str | None: ...

    def known(self, key: str) -> bool: ...


class Category:
    """A built-in category: subclasses declare `name`, `params` and `run_name`.

    `extra_target` lets a category accept keys it does not declare (the scheduler's own
    parameters), each set under that prefix; the schemas of the models' scripts say which of
    them the engine knows, so a typo is refused instead of becoming a key nothing reads.
    """

    name: str = ""
    params: tuple[Param, ...] = ()
    extra_target: str | None = None

    def _param(self, key: str) -> Param | None:
        return next((p for p in self.params if p.key == key), None)

    def validate(self, option: Mapping[str, Any], locate: Locate,
                 schemas: Sequence[Schema] = ()) -> None:
        """Raise HpsysError at the first unknown, missing or mistyped key, or at a value the
        engine of one of `schemas` (the enabled models' scripts) refuses."""
        for key, value in option.items():
            if key in LABEL_KEYS:
                continue
            param = self._param(key)
            if param is None:
                self._check_extra(key, locate, schemas)
            else:
                param.check(value, locate(key))
            for target, given in self.changes({key: value}).items():
                for schema in schemas:
                    problem = schema.problem(target, given)
                    if problem is not None:
                        raise HpsysError(locate(key), problem)
        for param in self.params:
            if param.required and param.key not in option:
                raise HpsysError(locate(None), f"missing required key '{param.key}'")

    def _check_extra(self, key: str, locate: Locate, schemas: Sequence[Schema]) -> None:
        """A key the category does not declare: one of its engine's parameters under
        `extra_target`, when every schema knows it (with no schema, any is taken)."""
        target = f"{self.extra_target}.{key}"
        if self.extra_target is not None and all(s.known(target) for s in schemas):
            return
        known = [p.key for p in self.params] + sorted(LABEL_KEYS)
        more = f", or a parameter under {self.extra_target}" if self.extra_target else ""
        others = [k.split(".", 1)[1] for s in schemas for k in getattr(s, "keys", {})
                  if self.extra_target and k.startswith(f"{self.extra_target}.")]
        raise HpsysError(locate(key), f"unknown option key for category '{self.name}'"
                                      f"{close_match(key, [*known, *others])}; expected one of "
                                      f"{', '.join(known)}{more}")

    def changes(self, option: Mapping[str, Any]) -> dict[str, Any]:
        """Dotted config key -> value for everything this option sets (labels excluded)."""
        out: dict[str, Any] = {}
        for key, value in option.items():
            if key in LABEL_KEYS:
                continue
            param = self._param(key)
            out[param.target if param else f"{self.extra_target}.{key}"] = value
        return out

    def run_name(self, option: Mapping[str, Any]) -> str:
        raise NotImplementedError


Register = Callable[[Category], None]
"""What `register_categories(register)` is handed: call it once per category provided."""


def parts(option: Mapping[str, Any], *pairs: tuple[str, str]) -> str:
    """`_lr0.001_wd0.001` from (prefix, key) pairs, skipping absent keys."""
    return "".join(f"_{prefix}{fmt(option[key])}" for prefix, key in pairs if key in option)


class YamlCategory(Category):
    """A category declared only in YAML: each option key is a dotted config key."""

    def __init__(self, name: str) -> None:
        self.name = name

    def validate(self, option: Mapping[str, Any], locate: Locate,
                 schemas: Sequence[Schema] = ()) -> None:
        for key, value in option.items():
            if not isinstance(key, str) or not key.strip("+"):
                raise HpsysError(locate(None), f"option keys must be config keys, got {key!r}")
            if key in LABEL_KEYS:
                continue
            for schema in schemas:
                problem = schema.problem(key.lstrip("+"), value)
                if problem is not None:
                    raise HpsysError(locate(key), problem)

    def changes(self, option: Mapping[str, Any]) -> dict[str, Any]:
        return {k.lstrip("+"): v for k, v in option.items() if k not in LABEL_KEYS}

    def run_name(self, option: Mapping[str, Any]) -> str:
        body = "_".join(f"{k}{fmt(v)}" for k, v in self.changes(option).items())
        return f"{self.name}_{body}" if body else self.name


class SweptCategory(YamlCategory):
    """A `--sweep` key's category: its runs are named by the key and value (`lr0.001`), as
    Hydra names a multirun's jobs by their overrides."""

    def run_name(self, option: Mapping[str, Any]) -> str:
        return "_".join(f"{k}{fmt(v)}" for k, v in self.changes(option).items()) or self.name


class GroupChoices(Category):
    """A category whose options choose config-group entries of a composed base config
    (`{optimizer: sgd}` is Hydra's `optimizer=sgd`): a choice becomes the config changes its
    entry makes to the base, the option's other keys are the wrapped category's own. Run
    names come from the choice: `opt_sgd`, `opt_adamw_lr0.0003`."""

    def __init__(self, inner: Category, entries: Callable[[str], Sequence[str] | None],
                 changes_of: Callable[[str, str], Mapping[str, Any]]) -> None:
        self.inner, self.name = inner, inner.name
        self.entries, self.changes_of = entries, changes_of
        self.params, self.extra_target = inner.params, inner.extra_target

    def _split(self, option: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        chosen = {k: v for k, v in option.items() if self.entries(str(k)) is not None}
        return chosen, {k: v for k, v in option.items() if k not in chosen}

    def validate(self, option: Mapping[str, Any], locate: Locate,
                 schemas: Sequence[Schema] = ()) -> None:
        chosen, rest = self._split(option)
        if not chosen:
            self.inner.validate(option, locate, schemas)
            return
        for group, entry in chosen.items():
            entries = list(self.entries(group) or ())
            if entry not in entries:
                raise HpsysError(locate(group), f"unknown {group} choice {entry!r}"
                                 f"{close_match(str(entry), entries)}; expected one of "
                                 f"{', '.join(entries)} (the config group {group}/)")
        if isinstance(self.inner, YamlCategory):
            self.inner.validate(rest, locate, schemas)
            return
        for key, value in rest.items():  # the wrapped category's keys, none required now
            param = self._param(key)
            if param is None and key not in LABEL_KEYS:
                self._check_extra(key, locate, schemas)
            elif param is not None:
                param.check(value, locate(key))

    def changes(self, option: Mapping[str, Any]) -> dict[str, Any]:
        chosen, rest = self._split(option)
        out: dict[str, Any] = {}
        for group, entry in chosen.items():
            out.update(self.changes_of(group, str(entry)))
        out.update(self.inner.changes(rest))
        return out

    def run_name(self, option: Mapping[str, Any]) -> str:
        chosen, rest = self._split(option)
        if not chosen:
            return self.inner.run_name(option)
        prefix = getattr(self.inner, "prefix", self.name)
        body = "_".join(str(v) for v in chosen.values())
        more = "".join(f"_{k}{fmt(v)}" for k, v in rest.items() if k not in LABEL_KEYS)
        return f"{prefix}_{body}{more}"

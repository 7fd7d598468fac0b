"""Dotted-key access to nested training configs, and `key=value` overrides in Hydra's grammar."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from hpsys_reporter import overrides
from hpsys_reporter.overrides import Override, OverrideError
from hpsys_reporter.tracked import flat_keys
from hyperparameter_system.core.errors import HpsysError, close_match

_MISSING = object()
_ABSENT = object()  # has_dotted's default: _MISSING itself would mean 'raise'


def get_dotted(config: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """`get_dotted(cfg, "scheduler_params.T_max")`; raises KeyError when absent and no default."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def has_dotted(config: Mapping[str, Any], key: str) -> bool:
    return get_dotted(config, key, _ABSENT) is not _ABSENT


_ATOMIC = (str, int, float, bool, type(None))


def plain_copy(value: Any) -> Any:
    """A deep copy of YAML data (mappings, lists, scalars), many times faster than
    copy.deepcopy: a 10,000-experiment matrix copies its base config 10,000 times."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value if isinstance(value, _ATOMIC) else copy.deepcopy(value)


def apply_changes(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with every dotted change set, copied on write: the mappings along a changed path
    are new, everything else is shared with `base` (a 10,000-experiment matrix shares one base
    config instead of copying it 10,000 times). Below its top level, treat it as read-only."""
    config = dict(base)
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = config
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[last] = plain_copy(value)
    return config


NON_FINITE = "expected a finite number: NaN or infinity is never a setting"


def non_finite(value: Any) -> tuple[str | int, ...] | None:
    """Where `value` holds NaN or an infinity (a float, or a string float() reads so, as the
    engine would, or YAML's `.nan`/`.inf`, which Hydra's grammar leaves a string): the path
    inside it (() for the value itself), else None. NaN passes every `<` check and no script
    trains with it, schema or not."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ()
    if isinstance(value, str):
        try:
            return None if math.isfinite(float(value.replace(".", "", 1))) else ()
        except ValueError:
            return None
    items = (value.items() if isinstance(value, Mapping)
             else enumerate(value) if isinstance(value, list | tuple) else ())
    for key, item in items:
        inner = non_finite(item)
        if inner is not None:
            return (key, *inner)
    return None


def parse_override(text: str, where: str) -> Override:
    """One override read in Hydra's grammar (hpsys_reporter.overrides), told at `where`."""
    try:
        return overrides.parse(text)
    except OverrideError as exc:
        raise HpsysError(where, f"override '{text}': {exc.message()}") from None


def apply_override(config: dict[str, Any], override: Override, where: str) -> None:
    """Apply one override in place with Hydra's semantics (hpsys_reporter.overrides, the
    engine's own reader), refusing NaN and a value of another type than the one it replaces."""
    text = override.text
    if override.op != "~" and non_finite(override.value) is not None:
        raise HpsysError(where, f"override '{text}': {NON_FINITE}")
    old = get_dotted(config, override.key, None)
    try:
        overrides.apply(config, override)
    except OverrideError as exc:
        hint = exc.message(lambda key: close_match(key, flat_keys(config)))
        raise HpsysError(where, hint) from None
    if override.op in ("=", "++"):
        expected = _expected_type(old, override.value)
        if expected is not None:
            raise HpsysError(where, f"override '{text}': expected {expected} (the value it "
                                    f"replaces is {old!r}), got {override.value!r}")


def _expected_type(old: Any, new: Any) -> str | None:
    """What the replaced value's type asks of its replacement, when `new` does not fit: a
    number wants a number (int and float alike; a string float() reads, such as YAML's 1e-3,
    too), a bool a bool. A null on either side (unset, or nothing to compare) is taken."""
    if old is None or new is None:
        return None
    if isinstance(old, bool):
        return None if isinstance(new, bool) else "true or false"
    if isinstance(old, int | float):
        if isinstance(new, int | float) and not isinstance(new, bool):
            return None
        if isinstance(new, str):
            try:
                float(new)
            except ValueError:
                return "a number"
            return None
        return "a number"
    return None


def apply_overrides(config: Mapping[str, Any], texts: Iterable[str], where: str) -> dict:
    """`--set` style overrides applied to a copy of config, then its interpolations resolved."""
    out = dict(config)
    for text in texts:
        apply_override(out, parse_override(text, where), where)
    return resolved(out, where)


def resolved(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The config with its `${...}` interpolations resolved (OmegaConf's, as Hydra's)."""
    try:
        return overrides.resolve(config)
    except OverrideError as exc:
        raise HpsysError(where, str(exc)) from None


def canonical(value: Any) -> str:
    """Stable JSON text: equal configs give equal text whatever their key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(*parts: Any, length: int = 12) -> str:
    return _digest(canonical(list(parts)), length)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class CanonicalBase:
    """canonical() of the configs apply_changes makes from one base: the base's top-level items
    are serialised once, and a config's text is theirs with the changed items' replaced, so a
    10,000-experiment matrix does not serialise its base 10,000 times. The text is exactly
    canonical()'s (a config the shortcut cannot vouch for gets canonical() itself), so stable
    ids stay what they were."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        keys = sorted(base) if all(isinstance(k, str) for k in base) else []
        self.size = len(base) if keys else -1
        self.at = {key: i for i, key in enumerate(keys)}
        self.items = [self._item(key, base[key]) for key in keys]

    @staticmethod
    def _item(key: str, value: Any) -> str:
        return f"{json.dumps(key)}:{canonical(value)}"

    def text(self, config: Mapping[str, Any], changed: Iterable[str]) -> str:
        """canonical(config), for a config that differs from the base only at the top-level
        keys `changed` (a dotted change's first part)."""
        changed = set(changed)
        if len(config) != self.size or not changed <= self.at.keys():
            return canonical(config)  # a key added or removed: the plain way
        items = list(self.items)
        for key in changed:
            items[self.at[key]] = self._item(key, config[key])
        return "{" + ",".join(items) + "}"

    def stable_hash(self, before: Iterable[Any], config: Mapping[str, Any],
                    changed: Iterable[str], after: Iterable[Any] = (), length: int = 12) -> str:
        """stable_hash(*before, config, *after), the config's text from text()."""
        texts = [*map(canonical, before), self.text(config, changed), *map(canonical, after)]
        return _digest("[" + ",".join(texts) + "]", length)

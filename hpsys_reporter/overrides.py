"""`key=value` overrides in Hydra's grammar, parsed by hydra-core and applied with Hydra's
semantics to a plain mapping: the one reader of every override the project takes (the runner's
`--set` and `system.overrides`, `codes/train.py KEY=VALUE`, a search's or sweep's values). It
lives here because both sides of the script contract may import this package and neither may
import the other: one copy, so the runner never accepts what the engine refuses.

hydra-core is imported on the first parse only (about 0.25 s), so a command that reads no
override starts as fast as before.

    key=value     change a key that exists (a mapping given to a mapping is merged into it)
    +key=value    add a key that does not exist
    ++key=value   add or change
    ~key          delete a key; ~key=value deletes it only while it holds that value

Values are Hydra's: `0.001` and `1e-3` are one float, `'0.001'` a string, `key=` the empty
string, `null` None, `[1,2]` and `{a: 1}` containers, `${other}` an interpolation resolved by
`resolve()`. A sweep (`a,b`, `range(...)`, `choice(...)`) is refused where one value is
expected; `sweep_values()` reads one where several are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OPS = {"CHANGE": "=", "ADD": "+", "FORCE_ADD": "++", "DEL": "~"}
NO_VALUE: Any = object()  # `~key` without `=value`
GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic/"


class OverrideError(ValueError):
    """One override's problem, without its place (each side names the place its own way).
    `unknown` asks the caller for its close-match hint (each side words its own)."""

    def __init__(self, problem: str, unknown: str | None = None, suffix: str = "") -> None:
        super().__init__(f"{problem}{suffix}")
        self.problem, self.unknown, self.suffix = problem, unknown, suffix

    def message(self, hint: Callable[[str], str] | None = None) -> str:
        """The problem with `hint(unknown key)` (a ' (did you mean ...)' suffix) inserted."""
        near = hint(self.unknown) if hint and self.unknown else ""
        return f"{self.problem}{near}{self.suffix}"


@dataclass(frozen=True)
class Override:
    """One parsed override: `op` is '=', '+', '++' or '~'; `value` NO_VALUE for a bare ~key."""

    text: str
    op: str
    key: str
    value: Any


@functools.cache
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _hydra(text: str) -> Any:
    """Hydra's own parse of one override; its grammar errors become one OverrideError line."""
    from hydra.errors import HydraException

    try:
        return _parser().parse_override(text)
    except HydraException as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise OverrideError(f"expected key=value, +key=value, ++key=value or ~key in Hydra's "
                            f"override grammar ({detail})") from None


def parse(text: str) -> Override:
    """One override expected to give one value: a sweep or a config-group override is refused."""
    parsed = _hydra(text)
    key = parsed.key_or_group
    if not key:
        raise OverrideError("has an empty key; expected key=value")
    if parsed.package is not None or "/" in key:
        raise OverrideError(f"'{key}' names a config group or package (Hydra's "
                            "group@package=option); expected a dotted key such as "
                            "scheduler_params.T_max")
    if parsed.is_sweep_override():
        raise OverrideError("is a sweep (several values); expected one value here "
                            "(--sweep takes sweeps)")
    op = OPS[parsed.type.name]
    value = parsed.value() if (op != "~" or parsed.value_type is not None) else NO_VALUE
    return Override(text, op, key, _plain(value))


def sweep_values(text: str) -> tuple[str, list[Any]]:
    """(key, its values) of `key=a,b`, `key=range(...)` or `key=choice(...)` (one value is a
    sweep of one); `interval(...)` has no discrete values and is refused."""
    parsed = _hydra(text)
    if not parsed.key_or_group or OPS[parsed.type.name] != "=":
        raise OverrideError("expected key=a,b or key=range(...) or key=choice(...)")
    if parsed.is_interval_sweep():
        raise OverrideError("is an interval: no discrete values to run (use a search: block)")
    values = (list(parsed.sweep_iterator()) if parsed.is_sweep_override()
              else [parsed.value()])
    return parsed.key_or_group, [_plain(v) for v in values]


def _plain(value: Any) -> Any:
    """Hydra's values as builtin types only (dict keys as strings, tuples as lists), so the
    YAML a temp config is dumped to and the JSON an experiment id hashes see plain data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def key_of(text: str) -> str:
    """The dotted key an override names (already checked where it was applied)."""
    return parse(text).key


def _walk(config: dict[str, Any], parts: list[str], create: bool) -> dict[str, Any] | None:
    """The mapping that holds `parts[-1]`, creating missing parents when `create`."""
    node = config
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and create:
            child = node[part] = {}
        elif isinstance(child, dict):
            node[part] = child = dict(child)  # copied on write: the caller's input stays
        if not isinstance(child, dict):
            if part in node:
                raise OverrideError(f"'{'.'.join(parts[:depth + 1])}' is not a mapping")
            return None
        node = child
    return node


def _merge(old: Any, new: Any) -> Any:
    """Hydra's merge of a mapping given to a mapping; anything else replaces."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = _merge(old.get(key), value)
        return out
    return new


def apply(config: dict[str, Any], override: Override) -> None:
    """Apply one override to `config` in place with Hydra's semantics (the mappings along its
    path are copied first, so nested input is never changed)."""
    parts, key = override.key.split("."), override.key
    node = _walk(config, parts, create=override.op in ("+", "++"))
    last = parts[-1]
    exists = node is not None and last in node
    if override.op == "~":
        if not exists:
            raise OverrideError(f"cannot delete '{key}': no such key", key)
        assert node is not None
        if override.value is not NO_VALUE and node[last] != override.value:
            raise OverrideError(f"cannot delete '{key}': its value is {node[last]!r}, "
                                f"not {override.value!r}")
        del node[last]
        return
    if override.op == "=" and not exists:
        raise OverrideError(f"unknown key '{key}'", key,
                            f"; use +{key}=... to add a new key")
    if override.op == "+" and exists:
        raise OverrideError(f"key '{key}' already exists; use {key}=... or ++{key}=...")
    assert node is not None
    node[last] = _merge(node.get(last), override.value)
    if interpolated(override.value):
        resolve(config)  # an interpolation that cannot resolve is told at its override


def interpolated(value: Any) -> bool:
    """Whether a config holds an OmegaConf interpolation (`${...}`) anywhere."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(interpolated(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(interpolated(v) for v in value)
    return False


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every interpolation resolved by OmegaConf (`${image_size}`,
    `${oc.env:DATA_DIR,./data}`); one without any comes back as it was, OmegaConf unimported."""
    if not interpolated(config):
        return dict(config)
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        out = OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "config"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OverrideError(f"{key}: cannot resolve an interpolation ({first})") from None
    assert isinstance(out, dict)
    return out

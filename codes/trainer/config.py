"""Load the YAML training config, apply Hydra-style overrides and check types.

Kept free of torch so a bad config fails in well under a second with one clear line.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from trainer.errors import ConfigError, close_matches, unknown_name
from trainer.schema import KEYS, check, coerce, rule_problem

Config = dict[str, Any]

# Cross-key rules (val_split_ratio in (0, 1) unless n_folds >= 2, warm-up shorter than the run,
# no dynamic augmentation with online_augmentation: false) are the schema's RULES, checked in
# `validate` and published. Rules it cannot say, kept in the builders (engine-only):
# - model_name a timm model and tag (builders);
# - class_weighting's list as long as the classes, n_folds <= the images, OneCycleLR's
#   total_steps >= epochs x steps per epoch (they need the data);
# - device: auto, cpu, cuda or cuda:N of the visible devices (device.py).
# Keys whose unknown names are worded 'key: unknown <noun> ...' with the closest names.
NAME_NOUNS = {"optimizer_name": "optimizer", "scheduler_name": "scheduler", "criterion": "loss"}
HINTS = {"norm_mean": "all channels, or R, G, B", "norm_std": "all channels, or R, G, B"}


def config_path_from(arg: str | None) -> Path:
    """The config named by `--config`, else by the EXPERIMENT_CONFIG environment variable."""
    raw = arg or os.environ.get("EXPERIMENT_CONFIG")
    if not raw:
        raise ConfigError("no config given: pass --config PATH or set EXPERIMENT_CONFIG")
    return Path(raw)


def load_yaml(path: Path) -> Config:
    """Read a YAML mapping; a syntax error names the file and line."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (expected a YAML file)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def mix_flags(cfg: Config) -> tuple[bool, bool]:
    """(mixup, cutmix) as `augmentation.mixup` / `augmentation.cutmix` ask: read here, from the
    config, so the loss and the loaders ask the config rather than each other."""
    spec = cfg.get("augmentation")
    if not isinstance(spec, dict):
        return False, False
    return bool(spec.get("mixup", False)), bool(spec.get("cutmix", False))


def mixup_active(cfg: Config) -> bool:
    """Whether batches come mixed (soft targets), so the loss must take soft targets."""
    return any(mix_flags(cfg))


def flat_keys(cfg: Config, prefix: str = "") -> list[str]:
    """Every dotted key of a nested mapping, parents included."""
    keys = []
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(flat_keys(value, f"{dotted}."))
    return keys


def _parse_value(raw: str) -> Any:
    """Values are YAML, as in Hydra: `0.1` is a float, `[1,2]` a list, `abc` a string."""
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply `key=value` (key must exist), `+key=value` (must not), `++key=value`, `~key`."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        if item.startswith("~"):
            key, op, value = item[1:].split("=", 1)[0], "~", None
        elif "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value (or +key=value, ++key=value)")
        else:
            key, raw = item.split("=", 1)
            op = "++" if key.startswith("++") else "+" if key.startswith("+") else "="
            key = key.lstrip("+")
            value = _parse_value(raw)
        _set_dotted(out, key, value, op, item)
        for known in KEYS:
            if known == key or known.startswith(f"{key}."):
                _check_key(out, known, f"override '{item}'")
    return out


def _set_dotted(cfg: Config, key: str, value: Any, op: str, item: str) -> None:
    parts = key.split(".")
    if not key or not all(parts):
        raise ConfigError(f"override '{item}': expected a key like lr or scheduler_params.T_max")
    node = cfg
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and op in ("+", "++"):
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            if part not in node:
                hint = close_matches(where, flat_keys(cfg))
                raise ConfigError(f"override '{item}': unknown key '{where}'{hint}")
            raise ConfigError(f"override '{item}': '{where}' is not a mapping")
        node = child
    last = parts[-1]
    exists = last in node
    if op == "=" and not exists:
        hint = close_matches(key, flat_keys(cfg))
        raise ConfigError(
            f"override '{item}': unknown key '{key}'{hint}; use +{key}=... to add a new key"
        )
    if op == "+" and exists:
        raise ConfigError(f"override '{item}': key '{key}' already exists; use {key}=... or ++")
    if op == "~":
        if not exists:
            raise ConfigError(f"override '{item}': unknown key '{key}'")
        del node[last]
    else:
        node[last] = value


def _get_dotted(cfg: Config, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_key(cfg: Config, key: str, source: str) -> None:
    """The schema's check of one dotted key, when present; numeric strings become numbers."""
    present, value = _get_dotted(cfg, key)
    spec = KEYS.get(key)
    if not present or spec is None:
        return
    number = coerce(spec, value)
    if number is not value:
        value = number
        _put(cfg, key, value)
    expected = check(spec, value)
    if expected is None:
        return
    choices = spec.get("choices", ()) if isinstance(value, str) else ()
    if choices and key in NAME_NOUNS:
        raise ConfigError(f"{source}: {unknown_name(key, NAME_NOUNS[key], value, choices)}")
    hint = f" ({HINTS[key]})" if key in HINTS else ""
    raise ConfigError(
        f"{source}: '{key}' expected {expected}{hint}, got {value!r}"
        f"{close_matches(value, choices) if choices else ''}"
    )


def validate(cfg: Config, source: str = "config") -> Config:
    """Check every known key; numeric strings like '1e-3' become numbers."""
    for key in KEYS:
        _check_key(cfg, key, source)
    broken = rule_problem(cfg)
    if broken is not None:
        raise ConfigError(f"{source}: {broken}")
    return cfg


def _put(cfg: Config, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value


def load_config(path: Path, overrides: list[str]) -> Config:
    """The validated config: the file, then the overrides in order."""
    cfg = load_yaml(path)
    validate(cfg, source=str(path))
    cfg = apply_overrides(cfg, overrides)
    return validate(cfg, source="overrides" if overrides else str(path))


def unused_keys(cfg: Config) -> list[str]:
    """Top-level keys the trainer does not read (a category setting one would change nothing)."""
    known = {key.split(".")[0] for key in KEYS}
    return [key for key in cfg if key not in known]


def place_of(message: str, path: Path, overrides: list[str]) -> str:
    """Where a `key: problem` error found while building comes from: the last override that
    set a key under the same top-level key, else the config file."""
    root = message.split(":", 1)[0].strip().split(".")[0]
    for item in reversed(overrides):
        if item.lstrip("+~").split("=", 1)[0].split(".")[0] == root:
            return f"override '{item}'"
    return str(path)


def overrides_as_mapping(overrides: list[str]) -> dict[str, Any]:
    """The overrides as written, for overrides.yaml."""
    return {
        item.split("=", 1)[0]: _parse_value(item.split("=", 1)[1]) if "=" in item else None
        for item in overrides
    }

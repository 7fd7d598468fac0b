"""Load the YAML training config, apply Hydra-style overrides and check types.

Kept free of torch so a bad config fails in well under a second with one clear line.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainer.errors import ConfigError, close_matches

Config = dict[str, Any]

_NONE = type(None)
_NUM = (int, float)
# Expected types of the known keys (dotted). A key that is absent is not checked; keys that are
# not listed here (a user's own `+key=value`) are accepted as they are.
SCHEMA: dict[str, tuple[type, ...]] = {
    "model_name": (str, dict),
    "pretrained": (bool,),
    "fine_tuning": (str,),
    "num_classes": (int, _NONE),
    "model_kwargs": (dict, _NONE),
    "criterion": (str, dict),
    "label_smooth": _NUM,
    "focal_alpha": (*_NUM, _NONE),
    "focal_gamma": _NUM,
    "class_weighting": (str, list, bool, _NONE),
    "optimizer_name": (str, dict),
    "optimizer_params": (dict, _NONE),
    "lr": _NUM,
    "weight_decay": _NUM,
    "momentum": _NUM,
    "scheduler_name": (str, dict, _NONE),
    "scheduler_params": (dict, _NONE),
    "scheduler_params.T_max": (int, _NONE),
    "scheduler_params.eta_min": _NUM,
    "scheduler_params.max_lr": (*_NUM, _NONE),
    "scheduler_params.total_steps": (int, _NONE),
    "scheduler_params.step_size": (int,),
    "scheduler_params.gamma": _NUM,
    "scheduler_params.factor": _NUM,
    "scheduler_params.patience": (int,),
    "scheduler_params.pct_start": _NUM,
    "scheduler_params.warmup_epochs": (int, _NONE),
    "warmup_epochs": (int,),
    "image_size": (int,),
    "batch_size": (int,),
    "mixed_precision": (bool,),
    "epochs": (int,),
    "patience": (int, _NONE),
    "monitor": (str,),
    "val_split_ratio": _NUM,
    "n_folds": (int, _NONE),
    "stratify": (bool,),
    "random_seed": (int,),
    "data_dir": (str,),
    "train_data": (str,),
    "limit_samples": (int, _NONE),
    "num_workers": (int,),
    "cpu_threads": (int, _NONE),
    "device": (str,),
    "norm_mean": (list,),
    "norm_std": (list,),
    "augment": (dict, bool, _NONE),
    "augment.enabled": (bool,),
    "augment.hflip": _NUM,
    "augment.vflip": _NUM,
    "augment.rotate_degrees": _NUM,
    "augment.translate": _NUM,
    "wandb": (dict, _NONE),
    "wandb.project": (str, _NONE),
    "wandb.entity": (str, _NONE),
    "wandb.group": (str, _NONE),
    "wandb.tags": (list, str, _NONE),
    "wandb.id": (str, _NONE),
    "wandb.mode": (str,),
    "wandb.log": (bool,),
    "wandb.init_timeout": _NUM,
    "output_dir": (str,),
    "run_name": (str, _NONE),
}
POSITIVE_INTS = (
    "image_size",
    "batch_size",
    "epochs",
    "scheduler_params.T_max",
    "scheduler_params.total_steps",
    "scheduler_params.step_size",
)


@dataclass(frozen=True)
class Range:
    """The values a number may take; a bound of None is open-ended."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = True

    def __contains__(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, noun: str) -> str:
        """E.g. 'a number in [0, 1)' or 'an integer >= 0'."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{noun} {'<' if self.high_open else '<='} {self.high:g}"


NON_NEGATIVE = Range(0)
# Values outside these make no sense and would fail late, or silently do something else
# (label_smooth 1.5 flips the target, patience -1 stops after every epoch).
RANGES: dict[str, Range] = {
    "lr": Range(0, low_open=True),
    "weight_decay": NON_NEGATIVE,
    "momentum": Range(0, 1, high_open=False),
    "label_smooth": Range(0, 1),
    "focal_alpha": NON_NEGATIVE,
    "focal_gamma": NON_NEGATIVE,
    "patience": NON_NEGATIVE,
    "warmup_epochs": NON_NEGATIVE,
    "scheduler_params.warmup_epochs": NON_NEGATIVE,
    "scheduler_params.eta_min": NON_NEGATIVE,
    "scheduler_params.gamma": Range(0, low_open=True),
    "num_workers": NON_NEGATIVE,
}
# Per-channel lists: the images are always decoded to RGB; one value serves all three channels.
CHANNEL_LISTS = ("norm_mean", "norm_std")
CHOICES: dict[str, tuple[str, ...]] = {
    "fine_tuning": ("full", "head", "scratch"),
    "monitor": ("val_f1", "val_acc", "val_loss"),
    "wandb.mode": ("online", "offline", "disabled"),
}


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
        for known in SCHEMA:
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


def _type_name(types: tuple[type, ...]) -> str:
    names = {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a mapping",
        list: "a list",
        _NONE: "null",
    }
    if float in types:  # an integer is a number too
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_key(cfg: Config, key: str, source: str) -> None:
    """Type, range and choice checks of one dotted key, when present."""
    present, value = _get_dotted(cfg, key)
    types = SCHEMA.get(key)
    if not present or types is None:
        return
    if float in types and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
        else:
            _put(cfg, key, value)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{source}: '{key}' expected {_type_name(types)}, got {value!r}")
    if key in POSITIVE_INTS and value is not None and value <= 0:
        raise ConfigError(f"{source}: '{key}' expected a positive integer, got {value!r}")
    bounds = RANGES.get(key)
    if bounds is not None and value is not None and value not in bounds:
        noun = "a number" if float in types else "an integer"
        raise ConfigError(f"{source}: '{key}' expected {bounds.describe(noun)}, got {value!r}")
    if key in CHANNEL_LISTS:
        _check_channels(key, value, source)
    allowed = CHOICES.get(key)
    if allowed and value not in allowed:
        raise ConfigError(
            f"{source}: '{key}' expected one of {', '.join(allowed)}, got {value!r}"
            f"{close_matches(str(value), allowed)}"
        )


def _check_channels(key: str, value: list, source: str) -> None:
    """1 or 3 numbers; a standard deviation must be > 0 (it divides every pixel)."""
    numbers = all(isinstance(v, _NUM) and not isinstance(v, bool) for v in value)
    positive = key != "norm_std" or (numbers and all(v > 0 for v in value))
    if not (len(value) in (1, 3) and numbers and positive):
        what = "numbers > 0" if key == "norm_std" else "numbers"
        raise ConfigError(
            f"{source}: '{key}' expected 1 or 3 {what} (all channels, or R, G, B), got {value!r}"
        )


def validate(cfg: Config, source: str = "config") -> Config:
    """Check every known key; numeric strings like '1e-3' become numbers."""
    for key in SCHEMA:
        _check_key(cfg, key, source)
    ratio = cfg.get("val_split_ratio", 0.2)
    if not 0 < ratio < 1 and (cfg.get("n_folds") or 0) < 2:
        raise ConfigError(f"{source}: 'val_split_ratio' expected a number in (0, 1), got {ratio}")
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
    known = {key.split(".")[0] for key in SCHEMA}
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

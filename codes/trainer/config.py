"""Load the YAML training config, apply Hydra-style overrides and check types.

Kept free of torch so a bad config fails in well under a second with one clear line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hpsys_reporter.compose import check_choice, compose, is_primary, split
from hpsys_reporter.overrides import NO_VALUE, OverrideError, resolve
from hpsys_reporter.overrides import apply as apply_override
from hpsys_reporter.overrides import parse as parse_override
from hpsys_reporter.tracked import flat_keys
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


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply overrides in Hydra's grammar and semantics (hpsys_reporter.overrides, the runner's
    reader too: `key=value` changes, `+key=value` adds, `++key=value` either, `~key` deletes),
    checking each key they reach, then resolve the config's `${...}` interpolations."""
    out = dict(cfg)
    for item in overrides:
        try:
            override = parse_override(item)
            apply_override(out, override)
        except OverrideError as exc:
            hint = exc.message(lambda key: close_matches(key, flat_keys(out)))
            raise ConfigError(f"override '{item}': {hint}") from None
        for known in KEYS:
            if known == override.key or known.startswith(f"{override.key}."):
                _check_key(out, known, f"override '{item}'")
    return resolved(out, "overrides")


def resolved(cfg: Config, source: str) -> Config:
    """The config with its `${...}` interpolations resolved (OmegaConf's, as Hydra's)."""
    try:
        return resolve(cfg)
    except OverrideError as exc:
        raise ConfigError(f"{source}: {exc}") from None


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
    """The validated config: the file (a Hydra primary config composed with the overrides'
    group choices, as the runner composes it), then the other overrides in order."""
    cfg = load_yaml(path)
    if is_primary(cfg):
        choices, overrides = split(path, overrides)
        for item in choices:
            try:
                check_choice(path, item)
            except OverrideError as exc:
                raise ConfigError(f"override '{item}': {exc}") from None
        try:
            cfg = compose(path, choices)
        except OverrideError as exc:
            raise ConfigError(str(exc)) from None
    cfg = resolved(cfg, str(path))
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
        if parse_override(item).key.split(".")[0] == root:
            return f"override '{item}'"
    return str(path)


def overrides_as_mapping(overrides: list[str]) -> dict[str, Any]:
    """The overrides as written, for overrides.yaml."""
    out: dict[str, Any] = {}
    for item in overrides:
        override = parse_override(item)
        prefix = "" if override.op == "=" else override.op
        out[f"{prefix}{override.key}"] = None if override.value is NO_VALUE else override.value
    return out

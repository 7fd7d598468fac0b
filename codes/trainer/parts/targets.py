"""`_target_` mappings: build any importable class with the mapping's other keys, so a user's
own model, optimizer, scheduler or loss needs no change to the engine (Hydra's convention)."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from trainer.errors import ConfigError


def import_target(path: str, key: str) -> Any:
    """The object named by a dotted `_target_` path such as `torch.optim.SGD`."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ConfigError(
            f"{key}._target_: expected a dotted path like pkg.module.Class, got {path!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a user's module next to the repository root
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{key}._target_: cannot import {path!r} ({exc})") from None


def call_target(spec: dict[str, Any], key: str, *args: Any, **defaults: Any) -> Any:
    """Build `spec['_target_']` with the spec's other keys; defaults fill accepted gaps only."""
    cls = import_target(str(spec["_target_"]), key)
    kwargs = {k: v for k, v in spec.items() if k != "_target_"}
    try:
        params = inspect.signature(cls).parameters
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, open_kwargs = {}, False
    for name, value in defaults.items():
        if name not in kwargs and (name in params or open_kwargs):
            kwargs[name] = value
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key}: cannot build {spec['_target_']} ({exc})") from None

"""`_target_` mappings: build any importable class with the mapping's other keys, so a user's
own model, optimizer, scheduler or loss needs no change to the engine. Built by Hydra
(`hydra.utils.instantiate`, its convention and its nested `_target_`s); the errors stay one
line naming the key and the target."""

from __future__ import annotations

import inspect
import logging
import os
import sys
from typing import Any

from trainer.errors import ConfigError


def _said(exc: BaseException) -> str:
    """What Hydra (or the cause it wraps) said, on one line: its first two lines name the
    target and the error under it."""
    cause = exc.__cause__ or exc
    text = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return " ".join(text[:2]) or type(cause).__name__


def import_target(path: str, key: str) -> Any:
    """The object named by a dotted `_target_` path such as `torch.optim.SGD` (Hydra's lookup)."""
    if "." not in path.strip("."):
        raise ConfigError(
            f"{key}._target_: expected a dotted path like pkg.module.Class, got {path!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a user's module next to the repository root
    from hydra.utils import get_object

    quiet = logging.getLogger("hydra.utils")  # it logs the failure in lines of its own
    was, quiet.disabled = quiet.disabled, True
    try:
        return get_object(path)
    except Exception as exc:  # noqa: BLE001 - ImportError, AttributeError, Hydra's wrapping
        raise ConfigError(f"{key}._target_: cannot import {path!r} ({_said(exc)})") from None
    finally:
        quiet.disabled = was


def call_target(spec: dict[str, Any], key: str, *args: Any, **defaults: Any) -> Any:
    """Build `spec['_target_']` with the spec's other keys (hydra.utils.instantiate); `args`
    and `defaults` (built objects such as parameters or a weight tensor) are handed to the call
    as they are, defaults only where the target accepts them and the spec is silent."""
    cls = import_target(str(spec["_target_"]), key)
    try:
        params = inspect.signature(cls).parameters
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, open_kwargs = {}, False
    extra = {name: value for name, value in defaults.items()
             if name not in spec and (name in params or open_kwargs)}
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:  # Hydra makes the partial (nested _target_s built); the call adds the built objects
        return instantiate(dict(spec), _partial_=True, _convert_="all")(*args, **extra)
    except (InstantiationException, TypeError) as exc:
        raise ConfigError(f"{key}: cannot build {spec['_target_']} ({_said(exc)})") from None

"""Plugin loading: the built-in categories, then installed entry points, once per process."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

import pluggy

from hyperparameter_system import hookspecs
from hyperparameter_system.categories.base import Category
from hyperparameter_system.core.errors import HpsysError

ENTRY_POINT_GROUP = "hyperparameter_system.categories"
DISABLE_ENV = "HPSYS_DISABLE_PLUGINS"  # "1": built-ins only, ignore installed entry points

DEFAULT_PLUGINS = (
    "hyperparameter_system.categories.optimizer",
    "hyperparameter_system.categories.scheduler",
    "hyperparameter_system.categories.loss_function",
    "hyperparameter_system.categories.image_size",
    "hyperparameter_system.categories.batch_size",
    "hyperparameter_system.categories.early_stopping",
    "hyperparameter_system.categories.augmentation",
    "hyperparameter_system.categories.regularization",
)

_registry: dict[str, Category] | None = None


def plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with the default plugins and, unless disabled, the entry points."""
    pm = pluggy.PluginManager("hyperparameter_system")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if os.environ.get(DISABLE_ENV, "") != "1":
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


def categories() -> Mapping[str, Category]:
    """Every registered category by name; a second plugin claiming a name is refused."""
    global _registry
    if _registry is None:
        found: dict[str, Category] = {}

        def register(category: Category) -> None:
            if category.name in found:
                raise HpsysError(
                    f"plugin {type(category).__module__}",
                    f"category '{category.name}' is already registered by "
                    f"{type(found[category.name]).__module__}",
                )
            found[category.name] = category

        plugin_manager().hook.register_categories(register=register)
        _registry = found
    return _registry


def reset() -> None:
    """Forget the loaded plugins (tests install entry points on the fly)."""
    global _registry
    _registry = None

"""early_stopping: patience -> `es_patience10`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register
from hyperparameter_system.hookspecs import hookimpl


class EarlyStoppingCategory(Category):
    name = "early_stopping"
    params = (Param("patience", "patience", int, required=True),)

    def run_name(self, option: Mapping[str, Any]) -> str:
        return f"es_patience{option['patience']}"


@hookimpl
def register_categories(register: Register) -> None:
    register(EarlyStoppingCategory())

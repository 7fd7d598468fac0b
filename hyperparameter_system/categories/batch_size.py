"""batch_size: batch_size, mixed_precision -> `batch32_MP` (or `batch64` without AMP)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register
from hyperparameter_system.hookspecs import hookimpl


class BatchSizeCategory(Category):
    name = "batch_size"
    params = (
        Param("batch_size", "batch_size", int, required=True),
        Param("mixed_precision", "mixed_precision", bool),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        return f"batch{option['batch_size']}{'_MP' if option.get('mixed_precision') else ''}"


@hookimpl
def register_categories(register: Register) -> None:
    register(BatchSizeCategory())

"""image_size: size, batch_size -> `img320_batch64`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl


class ImageSizeCategory(Category):
    name = "image_size"
    params = (
        Param("size", "image_size", int, required=True),
        Param("batch_size", "batch_size", int),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        return f"img{option['size']}{parts(option, ('batch', 'batch_size'))}"


@hookimpl
def register_categories(register: Register) -> None:
    register(ImageSizeCategory())

"""regularization: dropout, drop_path, weight_decay, label_smooth -> `reg_drop0.1_wd0.001`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl


class RegularizationCategory(Category):
    name = "regularization"
    params = (
        Param("dropout", "timm.drop_rate", float),
        Param("drop_path", "timm.drop_path_rate", float),
        Param("weight_decay", "weight_decay", float),
        Param("label_smooth", "label_smooth", float),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("drop", "dropout"), ("dp", "drop_path"), ("wd", "weight_decay"),
                 ("ls", "label_smooth"))
        return f"reg{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(RegularizationCategory())

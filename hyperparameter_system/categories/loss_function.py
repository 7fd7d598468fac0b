"""loss_function: name, alpha, gamma, smoothing -> `loss_FocalLoss_alpha2_gamma1`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl


class LossFunctionCategory(Category):
    name = "loss_function"
    params = (
        Param("name", "criterion", str, required=True),
        Param("alpha", "focal_alpha", float),
        Param("gamma", "focal_gamma", float),
        Param("smoothing", "label_smooth", float),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("alpha", "alpha"), ("gamma", "gamma"), ("smooth", "smoothing"))
        return f"loss_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(LossFunctionCategory())

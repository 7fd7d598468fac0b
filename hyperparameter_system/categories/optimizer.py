"""optimizer: name, lr, weight_decay, momentum -> `opt_AdamW_lr0.001_wd0.001`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl


class OptimizerCategory(Category):
    name = "optimizer"
    prefix = "opt"  # run names; a config-group choice too (GroupChoices)
    params = (
        Param("name", "optimizer_name", str, required=True),
        Param("lr", "lr", float),
        Param("weight_decay", "weight_decay", float),
        Param("momentum", "momentum", float),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("lr", "lr"), ("mom", "momentum"), ("wd", "weight_decay"))
        return f"opt_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(OptimizerCategory())

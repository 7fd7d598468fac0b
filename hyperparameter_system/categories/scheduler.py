"""scheduler: name plus its parameters (into scheduler_params) -> `sch_CosineAnnealingLR_T25`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl


class SchedulerCategory(Category):
    name = "scheduler"
    prefix = "sch"  # run names; a config-group choice too (GroupChoices)
    extra_target = "scheduler_params"  # other keys: the scheduler's own parameters
    params = (
        Param("name", "scheduler_name", str, required=True),
        Param("T_max", "scheduler_params.T_max", int),
        Param("eta_min", "scheduler_params.eta_min", float),
        Param("max_lr", "scheduler_params.max_lr", float),
        Param("total_steps", "scheduler_params.total_steps", int),
        Param("pct_start", "scheduler_params.pct_start", float),
        Param("step_size", "scheduler_params.step_size", int),
        Param("gamma", "scheduler_params.gamma", float),
        Param("factor", "scheduler_params.factor", float),
        Param("patience", "scheduler_params.patience", int),
        Param("warmup_epochs", "scheduler_params.warmup_epochs", int),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("T", "T_max"), ("maxlr", "max_lr"), ("step", "step_size"), ("gamma", "gamma"))
        return f"sch_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(SchedulerCategory())

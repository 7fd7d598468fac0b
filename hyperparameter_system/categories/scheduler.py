"""scheduler: name plus its parameters (into scheduler_params) -> `sch_CosineAnnealingLR_T25`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl

# Every parameter of torch.optim.lr_scheduler's schedulers (the trainer passes each scheduler
# the ones its signature takes), named here because the runner never imports torch.
TORCH_SCHEDULER_PARAMS = frozenset({
    "T_0", "T_mult", "anneal_strategy", "base_lr", "base_momentum", "cooldown",
    "cycle_momentum", "div_factor", "end_factor", "eps", "epochs", "final_div_factor", "last_epoch",
    "max_momentum", "milestones", "min_lr", "mode", "power", "scale_mode", "start_factor",
    "step_size_down", "step_size_up", "steps_per_epoch", "three_phase", "threshold",
    "threshold_mode", "total_iters",
})


# torch's schedulers that scalar parameters can build (LambdaLR, SequentialLR and the like take
# functions or other schedulers), and `none`.
SCHEDULERS = ("CosineAnnealingLR", "OneCycleLR", "StepLR", "ExponentialLR", "ReduceLROnPlateau",
              "MultiStepLR", "CosineAnnealingWarmRestarts", "PolynomialLR", "CyclicLR",
              "LinearLR", "ConstantLR", "none")


class SchedulerCategory(Category):
    name = "scheduler"
    extra_target = "scheduler_params"  # other keys: the scheduler's own parameters
    extra_keys = TORCH_SCHEDULER_PARAMS
    params = (
        Param("name", "scheduler_name", str, required=True, listed=SCHEDULERS),
        Param("T_max", "scheduler_params.T_max", int, minimum=1),
        Param("eta_min", "scheduler_params.eta_min", float, minimum=0.0),
        Param("max_lr", "scheduler_params.max_lr", float, minimum=0.0),
        Param("total_steps", "scheduler_params.total_steps", int, minimum=1),
        Param("pct_start", "scheduler_params.pct_start", float, minimum=0.0, maximum=1.0),
        Param("step_size", "scheduler_params.step_size", int, minimum=1),
        Param("gamma", "scheduler_params.gamma", float, minimum=0.0),
        Param("factor", "scheduler_params.factor", float, minimum=0.0, maximum=1.0),
        Param("patience", "scheduler_params.patience", int, minimum=0),
        Param("warmup_epochs", "scheduler_params.warmup_epochs", int, minimum=0),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("T", "T_max"), ("maxlr", "max_lr"), ("step", "step_size"), ("gamma", "gamma"))
        return f"sch_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(SchedulerCategory())

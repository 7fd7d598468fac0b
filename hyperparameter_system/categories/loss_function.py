"""loss_function: name, alpha, gamma, smoothing -> `loss_FocalLoss_alpha2_gamma1`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperparameter_system.categories.base import Category, Param, Register, parts
from hyperparameter_system.hookspecs import hookimpl

LOSSES = ("CrossEntropyLoss", "FocalLoss", "LabelSmoothingLoss")
LOSS_ALIASES = frozenset({"CrossEntropy", "CE", "Focal", "LabelSmoothing"})  # the trainer's


class LossFunctionCategory(Category):
    name = "loss_function"
    params = (
        Param("name", "criterion", str, required=True, listed=LOSSES, choices=LOSS_ALIASES,
              others="a short alias (CE, Focal, LabelSmoothing)"),
        Param("alpha", "focal_alpha", float, minimum=0.0),
        Param("gamma", "focal_gamma", float, minimum=0.0),
        Param("smoothing", "label_smooth", float, minimum=0.0, maximum=1.0),
    )

    def run_name(self, option: Mapping[str, Any]) -> str:
        pairs = (("alpha", "alpha"), ("gamma", "gamma"), ("smooth", "smoothing"))
        return f"loss_{option['name']}{parts(option, *pairs)}"


@hookimpl
def register_categories(register: Register) -> None:
    register(LossFunctionCategory())

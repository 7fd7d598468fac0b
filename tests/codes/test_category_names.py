"""The runner refuses optimizer, scheduler and loss names before launching (it never imports
timm or torch); every name it accepts must be one the training engine builds."""

from __future__ import annotations

import pytest
from trainer import builders

from hyperparameter_system.categories.loss_function import LOSS_ALIASES, LOSSES
from hyperparameter_system.categories.optimizer import OPTIMIZERS, TIMM_OPTIMIZERS
from hyperparameter_system.categories.scheduler import SCHEDULERS


def _cases(*names: str) -> list[str]:
    """Each name as written and in other case: the runner compares them ignoring case."""
    return [form for name in names for form in (name, name.lower(), name.upper())]


@pytest.mark.parametrize("name", _cases(*OPTIMIZERS, *sorted(TIMM_OPTIMIZERS)))
def test_every_optimizer_name_the_runner_accepts_is_timms(name):
    builders.optimizer_key(name)


@pytest.mark.parametrize("name", _cases(*SCHEDULERS))
def test_every_scheduler_name_the_runner_accepts_is_built(name):
    builders.scheduler_class(name)


@pytest.mark.parametrize("name", _cases(*LOSSES, *sorted(LOSS_ALIASES)))
def test_every_loss_name_the_runner_accepts_is_built(name):
    builders.build_criterion({"criterion": name}, None)

"""The builders under their long-standing import path (`from trainer import builders`, as
bench/ and users' scripts write it); each lives in trainer/parts/.

Names are matched ignoring case, as the schema publishes them; a `_target_` mapping builds any
importable class. `effective_*` read values back from the built objects, never from the config,
so tests and the runner see what really ran.
"""

from __future__ import annotations

from trainer.parts.assemble import Parts, build_parts, validate_names
from trainer.parts.losses import build_criterion, class_weights, effective_criterion
from trainer.parts.model import build_model, check_model_name
from trainer.parts.optimizer import build_optimizer, effective_optimizer, optimizer_key
from trainer.parts.scheduler import (
    Schedule,
    build_scheduler,
    effective_scheduler_params,
    scheduler_class,
    warmup_epochs,
)
from trainer.parts.targets import import_target

__all__ = [
    "Parts",
    "Schedule",
    "build_criterion",
    "build_model",
    "build_optimizer",
    "build_parts",
    "build_scheduler",
    "check_model_name",
    "class_weights",
    "effective_criterion",
    "effective_optimizer",
    "effective_scheduler_params",
    "import_target",
    "optimizer_key",
    "scheduler_class",
    "validate_names",
    "warmup_epochs",
]

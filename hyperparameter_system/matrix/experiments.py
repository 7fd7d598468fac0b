"""The experiment matrix: enabled models x enabled categories x options, plus a baseline each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperparameter_system.config.settings import ModelSettings, Settings
from hyperparameter_system.core.configdict import (
    CanonicalBase,
    apply_changes,
    canonical,
    get_dotted,
    stable_hash,
)
from hyperparameter_system.core.errors import HpsysError, choices_hint

BASELINE = "baseline"
COMBINED = "combined"


@dataclass(frozen=True)
class Experiment:
    """One run of one model with one option (or the baseline), identified by what it does."""

    id: str
    index: int
    model: str
    project: str
    category: str
    option: Mapping[str, Any]
    label: str
    run_name: str
    changes: Mapping[str, Any]
    config: Mapping[str, Any] = field(repr=False)
    script: tuple[str, ...]
    repeat: int = 0

    @property
    def option_json(self) -> str:
        return canonical(self.option)

    def describe(self) -> str:
        return f"{self.model} / {self.category} / {self.run_name}"


@dataclass(frozen=True)
class Job:
    """What one experiment of a model is made of, before its config is resolved: the option of
    a category (or the baseline, a combined config, a study's trial), the config changes it
    makes and the run name it goes by."""

    category: str
    option: Mapping[str, Any]
    changes: Mapping[str, Any]
    run_name: str


def make_experiment(
    model: ModelSettings,
    job: Job,
    index: int,
    repeat: int = 0,
    repeats: int = 1,
    base_text: CanonicalBase | None = None,
) -> Experiment:
    """Resolve the config and derive the stable id from model, category, option and config
    (`base_text`: the model's base serialised once, when many experiments share it)."""
    config = apply_changes(model.base, {"model_name": model.name, **job.changes})
    changed = ["model_name", *job.changes]  # the config's dotted keys that may differ from base
    run_name = job.run_name
    if repeats > 1:
        seed = _base_seed(model, config) + repeat
        config["random_seed"] = seed
        run_name = f"{run_name}_seed{seed}"
        changed.append("random_seed")
    names = (model.name, job.category, canonical(job.option))
    exp_id = (stable_hash(*names, config, list(model.script)) if base_text is None else
              base_text.stable_hash(names, config, (k.split(".")[0] for k in changed),
                                    (list(model.script),)))
    label = str(job.option.get("description") or run_name)
    return Experiment(exp_id, index, model.name, model.project, job.category, dict(job.option),
                      label, run_name, dict(job.changes), config, model.script, repeat)


def _base_seed(model: ModelSettings, config: Mapping[str, Any]) -> int:
    """The seed that execution.repeats counts up from; not a number is bad input, told at the
    model's base config rather than as a traceback."""
    value = get_dotted(config, "random_seed", 42)
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        raise HpsysError(f"{model.base_config}: random_seed",
                         f"expected an integer (model {model.name}, execution.repeats counts up "
                         f"from it), got {value!r}") from None


def check_names(settings: Settings, models: Iterable[str] | None,
                categories: Iterable[str] | None) -> None:
    """Unknown names on the command line: list the valid ones and the close match."""
    known_models = [m.name for m in settings.models]
    for name in models or ():
        if name not in known_models:
            raise HpsysError(f"--models {name}",
                             f"unknown model; {choices_hint(name, known_models)}")
    known_cats = [c.name for c in settings.categories]
    for name in categories or ():
        if name not in known_cats:
            raise HpsysError(f"--categories {name}",
                             f"unknown category; {choices_hint(name, known_cats)}")


def build_matrix(
    settings: Settings,
    models: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    baseline: bool | None = None,
    strict: bool = True,
) -> list[Experiment]:
    """Every experiment of the selection, in a stable order (model, baseline, category, option).

    Named models and categories run even when disabled in the file: naming them is the choice,
    and raises the problem a disabled entry holds. Not `strict`: for reading the ledger only
    (a report must not fail on a script removed since its runs).
    """
    check_names(settings, models, categories)
    chosen_models = [m.checked() if strict else m for m in settings.models
                     if (m.name in models if models else m.enabled)]
    chosen_cats = [c.checked() if strict else c for c in settings.categories
                   if (c.name in categories if categories else c.enabled)]
    with_baseline = settings.system.baseline if baseline is None else baseline
    repeats = settings.execution.repeats
    out: list[Experiment] = []
    for model in chosen_models:
        jobs = [Job(BASELINE, {}, {}, BASELINE)] if with_baseline else []
        for cat in chosen_cats:
            for option in cat.options:
                jobs.append(Job(cat.name, option, cat.plugin.changes(option),
                                cat.plugin.run_name(option)))
        base_text = CanonicalBase(model.base)
        for job in jobs:
            for repeat in range(repeats):
                out.append(make_experiment(model, job, len(out) + 1, repeat, repeats,
                                           base_text))
    return out

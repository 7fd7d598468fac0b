"""Every question the menu asks, declared as data, and `ask()`, the one place that asks them.

Nothing else in the package imports questionary, so tests replace `ask` with scripted answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import questionary

from hyperparameter_system.config.pruning import PRUNING_RULES
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.durations import fmt_duration

if TYPE_CHECKING:
    from hyperparameter_system.app.api import RunPlan
    from hyperparameter_system.app.search_api import SearchPlan


@dataclass(frozen=True)
class Choice:
    title: str
    value: str
    checked: bool = False


@dataclass(frozen=True)
class Select:
    """Pick one with the arrow keys and Enter; `default`: the value the pointer starts on."""

    message: str
    choices: tuple[Choice, ...]
    default: str | None = None


@dataclass(frozen=True)
class Checkbox:
    """Pick several with the arrow keys and space; at least one, so an empty pick never means
    'everything'."""

    message: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class Confirm:
    message: str
    default: bool = True


@dataclass(frozen=True)
class PathInput:
    """A file path; `validate` returns True or the reason shown under the prompt."""

    message: str
    default: str = ""
    validate: Callable[[str], bool | str] | None = None


Question = Select | Checkbox | Confirm | PathInput


def ask(question: Question) -> Any | None:
    """The answer, or None when the user pressed Ctrl-C or Ctrl-D: the caller goes back a level."""
    try:
        return build(question).unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        return None


def build(question: Question, **app: Any) -> questionary.Question:
    """The questionary question for one declaration (`app`: input/output, for tests)."""
    if isinstance(question, Select):
        return questionary.select(question.message, [_choice(c) for c in question.choices],
                                  default=question.default, **app)
    if isinstance(question, Checkbox):
        return questionary.checkbox(question.message, [_choice(c) for c in question.choices],
                                    validate=lambda picked: bool(picked) or "pick at least one",
                                    **app)
    if isinstance(question, Confirm):
        return questionary.confirm(question.message, default=question.default, **app)
    if isinstance(question, PathInput):
        return questionary.path(question.message, default=question.default,
                                validate=question.validate, **app)
    raise TypeError(f"not a question: {question!r}")


def _choice(choice: Choice) -> questionary.Choice:
    return questionary.Choice(choice.title, value=choice.value, checked=choice.checked)


# -- the menu's questions -----------------------------------------------------------------------

MAIN_CHOICES = (
    Choice("Show the experiment matrix", "matrix"),
    Choice("Run everything", "all"),
    Choice("Choose models", "models"),
    Choice("Choose categories", "categories"),
    Choice("Custom: choose models and categories", "custom"),
    Choice("Rerun failed experiments", "failed"),
    Choice("Search (Optuna): run a search block's trials", "search"),
    Choice("Summary report", "summary"),
    Choice("Switch the master config file", "config"),
    Choice("Quit", "quit"),
)


def main_menu(settings: Settings) -> Select:
    return Select(f"{settings.path.name}: what next?", MAIN_CHOICES)


def choose_models(settings: Settings, picked: Sequence[str] | None = None) -> Checkbox:
    """Every model of the file; `picked` pre-selected (coming back to the question), else the
    enabled ones (a disabled one runs if picked)."""
    chosen = set(picked) if picked else {m.name for m in settings.models if m.enabled}
    return Checkbox("Models to run", tuple(
        Choice(m.name + ("" if m.enabled else " (disabled)"), m.name, m.name in chosen)
        for m in settings.models))


def choose_categories(settings: Settings) -> Checkbox:
    def title(c) -> str:
        count = len(c.options)
        return (f"{c.name} ({count} option{'' if count == 1 else 's'})"
                + ("" if c.enabled else " (disabled)"))

    return Checkbox("Categories to run", tuple(
        Choice(title(c), c.name, c.enabled) for c in settings.categories))


def confirm_run(plan: RunPlan, rule: str = "none") -> Select:
    """States the count, what is skipped as done, and the estimated time over the slots the run
    really has (GPUs may cap them below max_parallel), before anything runs; the answer also
    picks pruning for this run, whether or not execution.pruning is configured: a
    rule of PRUNING_RULES, "none" (every option to the end), or "no" (do not run). Enter
    takes `rule`, the configured one."""
    choices = tuple(Choice(f"Yes, stopping losers early ({r})", r) if r != "none" else
                    Choice("Yes, every option to the end (no pruning)", r)
                    for r in PRUNING_RULES)
    return Select(run_summary(plan) + "?", (*choices, Choice("No", "no")), default=rule)


def run_summary(plan: RunPlan) -> str:
    """`Run 4 of 6 experiment(s) (2 already done, skipped), estimated 3m on 2 slot(s)`."""
    text = f"Run {len(plan.to_run)} of {plan.total} experiment(s)"
    text += f" ({plan.skipped} already done, skipped)" if plan.skipped else ""
    if plan.estimate_s is None:
        text += ", no time estimate yet"
    else:
        text += f", estimated {fmt_duration(plan.estimate_s)} on {plan.slots} slot(s)"
        text += f" ({plan.unknown} without an estimate)" if plan.unknown else ""
    if plan.estimate_max_s is not None:
        text += f", up to {fmt_duration(plan.estimate_max_s)} if every option needs max seeds"
    return text + (f"; {plan.seeds}" if plan.seeds else "")


def choose_search(settings: Settings) -> Select:
    """Every search block; a disabled one is marked (picking it is the choice, as naming it
    with --search is)."""
    return Select("Search to run", tuple(
        Choice(f"{s.name} ({', '.join(s.models)}; {s.n_trials} trials)"
               + ("" if s.enabled else " [disabled]"), s.name)
        for s in settings.searches))


def confirm_search(plan: SearchPlan) -> Confirm:
    """The trials left to finish, the slots, the estimate: as the matrix's confirmation."""
    text = f"Run {plan.trials} trial(s) of {plan.search} on {plan.slots} slot(s)"
    text += (", no time estimate yet" if plan.estimate_s is None
             else f", estimated {fmt_duration(plan.estimate_s)}")
    return Confirm(text + "?", default=True)


def config_path(current: str, validate: Callable[[str], bool | str]) -> PathInput:
    return PathInput("Master config file", default=current, validate=validate)

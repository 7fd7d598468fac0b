"""The interactive menu over the runner API (the seed's recommended way in).

    python hyperparameter_system/run_experiments.py [--config experiment_config.yaml]
    python -m hyperparameter_system

Each action calls the same API as the flags (experiment_runner.py); questions come from
prompts.py and everything shown goes through console.py. Ctrl-C at a prompt goes back one
level: from the categories of a custom pick to its models (still ticked), from any other
question to the main menu, and at the main menu it quits. Ctrl-C during a run stops it as the
flags do; the presses that follow within STOP_GRACE_S belong to that stop, not to the menu.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable, not its folder
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.core.errors import EXIT_BAD_INPUT, HpsysError
from hyperparameter_system.matrix.experiments import Experiment
from hyperparameter_system.run.tally import RunResult
from hyperparameter_system.ui import cli, commands, console, prompts

NO_TERMINAL = ("not a terminal, and the menu needs one; use the flags instead: "
               "python hyperparameter_system/experiment_runner.py --all | --models NAME... | "
               "--categories NAME... | --matrix | --summary")

MENU_RESUME_HINT = ("to resume, pick the same experiments again (what is done is skipped); "
                    "'Rerun failed experiments' takes only those that failed or were stopped")

Action = Callable[[Settings], Settings | None]
STOP_GRACE_S = 3.0  # Ctrl-C pressed again and again to stop a run must not also quit the menu
_stopped_at = float("-inf")  # when a run or an action was last stopped by Ctrl-C


def _note_stop() -> None:
    global _stopped_at
    _stopped_at = time.monotonic()


def main(argv: Sequence[str] | None = None) -> int:
    return cli.until_output_gone(lambda: _start(argv))


def _start(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
        if not console.interactive():
            raise HpsysError("standard input", NO_TERMINAL)
        cli.stop_on_signals()
        cli.tell_lock_waits()
        settings = api.load(args.config)
    except HpsysError as exc:
        console.error(str(exc))
        return EXIT_BAD_INPUT
    menu(settings)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="run_experiments", description="Interactive menu over the experiment "
                   "runner (the flags are in experiment_runner.py).")
    p.add_argument("--config", default="experiment_config.yaml", help="master config file")
    return p


def menu(settings: Settings) -> None:
    """Ask what next until Quit (or Ctrl-C at the main menu); every action comes back here."""
    while True:
        choice = prompts.ask(prompts.main_menu(settings))
        if choice is None and time.monotonic() - _stopped_at < STOP_GRACE_S:
            _note_stop()  # a press meant for the run just stopped: stay
            console.info("the run is stopped; Ctrl-C again in a few seconds, or Quit, leaves")
            continue
        if choice in (None, "quit"):
            console.info("bye")
            return
        try:
            settings = ACTIONS[choice](settings) or settings
        except HpsysError as exc:
            console.error(str(exc))
        except KeyboardInterrupt:
            _note_stop()
            console.warn("interrupted; back to the menu")


def show_matrix(settings: Settings) -> None:
    commands.show_matrix(settings, api.select(settings))


def run_all(settings: Settings) -> None:
    confirm_and_run(settings, api.select(settings))


def run_models(settings: Settings) -> None:
    models = prompts.ask(prompts.choose_models(settings))
    if models:
        confirm_and_run(settings, api.select(settings, models))


def run_categories(settings: Settings) -> None:
    categories = prompts.ask(prompts.choose_categories(settings))
    if categories:
        confirm_and_run(settings, api.select(settings, None, categories))


def run_custom(settings: Settings) -> None:
    """Models, then categories. Ctrl-C at the categories goes back to the models (the ones
    just picked still ticked); Ctrl-C at the models goes back to the main menu."""
    models = None
    while True:
        models = prompts.ask(prompts.choose_models(settings, models))
        if not models:
            return
        categories = prompts.ask(prompts.choose_categories(settings))
        if categories is None:
            continue
        if categories:
            confirm_and_run(settings, api.select(settings, models, categories))
        return


def rerun_failed(settings: Settings) -> None:
    experiments = api.failed(settings)
    if not experiments:
        console.info("no failed experiments in the current matrix")
        return
    confirm_and_run(settings, experiments)


def run_search(settings: Settings) -> None:
    """Pick a search block, confirm its trials, slots and estimate, then run it."""
    if not settings.searches:
        console.info("no search: blocks in this config (see README, Search)")
        return
    name = prompts.ask(prompts.choose_search(settings))
    if not name:
        return
    from hyperparameter_system.app import search_api as searches  # Optuna: only when searching

    plan = searches.plan_search(settings, name)
    if not plan.trials:
        console.info(f"nothing to run: every study of {name} holds its trials")
        return
    if prompts.ask(prompts.confirm_search(plan)):
        _shown(commands.search(settings, name), f"to resume, run the search {name} again "
               "(its study goes on from the trials it holds)")


def summary(settings: Settings) -> None:
    """The summary, and the searches' study tables as --summary prints them."""
    commands.report(settings, summary=True)
    if settings.searches:
        commands.show_studies(settings)


def switch_config(settings: Settings) -> Settings | None:
    path = prompts.ask(prompts.config_path(str(settings.path), config_problem))
    if not path:
        return None
    settings = api.load(path)
    console.info(f"using {settings.path}")
    return settings


def config_problem(text: str) -> bool | str:
    """True when the path is a master config that loads; else the reason, shown at the prompt."""
    path = Path(text.strip()).expanduser()
    if not text.strip() or not path.is_file():
        return "not a file"
    try:
        api.load(path)
    except HpsysError as exc:
        return str(exc)
    return True


def confirm_and_run(settings: Settings, experiments: Sequence[Experiment]) -> None:
    """Say what would run (count, skipped as done, estimate), ask, then run with live progress.
    The answer also picks the pruning rule for this run (the configured one by default), as
    --pruning does for the flags; the config stays as it is."""
    plan = api.plan_run(settings, experiments)
    if not plan.to_run:
        console.info(f"nothing to run: all {plan.total} selected experiment(s) are done")
        return
    answer = prompts.ask(prompts.confirm_run(plan, settings.execution.pruning.rule))
    if answer in (None, "no"):
        return
    settings = api.with_pruning(settings, answer)
    _shown(commands.run(settings, experiments))


def _shown(result: RunResult, hint: str = MENU_RESUME_HINT) -> None:
    if result.interrupted:
        _note_stop()
    console.print_run_result(result, hint)


ACTIONS: dict[str, Action] = {
    "matrix": show_matrix, "all": run_all, "models": run_models, "categories": run_categories,
    "custom": run_custom, "failed": rerun_failed, "search": run_search, "summary": summary,
    "config": switch_config,
}


if __name__ == "__main__":
    raise SystemExit(main())

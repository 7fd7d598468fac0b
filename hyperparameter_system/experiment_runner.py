"""Command-line flags over the runner API.

    python hyperparameter_system/experiment_runner.py --all
    python hyperparameter_system/experiment_runner.py --models resnet50.tv2_in1k \
        --categories optimizer
    python hyperparameter_system/experiment_runner.py --summary | --matrix | --dry-run
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script: make the package importable, not its folder
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import PRUNING_RULES, Settings
from hyperparameter_system.core.errors import EXIT_BAD_INPUT, HpsysError
from hyperparameter_system.core.writable import STDOUT, output_file, output_folder
from hyperparameter_system.run.signals import signals_held
from hyperparameter_system.store.ledger import LedgerFull
from hyperparameter_system.ui import cli, commands, console, screen

if TYPE_CHECKING:
    from hyperparameter_system.matrix.experiments import Experiment
    from hyperparameter_system.run.tally import RunResult

EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="experiment_runner", description="Run the category matrix of "
                "experiment_config.yaml and report the winners.")
    p.add_argument("--config", default="experiment_config.yaml", help="master config file")
    p.add_argument("--all", action="store_true", help="every enabled model x category")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these models")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories")
    p.add_argument("--matrix", action="store_true", help="show the matrix with ledger status")
    p.add_argument("--summary", action="store_true", help="winners, deltas and failures")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would run, run nothing (views and exports still happen)")
    p.add_argument("--rerun", action="store_true", help="run again even what is done")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every base config (repeatable)")
    p.add_argument("--sweep", nargs="+", default=[], metavar="KEY=A,B",
                   help="this invocation's categories in Hydra's sweep syntax (lr=1e-3,3e-3 "
                        "optimizer=adamw,sgd epochs=range(1,4)): one factor at a time around "
                        "each model's base, with the baseline; declared categories sit out")
    p.add_argument("--executor", choices=("local", "ray", "slurm"),
                   help="override execution.executor")
    p.add_argument("--no-preload", action="store_true",
                   help="start every experiment as a plain subprocess (execution.preload: false)")
    p.add_argument("--pruning", choices=PRUNING_RULES, metavar="RULE",
                   help="override execution.pruning.rule for this run: "
                        f"{', '.join(PRUNING_RULES)}")
    p.add_argument("--budget", metavar="DURATION",
                   help="launch nothing whose estimated end passes this (8h, 90m, 1h30m): "
                        "execution.budget for this run")
    p.add_argument("--calibrate", action="store_true",
                   help="first run one epoch of each model and shape without an estimate, so "
                        "--matrix, --dry-run and a budget have figures for a new matrix")
    p.add_argument("--export-ledger", metavar="PATH", help="write every ledger row as CSV")
    p.add_argument("--combine-best", action="store_true",
                   help="run each model's combined winners (category 'combined')")
    p.add_argument("--export", nargs=2, metavar=("FORMAT", "PATH"),
                   help="write the summary as csv, md, html or json")
    p.add_argument("--forget", nargs="?", const="selected", choices=("selected", "failed"),
                   metavar="failed", help="delete the ledger rows of --models/--categories/"
                   "--search NAME "
                   "(`--forget failed`: only failed, timed-out or stopped ones; a row running "
                   "under a live runner stays; the ledger file stays)")
    p.add_argument("--plots", metavar="DIR", help="write the report's PNG plots")
    p.add_argument("--search", nargs="?", const="", metavar="NAME",
                   help="run the Optuna search NAME of the config's search: blocks (no NAME: "
                        "list the searches and their studies)")
    p.add_argument("--trials", type=int, metavar="N",
                   help="with --search: run until each study holds N finished trials")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    cli.stop_on_signals()
    cli.tell_lock_waits()
    return cli.until_output_gone(lambda: _guarded(argv))


def _guarded(argv: Sequence[str] | None) -> int:
    """Bad input, interrupts and a full ledger as one line each, with their exit codes (a full
    ledger stopped the run resumably: the interrupted code)."""
    args = None
    try:
        args = parser().parse_args(argv)
        with screen.talking_on_stderr(bool(_to_stdout(args))):  # stdout carries that file
            return _main(args)
    except LedgerFull as exc:
        console.error(str(exc))
        return EXIT_INTERRUPTED
    except HpsysError as exc:
        console.error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        with signals_held():  # a second Ctrl-C must not turn this line into a traceback
            console.warn(f"interrupted; {console.resume_hint(bool(args and args.rerun))}")
        return EXIT_INTERRUPTED


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an unknown export format or an unwritable output path before anything runs, so a
    long matrix never ends in an error about where its report should go."""
    if args.export:
        fmt, path = args.export
        if fmt not in api.EXPORT_FORMATS:
            raise HpsysError(f"--export {fmt}", f"unknown format; expected one of "
                             f"{', '.join(api.EXPORT_FORMATS)}")
        output_file(f"--export {fmt} {path}", path)
    if args.export_ledger:
        output_file(f"--export-ledger {args.export_ledger}", args.export_ledger)
    if args.plots:
        output_folder(f"--plots {args.plots}", args.plots)
    to_stdout = _to_stdout(args)
    if len(to_stdout) > 1:
        raise HpsysError(" and ".join(to_stdout), "only one output can be standard output (-)")


def _to_stdout(args: argparse.Namespace) -> list[str]:
    """The output flags whose path is `-` (standard output)."""
    return [flag for flag, path in (("--export", args.export and args.export[1]),
                                    ("--export-ledger", args.export_ledger)) if path == STDOUT]


def _main(args: argparse.Namespace) -> int:
    """Views first, then the run, then what reads its outcome. --matrix and --dry-run only
    show the selection: they skip its run, never the summary or the exports."""
    _check_outputs(args)
    _search_flags(args)
    settings = _settings(args)
    experiments = api.select(settings, args.models, args.categories)
    if args.forget:
        return _forget(settings, args)
    _views(settings, experiments, args)
    code, did = _runs(settings, experiments, args)
    if code == EXIT_INTERRUPTED:
        return code
    did = _outputs(settings, args) or did
    if not did:
        raise HpsysError("command line", "nothing to do: give --all, --models, --categories, "
                         "--matrix, --summary or --dry-run (run_experiments.py opens the menu)")
    return code


def _settings(args: argparse.Namespace) -> Settings:
    """The master config as this command line changes it (--set, --sweep, --pruning, --budget,
    --no-preload)."""
    loaded = api.load(args.config, args.set, args.sweep)
    settings = api.with_budget(api.with_pruning(loaded, args.pruning), args.budget)
    if args.no_preload:
        settings = dataclasses.replace(
            settings, execution=dataclasses.replace(settings.execution, preload=()))
    return settings


def _views(settings: Settings, experiments: Sequence[Experiment],
           args: argparse.Namespace) -> None:
    """--calibrate's figures, then --matrix and --dry-run: shown before anything runs."""
    if args.calibrate:
        for line in api.calibrate(settings, experiments):
            console.info(line)
    if args.matrix:
        commands.show_matrix(settings, experiments, args.executor)
    if args.dry_run and args.search is None:  # a search's dry run shows the search's plan
        console.print_plan(api.plan_run(settings, experiments, args.rerun, args.executor))


def _runs(settings: Settings, experiments: Sequence[Experiment],
          args: argparse.Namespace) -> tuple[int, bool]:
    """The search or the selection's run, then --combine-best: the exit code so far (the
    interrupted code stops the command) and whether anything was asked of it."""
    only_show = args.matrix or args.dry_run
    code, did = 0, only_show
    if args.search is not None:
        code, did = _search(settings, args, only_show), True
        if code == EXIT_INTERRUPTED:
            return code, did
    elif (args.all or args.models or args.categories or args.sweep) and not only_show:
        result = commands.run(settings, experiments, rerun=args.rerun, executor=args.executor)
        console.print_run_result(result, console.resume_hint(args.rerun))
        if result.interrupted:
            return EXIT_INTERRUPTED, True
        code, did = _code(result), True
    if args.combine_best:
        combined = _combine_best(settings, args)
        if combined == EXIT_INTERRUPTED:
            return combined, True
        code, did = code or combined, True
    return code, did


def _combine_best(settings: Settings, args: argparse.Namespace) -> int:
    """`--combine-best`, its tables left to a --summary in the same command (shown once)."""
    result = commands.combine_best(settings, args.models, executor=args.executor,
                                   rerun=args.rerun, dry_run=args.dry_run,
                                   view=commands.CombineView(tables=not args.summary))
    return EXIT_INTERRUPTED if result.interrupted else _code(result)


def _outputs(settings: Settings, args: argparse.Namespace) -> bool:
    """--summary, --export, --plots, then --export-ledger (last: the rows as this invocation
    left them); whether any was asked for."""
    did = False
    if args.summary or args.export or args.plots:
        commands.report(settings, summary=args.summary, export=args.export, plots=args.plots)
        if args.summary and settings.searches:
            commands.show_studies(settings)
        did = True
    if args.export_ledger:
        count, text = api.export_ledger(settings, args.export_ledger)
        if text is None:
            console.info(f"wrote {count} ledger rows to {args.export_ledger}")
        else:
            screen.raw(text)
        did = True
    return did


def _forget(settings: Settings, args: argparse.Namespace) -> int:
    """`--forget [failed]`: delete the selection's ledger rows (with --dry-run: list them);
    asks nothing (CI runs it)."""
    failed_only = args.forget == "failed"
    if not (args.models or args.categories or failed_only or args.search):
        raise HpsysError("--forget", "name what to forget: --models, --categories, --search "
                         "NAME or `--forget failed` (to start over, delete the ledger file "
                         "yourself)")
    if args.all or args.summary or args.combine_best or args.search == "":
        raise HpsysError("--forget", "runs alone (with --models/--categories/--search NAME); "
                         "run or show in a second command")
    searches = [args.search] if args.search else None
    if args.search and args.search not in [s.name for s in settings.searches]:
        raise HpsysError(f"--search {args.search}", "unknown search; expected one of "
                         f"{', '.join(s.name for s in settings.searches) or '(none)'}")
    if args.dry_run:  # says what it would delete, deletes nothing
        done = api.forget_plan(settings, args.models, args.categories, failed_only, searches)
        for row in done.would:
            console.info(f"would forget {row}")
        line = f"--dry-run: would forget {done.forgotten} ledger row(s); nothing deleted"
    else:
        done = api.forget(settings, args.models, args.categories, failed_only, searches)
        line = f"forgot {done.forgotten} ledger row(s)"
    if done.running:
        line += f"; kept {done.running} running under a live runner"
    console.info(line)
    return 0


def _search_flags(args: argparse.Namespace) -> None:
    """Flags that mean nothing with (or without) --search are refused, never dropped (--forget
    weighs its own)."""
    if args.forget:
        return
    if args.search is None:
        if args.trials is not None:
            raise HpsysError(f"--trials {args.trials}", "counts a search's trials: give "
                             "--search NAME with it")
        return
    if args.all or args.categories or args.combine_best:
        flag = "--all" if args.all else "--categories" if args.categories else "--combine-best"
        raise HpsysError(flag, "runs the matrix, --search a study: run each in its own command")
    if args.pruning is not None:
        raise HpsysError(f"--pruning {args.pruning}", "is for the matrix; a search prunes by its "
                         "block's pruner (search.<name>.pruner)")
    if args.trials is not None and args.trials < 1:
        raise HpsysError(f"--trials {args.trials}", "expected a number of trials >= 1")


def _search(settings: Settings, args: argparse.Namespace, only_show: bool) -> int:
    """`--search`: list the studies (no name), or run one search (--dry-run: its plan)."""
    if not args.search:
        commands.show_studies(settings)
        return 0
    if args.dry_run:
        commands.search_plan(settings, args.search, args.trials)
        return 0
    if only_show:
        commands.show_studies(settings, args.search)
        return 0
    result = commands.search(settings, args.search, args.models, args.trials, args.executor)
    console.print_run_result(result, console.resume_hint(False))
    return EXIT_INTERRUPTED if result.interrupted else _code(result)


def _code(result: RunResult) -> int:
    """1 when an experiment ended failed or timed out (after its retries), else 0."""
    return 1 if result.count("failed") + result.count("timeout") else 0


if __name__ == "__main__":
    raise SystemExit(main())

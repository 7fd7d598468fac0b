"""Command-line flags over the runner API.

    python hyperparameter_system/experiment_runner.py --all
    python hyperparameter_system/experiment_runner.py --models resnet50.tv2_in1k \
        --categories optimizer
    python hyperparameter_system/experiment_runner.py --summary | --matrix | --dry-run
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable, not its folder
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hyperparameter_system import api, console
from hyperparameter_system.errors import EXIT_BAD_INPUT, HpsysError

EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise HpsysError("command line", message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="experiment_runner", description="Run the category matrix of "
                "experiment_config.yaml and report the winners.")
    p.add_argument("--config", default="experiment_config.yaml", help="master config file")
    p.add_argument("--all", action="store_true", help="every enabled model x category")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these models")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories")
    p.add_argument("--matrix", action="store_true", help="show the matrix with ledger status")
    p.add_argument("--summary", action="store_true", help="winners, deltas and failures")
    p.add_argument("--dry-run", action="store_true", help="show what would run, run nothing")
    p.add_argument("--rerun", action="store_true", help="run again even what is done")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every base config (repeatable)")
    p.add_argument("--executor", choices=("local", "ray"), help="override execution.executor")
    p.add_argument("--export-ledger", metavar="PATH", help="write every ledger row as CSV")
    p.add_argument("--combine-best", action="store_true",
                   help="run each model's combined winners (category 'combined')")
    p.add_argument("--export", nargs=2, metavar=("FORMAT", "PATH"),
                   help="write the summary as csv, md or html")
    p.add_argument("--plots", metavar="DIR", help="write the report's PNG plots")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return _main(parser().parse_args(argv))
    except HpsysError as exc:
        console.error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.warn("interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED


def _sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an unknown export format or an unwritable output path before anything runs, so a
    long matrix never ends in an error about where its report should go."""
    if args.export:
        from hyperparameter_system.exports import FORMATS

        fmt, path = args.export
        if fmt not in FORMATS:
            raise HpsysError(f"--export {fmt}", f"unknown format; expected one of "
                             f"{', '.join(FORMATS)}")
        _writable(f"--export {fmt} {path}", Path(path), folder=False)
    if args.export_ledger:
        _writable(f"--export-ledger {args.export_ledger}", Path(args.export_ledger), folder=False)
    if args.plots:
        _writable(f"--plots {args.plots}", Path(args.plots), folder=True)


def _writable(where: str, path: Path, folder: bool) -> None:
    if not folder and path.is_dir():
        raise HpsysError(where, "expected a file path, got a folder")
    if folder and path.exists() and not path.is_dir():
        raise HpsysError(where, "expected a folder, got a file")
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HpsysError(where, f"cannot create {target}: {exc.strerror or exc}") from None
    if not os.access(target, os.W_OK):
        raise HpsysError(where, f"cannot write into {target}: permission denied")


def _main(args: argparse.Namespace) -> int:
    _check_outputs(args)
    settings = api.load(args.config, args.set)
    selecting = args.all or args.models or args.categories
    experiments = api.select(settings, args.models, args.categories)
    did = False
    if args.matrix:
        api.show_matrix(settings, experiments)
        did = True
    if args.dry_run:
        console.print_plan(api.plan_run(settings, experiments, args.rerun, args.executor))
        return 0
    code = 0
    if selecting and not did:  # --matrix with a selection only shows it
        result = api.run(settings, experiments, rerun=args.rerun, executor=args.executor)
        console.print_run_result(result)
        if result.interrupted:
            return EXIT_INTERRUPTED
        code = 1 if result.count("failed") + result.count("timeout") else 0
        did = True
    if args.combine_best:
        from hyperparameter_system import report

        result = report.run_combined(settings, args.models, executor=args.executor)
        if result.interrupted:
            return EXIT_INTERRUPTED
        code = code or (1 if result.count("failed") + result.count("timeout") else 0)
        did = True
    if args.summary or args.export or args.plots:
        from hyperparameter_system import report

        report.show(settings, summary=args.summary, export=args.export, plots=args.plots)
        did = True
    if args.export_ledger:  # last: the rows as this invocation left them
        count = api.export_ledger(settings, args.export_ledger)
        console.info(f"wrote {count} ledger rows to {args.export_ledger}")
        did = True
    if not did:
        raise HpsysError("command line", "nothing to do: give --all, --models, --categories, "
                         "--matrix, --summary or --dry-run (run_experiments.py opens the menu)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

"""Train a timm image classifier from a V2 config.

    python codes/train.py --config codes/config_v2.yaml [key=value | +key=value | ++key=value ...]
    python codes/train.py --describe     # the keys it reads, as JSON (codes/train.schema.json)

The config comes from --config, else from EXPERIMENT_CONFIG. Outputs go to $HPSYS_RUN_DIR, else
output_dir/<run name>/. $HPSYS_RUN_DIR/stop_request.json ends the run at the next epoch end
(result status pruned, exit 0); HPSYS_RESUME=<last.pt> goes on after that checkpoint's epoch
(every epoch saves checkpoints/last.pt and resume.json). Exit codes: 0 when result.json was
written, 2 for bad input (one line on stderr), 1 for any other failure, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from trainer.artifacts import RunDir, default_run_name, run_dir_for, tee_output
from trainer.config import (
    config_path_from,
    load_config,
    overrides_as_mapping,
    place_of,
    unused_keys,
)
from trainer.errors import ConfigError, exit_code_of
from trainer.key_reads import track


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a timm classifier from a V2 config.")
    parser.add_argument("--config", help="YAML config (default: $EXPERIMENT_CONFIG)")
    parser.add_argument(
        "--describe",
        action="store_true",
        help="print the schema of the config keys (types, ranges, names) as JSON and exit",
    )
    parser.add_argument(
        "--config2",
        help="two-stage training: the stage-2 YAML config (the first needs two_stage: true); "
        "stage 2 starts from stage 1's best weights; overrides apply to stage 1",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra-style overrides, e.g. lr=0.01")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = parse_args(argv)
    if args.describe:  # torch-free and instant: the runner reads it before any launch
        from trainer.schema import dumps

        print(dumps())
        return 0
    with contextlib.ExitStack() as logs:
        env_dir = os.environ.get("HPSYS_RUN_DIR")
        if env_dir:  # so that even a config error lands in the runner's log
            logs.enter_context(tee_output(Path(env_dir) / "train.log"))
        try:
            code = exit_code_of(lambda: _train(args, started, logs, tee=not env_dir))
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr, flush=True)
            return 130
    return code


def _train(args: argparse.Namespace, started: float, logs: contextlib.ExitStack, tee: bool) -> int:
    """Load the config, open the run folder and train; 0 once result.json is written."""
    path = config_path_from(args.config)
    cfg = track(load_config(path, args.overrides))  # records reads: result.json unused_keys
    cfg2 = _stage2_config(cfg, args.config2)
    run_name = default_run_name(cfg)
    run_dir = RunDir(run_dir_for(cfg, run_name))
    if tee:
        logs.enter_context(tee_output(run_dir.path / "train.log"))
    run_dir.write_config(cfg, overrides_as_mapping(args.overrides))
    for key in unused_keys(cfg):
        print(f"warning: config key '{key}' is not used by codes/train.py", file=sys.stderr)
    print(f"run {run_name}: config {path}, output {run_dir.path}", flush=True)
    from trainer.run import train

    try:
        result = train(cfg, run_dir, run_name, started, cfg2)
    except ConfigError as exc:  # a key that only failed once built: say where it was set
        raise ConfigError(f"{place_of(str(exc), path, args.overrides)}: {exc}") from None
    m = result["metrics"]
    print(
        f"done in {result['duration_s']:.1f}s: best val_f1 {m['best_val_f1']:.4f} "
        f"(epoch {m['best_epoch']}), result {run_dir.result_path}",
        flush=True,
    )
    return 0 if run_dir.result_path.is_file() else 1


def _stage2_config(cfg: dict, config2: str | None) -> dict | None:
    """The stage-2 config of a two-stage run, None for one stage."""
    two_stage = bool(cfg.get("two_stage", False))
    if config2 is None:
        if two_stage:
            raise ConfigError("two_stage: true needs the stage-2 config: --config2 PATH")
        return None
    if not two_stage:
        raise ConfigError("--config2: the first config must set two_stage: true")
    return track(load_config(Path(config2), []))


if __name__ == "__main__":
    sys.exit(main())

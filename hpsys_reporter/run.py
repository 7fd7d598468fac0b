"""`start()` and `Run`: the training side of the script contract in five calls.

The runner talks to a training script only through files, argv and environment (README, "The
script contract"); `Run` writes and reads those files so a script does not have to: its config
(`--config PATH` or `EXPERIMENT_CONFIG`), `metrics.jsonl` (flushed per epoch), `resume.json`
and `HPSYS_RESUME`, `stop_request.json` and `result.json` (atomic). Outside the runner
(no `HPSYS_RUN_DIR`) the same calls write to a local folder, so a script runs alike by hand.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from hpsys_reporter.files import (
    append_line,
    key_line,
    process_started,
    read_json,
    stop_line,
    stop_request,
    write_json_atomic,
)
from hpsys_reporter.tracked import TrackedDict, plain, unused

EXIT_BAD_CONFIG = 2  # the contract: a config error, never retried
METRICS, RESULT, RESUME, STOP = "metrics.jsonl", "result.json", "resume.json", "stop_request.json"
_NOT_SUMMARISED = {"epoch", "seconds", "lr", "step"}  # logged, but no best_/final_ of them


class Run:
    """One experiment's run folder and what the script reported into it (see `start`)."""

    def __init__(self, config: dict[str, Any], run_dir: Path, config_path: Path | None = None,
                 tracked: bool = True, resume: Path | None = None,
                 resumed_from_epoch: int | None = None) -> None:
        self.config = TrackedDict(config) if tracked else config
        self.dir = run_dir
        self.config_path = config_path
        self.resume = resume  # the checkpoint to load before training on, or None
        self.resumed_from_epoch = resumed_from_epoch
        self.history: list[dict[str, Any]] = []
        self.checkpoint_path: Path | None = None
        self.stop_request: dict[str, Any] | None = None  # set once should_stop() said True
        self.result: dict[str, Any] | None = None
        self._tracked = tracked
        self._started = time.time()
        self._since = process_started() - 2.0  # /proc's clock is coarse (btime: whole seconds)
        self._last_log = self._started
        self.dir.mkdir(parents=True, exist_ok=True)
        self._open_metrics()

    @property
    def start_epoch(self) -> int:
        """The first epoch to train: 1, or the one after the checkpoint being resumed."""
        return (self.resumed_from_epoch or 0) + 1

    @property
    def metrics_path(self) -> Path:
        return self.dir / METRICS

    def _open_metrics(self) -> None:
        """A fresh run starts metrics.jsonl clean (and forgets an old resume point); a resumed
        one keeps its epochs up to the checkpoint's, so every epoch is there once."""
        if self.resumed_from_epoch is None:
            self.metrics_path.write_text("", encoding="utf-8")
            for name in (RESULT, RESUME):
                (self.dir / name).unlink(missing_ok=True)
            return
        kept = []
        for line in _lines(self.metrics_path):
            epoch = line.get("epoch")
            if isinstance(epoch, int) and epoch <= self.resumed_from_epoch:
                kept.append(line)
        self.metrics_path.write_text("", encoding="utf-8")
        for record in kept:
            append_line(self.metrics_path, record)
        self.history = kept

    def log(self, epoch: int, **metrics: Any) -> None:
        """One metrics.jsonl line for `epoch` (1-based), flushed: what pruning decides on. Tensor
        and NumPy scalars become numbers; `seconds` (since the last line) is added if absent."""
        now = time.time()
        record: dict[str, Any] = {"epoch": int(epoch)}
        record.update({key: _value(key, value) for key, value in metrics.items()})
        record.setdefault("seconds", round(now - self._last_log, 3))
        self._last_log = now
        append_line(self.metrics_path, record)
        self.history.append(record)

    def checkpoint(self, path: str | os.PathLike[str], epoch: int) -> None:
        """Say that `path` (relative: under the run folder), already saved by the caller, can
        resume training after `epoch`: resume.json, atomically. The runner relaunches an
        interrupted experiment with HPSYS_RESUME naming it."""
        full = (self.dir / path).resolve()
        if not full.is_file():
            raise FileNotFoundError(f"checkpoint {full} does not exist: save it before "
                                    "calling checkpoint()")
        self.checkpoint_path = full
        write_json_atomic(self.dir / RESUME, {"checkpoint": str(full), "epoch": int(epoch)})

    def should_stop(self) -> bool:
        """True once the runner asked for a graceful stop (pruning, a race): stop after this
        epoch, then finish(); the result's status is then `pruned`. Cheap: one stat."""
        if self.stop_request is None:
            self.stop_request = stop_request(self.dir / STOP, self._since)
            if self.stop_request is not None:
                print(stop_line(self.stop_request), flush=True)
        return self.stop_request is not None

    def finish(self, metrics: Mapping[str, Any] | None = None,
               effective: Mapping[str, Any] | None = None, monitor: str = "val_f1",
               **extra: Any) -> Path:
        """Write result.json atomically and return its path; exit 0 after it (the contract).

        `metrics` add to (and win over) what the logged epochs give: `epochs_run`, and for
        each logged key `final_<key>` and `best_<key>` (lowest for a key with `loss` in its
        name, else highest) with `best_epoch` of `monitor`. `effective`: the hyperparameters
        read back from the objects that trained (see `effective_from`). `extra`: more
        top-level keys (e.g. `artifacts`)."""
        summary = {**_summary(self.history, monitor), **(dict(metrics or {}))}
        result: dict[str, Any] = {
            "status": "pruned" if self.stop_request is not None else "done",
            "experiment_id": os.environ.get("HPSYS_EXPERIMENT_ID"),
            "run_name": os.environ.get("WANDB_NAME") or self.dir.name,
            "run_dir": str(self.dir.resolve()),
            "metrics": summary,
            "duration_s": round(time.time() - self._started, 3),
            "checkpoint": str(self.checkpoint_path) if self.checkpoint_path else None,
            "artifacts": {"metrics": str(self.metrics_path.resolve()),
                          "log": str((self.dir / "train.log").resolve())},
            "wandb": {"project": os.environ.get("WANDB_PROJECT"),
                      "name": os.environ.get("WANDB_NAME"),
                      "run_id": os.environ.get("WANDB_RUN_ID"),
                      "mode": os.environ.get("WANDB_MODE"), "dir": None},
            "effective": plain(dict(effective or {})),
        }
        if self._tracked:  # keys the script never read: the runner marks options "not honoured"
            result["unused_keys"] = unused(self.config)
        if self.resumed_from_epoch is not None:
            result["resumed_from_epoch"] = self.resumed_from_epoch
        if self.stop_request is not None:
            result["stop_request"] = self.stop_request
        result.update(extra)
        path = self.dir / RESULT
        write_json_atomic(path, result)
        self.result = result
        return path

    def bad_config(self, key: str, message: str) -> NoReturn:
        """A config value the script cannot use: one `error:` line naming the file, line and
        key, then exit 2 (the contract's config error: the runner does not retry it)."""
        fail(_where(self.config_path, key), message)


def start(config: Mapping[str, Any] | None = None, *,
          defaults: Mapping[str, Any] | str | os.PathLike[str] | None = None,
          argv: Sequence[str] | None = None,
          run_dir: str | os.PathLike[str] | None = None) -> Run:
    """Open the run: its config, its folder, whether it resumes.

    The config: `config` when given (an app that parsed its own, e.g. Hydra's cfg, used as is);
    else the YAML file of `--config PATH` in `argv` (default sys.argv) or of EXPERIMENT_CONFIG,
    over `defaults` (a mapping or a YAML file) key by key; else `defaults`; else {}. Reads of
    a config the reporter loaded are tracked: keys never read go to result.json `unused_keys`.
    The folder: `run_dir`, else HPSYS_RUN_DIR, else `outputs/<script>_<time>/`.
    Resume: HPSYS_RESUME and the folder's resume.json give `run.resume` (the checkpoint) and
    `run.start_epoch`; a missing checkpoint means a fresh start, as the contract allows.
    A config file that is missing or not a YAML mapping: one line, exit 2."""
    path = _config_path(sys.argv[1:] if argv is None else argv)
    if config is not None:
        cfg, tracked = dict(config), False
    else:
        base = _load(Path(defaults)) if isinstance(defaults, str | os.PathLike) else \
            dict(defaults or {})
        cfg = _merge(base, _load(path)) if path else base
        tracked = True
    folder = Path(run_dir or os.environ.get("HPSYS_RUN_DIR") or _local_dir())
    resume, epoch = _resume_point(folder)
    return Run(cfg, folder, path, tracked, resume, epoch)


def fail(where: str, message: str) -> NoReturn:
    """`error: <where>: <message>` on one line of stderr, exit 2: bad input, never retried."""
    text = " ".join(f"{where}: {message}".split())
    print(f"error: {text}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_CONFIG)


def _config_path(argv: Sequence[str]) -> Path | None:
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    env = os.environ.get("EXPERIMENT_CONFIG")
    return Path(env) if env else None


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(str(path), f"cannot read the config: {exc.strerror or exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        fail(where, f"YAML syntax error: {getattr(exc, 'problem', None) or exc}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        fail(str(path), "expected a mapping of keys at the top level")
    return data


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, Mapping) \
            else value
    return out


def _where(path: Path | None, key: str) -> str:
    if path is None:
        return key
    line = key_line(path, key)
    return f"{path}:{line}: {key}" if line else f"{path}: {key}"


def _local_dir() -> Path:
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "run"
    return Path("outputs") / f"{script or 'run'}_{time.strftime('%Y%m%d-%H%M%S')}"


def _resume_point(folder: Path) -> tuple[Path | None, int | None]:
    """HPSYS_RESUME's checkpoint and epoch (from the folder's resume.json), when it exists."""
    value = os.environ.get("HPSYS_RESUME")
    if not value:
        return None, None
    path = Path(value).resolve()
    point = read_json(folder / RESUME) or {}
    named = point.get("checkpoint")
    epoch = point.get("epoch")
    same = isinstance(named, str) and (folder / named).resolve() == path
    if not path.is_file() or not same or not isinstance(epoch, int) or isinstance(epoch, bool):
        print(f"warning: HPSYS_RESUME={value}: no such checkpoint in {folder / RESUME}; "
              "training starts over", file=sys.stderr, flush=True)
        return None, None
    return path, epoch


def _lines(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill mid-write
        if isinstance(record, dict):
            out.append(record)
    return out


def _value(key: str, value: Any) -> Any:
    """A JSON value for a metric: numbers, strings, None; tensor and NumPy scalars as numbers."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"log(): {key}={value!r} is not a number or a string") from None


def _summary(history: list[dict[str, Any]], monitor: str) -> dict[str, Any]:
    """`epochs_run`, `final_<key>`, `best_<key>` and `best_epoch` from the logged epochs."""
    if not history:
        return {"epochs_run": 0}
    out: dict[str, Any] = {"epochs_run": max(int(r["epoch"]) for r in history)}
    keys = dict.fromkeys(k for r in history for k in r if k not in _NOT_SUMMARISED)
    for key in keys:
        points = [(r["epoch"], r[key]) for r in history
                  if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)
                  and math.isfinite(r[key])]
        if not points:
            continue
        lowest = "loss" in key
        best = min(points, key=lambda p: p[1]) if lowest else max(points, key=lambda p: p[1])
        out[f"final_{key}"], out[f"best_{key}"] = points[-1][1], best[1]
        if key == monitor:
            out["best_epoch"] = best[0]
    return out

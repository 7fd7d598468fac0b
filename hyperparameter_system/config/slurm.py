"""`execution.slurm`: what each experiment's Slurm job asks for, and how the runner follows it.

Read and checked here, before anything is submitted, so a bad value is one line naming the file,
the line and the key (not an sbatch error per experiment). run/slurm_executor.py turns it into
sbatch options.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hyperparameter_system.config.reader import Reader
from hyperparameter_system.core.errors import HpsysError

SLURM_KEYS = {
    "partition": (str, type(None)), "account": (str, type(None)), "qos": (str, type(None)),
    "time": (str, int, type(None)), "gpus_per_experiment": (int, type(None)),
    "cpus_per_experiment": (int, type(None)), "mem": (str, type(None)),
    "constraint": (str, type(None)), "setup": (list, str, type(None)),
    "additional": (dict, type(None)), "max_jobs": (int, type(None)), "poll_s": (int, float),
    "requeues": (int,), "signal_s": (int,),
}
# sbatch's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2}|"
                  r"UNLIMITED|INFINITE)$", re.IGNORECASE)
MEM = re.compile(r"^\d+[KMGT]?B?$", re.IGNORECASE)
OPTION = re.compile(r"^[a-z][a-z0-9-]*$")
# what the runner sets itself: the job's identity, its files, requeue and the warning signal
OWN = frozenset({"job-name", "comment", "output", "error", "requeue", "no-requeue", "signal",
                 "open-mode", "parsable", "wrap", "chdir", "wait", "array", "export"})


@dataclass(frozen=True)
class SlurmSettings:
    """None leaves a choice to the cluster's defaults (gpus and cpus: execution's own)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    gpus_per_experiment: int | None = None
    cpus_per_experiment: int | None = None
    mem: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()  # shell lines run in the job before the launcher
    additional: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    max_jobs: int | None = None  # jobs in flight at once (default: execution.max_parallel)
    poll_s: float = 2.0  # how often the runner reads the queue
    requeues: int = 3  # times a job near its time limit requeues itself (preemption: Slurm's)
    signal_s: int = 120  # the job is warned this long before its time limit


def read_slurm(reader: Reader) -> SlurmSettings:
    time = reader.get("time")
    if isinstance(time, bool) or (time is not None and not TIME.match(str(time))):
        raise HpsysError(reader.where("time"), "expected minutes or an sbatch time "
                         f"(MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS), got {time!r}")
    mem = reader.get("mem")
    if mem is not None and not MEM.match(mem):
        raise HpsysError(reader.where("mem"), f"expected a size such as 16G or 4000M, got {mem!r}")
    setup = reader.get("setup") or ()
    setup = (setup,) if isinstance(setup, str) else tuple(setup)
    if not all(isinstance(line, str) and "\n" not in line for line in setup):
        raise HpsysError(reader.where("setup"), "expected a list of shell lines (strings)")
    return SlurmSettings(
        partition=reader.get("partition"), account=reader.get("account"),
        qos=reader.get("qos"), time=None if time is None else str(time),
        gpus_per_experiment=reader.number("gpus_per_experiment", None, 0),
        cpus_per_experiment=reader.number("cpus_per_experiment", None, 1),
        mem=mem, constraint=reader.get("constraint"), setup=setup,
        additional=_additional(reader), max_jobs=reader.number("max_jobs", None, 1),
        poll_s=float(reader.number("poll_s", 2.0, 0.05)),
        requeues=reader.number("requeues", 3, 0), signal_s=reader.number("signal_s", 120, 0))


def _additional(reader: Reader) -> dict[str, str | int | float | bool]:
    """Any other sbatch option, by its long name without dashes (`gres: gpu:a100:1`); true
    alone for a flag. Those the runner sets itself are refused: they would break requeue."""
    options = reader.get("additional") or {}
    for name, value in options.items():
        key = str(name)
        if not OPTION.match(key):
            raise HpsysError(reader.where("additional"),
                             f"expected sbatch long option names (e.g. exclusive, gres), "
                             f"got {key!r}")
        if key in OWN:
            raise HpsysError(reader.where("additional"),
                             f"--{key} is set by the runner (job identity, log file, requeue)")
        if not isinstance(value, str | int | float | bool) or value is False:
            raise HpsysError(reader.where("additional"),
                             f"expected a string, a number or true for {key}, got {value!r}")
    return {str(k): v for k, v in options.items()}
